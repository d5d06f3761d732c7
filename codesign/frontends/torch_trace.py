"""The MAC layers of a torch module, from one forward pass: the search's fast route to a Workload.

Exporting to ONNX takes ~0.1 s per network; a surrogate search scores thousands of networks.
The systolic model reads only the conv and matmul layers (everything else runs off the
array), so for it a Workload of those layers is the whole story.  This module records each
Conv2d / Linear call with forward hooks and costs it with the ONNX frontend's own rules
(``op_rules.conv`` / ``op_rules.gemm``), so dimensions, MACs and op classes are the ONNX
route's; a BatchNorm right after a conv is folded into its bias, as torch's ONNX export does
in eval mode.  Layers are named by their torch module name (what bit maps are keyed by).
Tested equal to the ONNX route on every conv/matmul field the cost models read.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from codesign.frontends.op_rules import NodeView, conv, gemm, numel
from hwmodels.errors import CodesignError
from hwmodels.workload import Layer, Workload


def trace_mac_layers(module: nn.Module, example: torch.Tensor, name: str = "model") -> Workload:
    """Conv2d and Linear layers of ``module`` run on ``example`` (batch included), in call order."""
    calls: list[tuple[str, nn.Module, tuple, tuple]] = []
    names = {m: n for n, m in module.named_modules()}

    def record(mod, inputs, output):
        calls.append((names[mod], mod, tuple(inputs[0].shape), tuple(output.shape)))

    watched = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
    hooks = [m.register_forward_hook(record) for m in module.modules() if isinstance(m, watched)]
    try:
        with torch.no_grad():
            module.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    wl = Workload(name)
    wl.graph_inputs = {"input": tuple(example.shape)}
    previous: Layer | None = None
    for i, (layer_name, mod, x, y) in enumerate(calls):
        if isinstance(mod, nn.BatchNorm2d):
            if previous is not None and previous.op == "Conv" and previous.output_shapes == [y] and not previous.attrs["bias"]:
                previous.params += y[1]                     # folded into the conv's bias
                previous.weight_bytes += y[1] * 4
                previous.ops += numel(y)
                previous.attrs["bias"] = True
            previous = None
            continue
        layer = _conv_layer(layer_name, mod, x, y) if isinstance(mod, nn.Conv2d) else _linear_layer(layer_name, mod, x, y)
        wl.add_layer(layer)
        wl.graph.nodes[layer.name]["index"] = i
        previous = layer
    if not len(wl):
        raise CodesignError(f"{name}: no Conv2d or Linear layer ran in the forward pass")
    return wl


def _conv_layer(name: str, mod: nn.Conv2d, x: tuple, y: tuple) -> Layer:
    if isinstance(mod.padding, str):
        raise CodesignError(f"layer {name}: padding={mod.padding!r} is not traced; give explicit padding")
    ph, pw = mod.padding
    attrs = {"group": mod.groups, "strides": list(mod.stride), "dilations": list(mod.dilation),
             "pads": [ph, pw, ph, pw], "kernel_shape": list(mod.kernel_size), "bias": mod.bias is not None}
    w = tuple(mod.weight.shape)
    view = NodeView("Conv", attrs, [x, w, (w[0],) if mod.bias is not None else None], [y], [False, True, True])
    return _layer(name, "Conv", conv(view), attrs, mod, x, y)


def _linear_layer(name: str, mod: nn.Linear, x: tuple, y: tuple) -> Layer:
    if len(x) != 2:
        raise CodesignError(f"layer {name}: Linear on a {len(x)}-D input is not traced (flatten it first)")
    attrs = {"transB": 1, "bias": mod.bias is not None}
    w = tuple(mod.weight.shape)
    view = NodeView("Gemm", attrs, [x, w, (w[0],) if mod.bias is not None else None], [y], [False, True, True])
    return _layer(name, "Gemm", gemm(view), attrs, mod, x, y)


def _layer(name: str, op: str, cost, attrs: dict, mod: nn.Module, x: tuple, y: tuple) -> Layer:
    params = sum(p.numel() for p in (mod.weight, mod.bias) if p is not None)
    return Layer(name=name, op=op, op_class=cost.op_class, inputs=[f"{name}:in"], outputs=[f"{name}:out"],
                 input_shapes=[x], output_shapes=[y], attrs=attrs, conv=cost.conv, gemm=cost.gemm,
                 macs=int(cost.macs), ops=int(cost.ops), params=params, weight_bytes=params * 4,
                 input_bytes=numel(x) * 4, output_bytes=numel(y) * 4, dtype_bytes=4)
