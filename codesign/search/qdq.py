"""QDQ ONNX with per-layer bit-widths that reproduces the fake-quantized network exactly.

Weights: per-output-channel symmetric integers (int4 containers hold 2- and 4-bit weights,
int8, int16) + DequantizeLinear.  Activations: the calibrated asymmetric scale and zero point
of each layer's input as QuantizeLinear/DequantizeLinear (uint8/uint16), with a Clip
in front where the width is narrower than its container (2- and 4-bit).  Per-channel symmetric weight
quantization is invariant to per-channel scaling, so BatchNorm folded into the exported
convolutions quantizes to the same integers.  Opset 21 (int4/uint16 Q/DQ).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper, version_converter

from hwmodels.errors import CodesignError

_W_TYPE = {2: TensorProto.INT4, 4: TensorProto.INT4, 8: TensorProto.INT8, 16: TensorProto.INT16}
# activations narrower than 8 bits travel in uint8 with a Clip: onnxruntime's QDQ fusion turns
# uint4 activations into QLinearConv nodes it then rejects (seen with onnxruntime 1.31)
_A_TYPE = {2: TensorProto.UINT8, 4: TensorProto.UINT8, 8: TensorProto.UINT8, 16: TensorProto.UINT16}
_CONTAINER_BITS = {2: 8, 4: 8, 8: 8, 16: 16}


def write_qdq(fp32_path: Path, out_path: Path, layer_params: dict[str, dict], onnx_names: dict[str, str]) -> Path:
    """``layer_params``: torch layer -> {w_bits, a_bits, a_scale, a_zero_point} (from ``quant.quant_params``);
    ``onnx_names``: torch layer -> ONNX node name."""
    from codesign.quant import quantize_weight

    model = version_converter.convert_version(onnx.load(str(fp32_path)), 21)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes = {n.name: n for n in graph.node}
    new_nodes: dict[str, list[onnx.NodeProto]] = {}
    for torch_name, p in layer_params.items():
        node = nodes.get(onnx_names.get(torch_name, ""))
        if node is None:
            raise CodesignError(f"QDQ export: no ONNX node for layer {torch_name}")
        before = []
        w_bits, a_bits = int(p["w_bits"]), int(p["a_bits"])
        if a_bits < 32:
            before += _quantize_input(node, 0, a_bits, p["a_scale"], p["a_zero_point"], graph)
        if w_bits < 32:
            w_name = node.input[1]
            if w_name not in inits:
                raise CodesignError(f"QDQ export: weight of {node.name} is not an initializer")
            w = numpy_helper.to_array(inits[w_name]).astype(np.float32)
            axis = 1 if (node.op_type == "Gemm" and not _attr(node, "transB", 0)) or node.op_type == "MatMul" else 0
            moved = np.moveaxis(w, axis, 0)
            wq = quantize_weight(torch.from_numpy(moved.copy()), w_bits).numpy()
            qmax = 2 ** (w_bits - 1) - 1
            scale = np.abs(wq.reshape(wq.shape[0], -1)).max(axis=1) / qmax
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            ints = np.rint(wq / scale.reshape(-1, *([1] * (wq.ndim - 1)))).astype(np.int32)
            ints = np.moveaxis(ints, 0, axis)
            q_name = f"{w_name}_q{w_bits}"
            graph.initializer.append(helper.make_tensor(q_name, _W_TYPE[w_bits], ints.shape, ints.flatten().tolist()))
            graph.initializer.append(numpy_helper.from_array(scale, f"{q_name}_scale"))
            graph.initializer.append(helper.make_tensor(f"{q_name}_zp", _W_TYPE[w_bits], scale.shape, [0] * scale.size))
            dq_out = f"{q_name}_dq"
            before.append(helper.make_node("DequantizeLinear", [q_name, f"{q_name}_scale", f"{q_name}_zp"], [dq_out],
                                           name=f"{node.name}/weight_dq", axis=axis))
            node.input[1] = dq_out
            if a_bits < 32 and len(node.input) > 2 and node.input[2] in inits:
                before.append(_int32_bias(node, inits[node.input[2]], float(p["a_scale"]) * scale, graph))
        new_nodes[node.name] = before
    ordered = []
    for n in graph.node:
        ordered += new_nodes.get(n.name, [])
        ordered.append(n)
    del graph.node[:]
    graph.node.extend(ordered)
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path


def _int32_bias(node, bias_init, scale: np.ndarray, graph) -> onnx.NodeProto:
    """Give the bias as int32 + DequantizeLinear ourselves, at scale a_scale x w_scale (the
    QLinearConv convention), doubled until it fits in int32.  onnxruntime otherwise quantizes
    float biases itself at a_scale x w_scale, which overflows int32 for 16-bit layers."""
    b = numpy_helper.to_array(bias_init).astype(np.float64)
    s = scale.astype(np.float64).copy()
    limit = 2**31 - 1
    while np.any(np.abs(np.rint(b / s)) > limit):
        s = np.where(np.abs(np.rint(b / s)) > limit, s * 2, s)
    q = np.rint(b / s).astype(np.int32)
    name = f"{bias_init.name}_{node.name}_int32"
    graph.initializer.append(numpy_helper.from_array(q, name))
    graph.initializer.append(numpy_helper.from_array(s.astype(np.float32), f"{name}_scale"))
    graph.initializer.append(numpy_helper.from_array(np.zeros_like(q), f"{name}_zp"))
    node.input[2] = f"{name}_dq"
    return helper.make_node("DequantizeLinear", [name, f"{name}_scale", f"{name}_zp"], [f"{name}_dq"],
                            name=f"{node.name}/bias_dq", axis=0)


def _quantize_input(node, index: int, bits: int, scale: float, zero_point: float, graph) -> list[onnx.NodeProto]:
    x = node.input[index]
    tag = f"{node.name}/in{index}_a{bits}"
    levels = 2 ** bits - 1
    graph.initializer.append(numpy_helper.from_array(np.array(scale, np.float32), f"{tag}_scale"))
    graph.initializer.append(helper.make_tensor(f"{tag}_zp", _A_TYPE[bits], [], [int(zero_point)]))
    out, src = [], x
    if _CONTAINER_BITS[bits] != bits:
        # narrower than its container: clip to the representable range before quantizing.
        # (A Clip after the DequantizeLinear is equivalent in exact arithmetic, but
        # onnxruntime's basic graph optimizations drop it; one before the QuantizeLinear stays.)
        lo = np.array((0 - zero_point) * scale, np.float32)
        hi = np.array((levels - zero_point) * scale, np.float32)
        graph.initializer.append(numpy_helper.from_array(lo, f"{tag}_lo"))
        graph.initializer.append(numpy_helper.from_array(hi, f"{tag}_hi"))
        out.append(helper.make_node("Clip", [x, f"{tag}_lo", f"{tag}_hi"], [f"{tag}_clipped"], name=f"{tag}/clip"))
        src = f"{tag}_clipped"
    out += [helper.make_node("QuantizeLinear", [src, f"{tag}_scale", f"{tag}_zp"], [f"{tag}_q"], name=f"{tag}/q"),
            helper.make_node("DequantizeLinear", [f"{tag}_q", f"{tag}_scale", f"{tag}_zp"], [f"{tag}_dq"], name=f"{tag}/dq")]
    result = f"{tag}_dq"
    node.input[index] = result
    return out


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def onnx_accuracy(path: Path, x: torch.Tensor, y: torch.Tensor, resolution: int | None = None) -> float:
    """Accuracy of an ONNX classifier measured with onnxruntime (1 thread)."""
    import onnxruntime as ort

    from codesign.data import resize

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    xs = resize(x, resolution).numpy().astype(np.float32)
    correct = 0
    for i in range(0, len(xs), 256):
        logits = sess.run(None, {name: xs[i:i + 256]})[0]
        correct += int((logits.argmax(1) == y[i:i + 256].numpy()).sum())
    return correct / len(xs)
