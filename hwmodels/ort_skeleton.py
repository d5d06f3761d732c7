"""Workload layers -> an ONNX graph that computes them (weights synthesised from the recorded shapes).

Any Workload (from the ONNX, torch or TVM frontend) can be handed to a runtime this way, so
the runtime itself decides how it fuses and lays out the layers.  One small builder per op
type, looked up in ``BUILDERS`` (like ``codesign.frontends.op_rules``); ops with no builder
are passed through with their activation inputs and attributes when listed in
``PASS_THROUGH``, and become *stand-ins* (graph inputs carrying their outputs) otherwise.
Weight values are a constant: dense fp32 kernel times do not depend on them, and a constant
is fast to build for large layers.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from hwmodels.workload import Layer

OPSET = 17
IR_VERSION = 8

# ops rebuilt from a Layer with only their activation inputs (attributes copied)
PASS_THROUGH = {
    "Relu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign",
    "Erf", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Round", "Sign",
    "Softmax", "LogSoftmax", "Transpose", "Flatten", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "LpNormalization", "LRN", "Identity", "Concat", "Mish", "Gelu", "ReduceMean",
    "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceLogSumExp", "DepthToSpace", "SpaceToDepth",
    "Sum", "Mean", "Max", "Min", "PRelu", "Where", "Not", "And", "Or", "Equal", "Less", "Greater",
}
BINARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu", "Equal", "Less", "Greater"}


def numel(shape) -> int:
    return math.prod(int(d) for d in shape)


class _Weights:
    """The initializers of one skeleton graph."""

    def __init__(self):
        self.inits = []

    def const(self, arr: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper

        name = f"__c{len(self.inits) + 1}_{hint}"
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def weight(self, shape, hint: str) -> str:
        return self.const(np.full(shape, 0.01, np.float32), hint)


Builder = Callable[[Layer, dict, _Weights], "list | None"]


def _node(op: str, inputs: list[str], layer: Layer, **attrs):
    from onnx import helper

    return [helper.make_node(op, inputs, layer.outputs[:1], name=layer.name, **attrs)]


def _conv(l: Layer, attrs: dict, w: _Weights):
    c = l.conv
    if c is None or len(l.inputs) != 1:
        return None
    wshape = (c.k, c.c // c.groups, c.r, c.s) if len(l.input_shapes[0]) == 4 else (c.k, c.c // c.groups, c.s)
    args = [l.inputs[0], w.weight(wshape, "w")]
    if l.params > numel(wshape):
        args.append(w.weight((c.k,), "b"))
    return _node("Conv", args, l, **attrs)


def _batchnorm(l: Layer, attrs: dict, w: _Weights):
    ch = l.input_shapes[0][1]
    consts = [w.const(np.ones(ch, np.float32), "s"), w.const(np.zeros(ch, np.float32), "b"),
              w.const(np.zeros(ch, np.float32), "m"), w.const(np.ones(ch, np.float32), "v")]
    attrs.pop("training_mode", None)
    return _node("BatchNormalization", [l.inputs[0]] + consts, l, **attrs)


def _gemm(l: Layer, attrs: dict, w: _Weights):
    if len(l.inputs) >= 2:
        return _node("Gemm", list(l.inputs), l, **attrs)
    g = l.gemm
    if g is None:
        return None
    bshape = (g.n, g.k) if attrs.get("transB", 0) else (g.k, g.n)
    args = [l.inputs[0], w.weight(bshape, "w")]
    if l.params > g.n * g.k:
        args.append(w.weight((g.n,), "b"))
    return _node("Gemm", args, l, **attrs)


def _matmul(l: Layer, attrs: dict, w: _Weights):
    if len(l.inputs) == 2:
        return _node("MatMul", list(l.inputs), l)
    if len(l.inputs) != 1 or not l.input_shapes or len(l.input_shapes[0]) < 1:
        return None
    kdim, ndim = l.input_shapes[0][-1], l.output_shapes[0][-1]
    return _node("MatMul", [l.inputs[0], w.weight((kdim, ndim), "w")], l)


def _clip(l: Layer, attrs: dict, w: _Weights):
    lo, hi = attrs.pop("min", 0.0), attrs.pop("max", 6.0)
    return _node("Clip", [l.inputs[0], w.const(np.array(lo, np.float32), "lo"), w.const(np.array(hi, np.float32), "hi")], l)


def _reshape(l: Layer, attrs: dict, w: _Weights):
    """Reshape, and Squeeze/Unsqueeze as the Reshape to their recorded output shape."""
    return _node("Reshape", [l.inputs[0], w.const(np.array(l.output_shapes[0], dtype=np.int64), "shape")], l)


def _reduce_sum(l: Layer, attrs: dict, w: _Weights):
    axes = attrs.pop("axes", None)
    if axes is None:
        i, o = l.input_shapes[0], l.output_shapes[0]
        if len(i) != len(o):
            return None
        axes = [d for d in range(len(i)) if i[d] != o[d]]
    return _node("ReduceSum", [l.inputs[0], w.const(np.array(axes, np.int64), "axes")], l, **attrs)


def _identity(l: Layer, attrs: dict, w: _Weights):
    """Dropout at inference (its old-opset attributes are invalid at opset 17)."""
    return _node("Identity", [l.inputs[0]], l)


def _binary_with_constant(l: Layer, w: _Weights):
    """A binary op whose second operand is a constant: its shape from the layer's parameter count."""
    out = l.output_shapes[0]
    p = max(l.params, 1)
    if p == 1:
        cshape: tuple = ()
    elif out and p == out[-1]:
        cshape = (p,)
    elif len(out) == 4 and p == out[1]:
        cshape = (p, 1, 1)
    elif p == numel(out):
        cshape = tuple(out)
    else:
        cshape = ()
    return _node(l.op, [l.inputs[0], w.weight(cshape, "k")], l)


BUILDERS: dict[str, Builder] = {
    "Conv": _conv, "BatchNormalization": _batchnorm, "Gemm": _gemm, "MatMul": _matmul, "Clip": _clip,
    "Reshape": _reshape, "Squeeze": _reshape, "Unsqueeze": _reshape, "ReduceSum": _reduce_sum,
    "Dropout": _identity,
}


def _schema_attrs(op: str, attrs: dict) -> dict:
    """Keep only the attributes the op has at ``OPSET`` (models from older opsets carry
    attributes such as BatchNormalization's ``spatial`` that later opsets removed)."""
    from onnx import defs

    try:
        allowed = set(defs.get_schema(op, OPSET).attributes)
    except Exception:
        return attrs
    return {k: v for k, v in attrs.items() if k in allowed or k in ("min", "max", "axes")}


def layer_nodes(layer: Layer, weights: _Weights):
    """ONNX node(s) for one layer, or None when the layer cannot be rebuilt from its record."""
    if not layer.outputs or any(not s for s in layer.output_shapes[:1]):
        return None
    if any(isinstance(v, str) and v.startswith("<") for v in layer.attrs.values()):
        return None
    attrs = _schema_attrs("Identity" if layer.op == "Dropout" else layer.op, dict(layer.attrs))
    build = BUILDERS.get(layer.op)
    if build is not None:
        return build(layer, attrs, weights)
    if layer.op in BINARY and len(layer.inputs) == 1:
        return _binary_with_constant(layer, weights)
    if layer.op in PASS_THROUGH or layer.op in BINARY:
        return _node(layer.op, list(layer.inputs), layer, **attrs)
    return None


def skeleton_model(layers: list[Layer]):
    """An ONNX ModelProto computing ``layers``.

    Returns ``(model, standins)``: layers that cannot be rebuilt become graph inputs (their
    outputs) so the rest of the graph keeps its fusion opportunities; ``standins`` lists them.
    """
    from onnx import TensorProto, helper

    weights = _Weights()
    nodes, standins = [], []
    produced: dict[str, tuple] = {}
    shapes = tensor_shapes(layers)
    for l in layers:
        made = layer_nodes(l, weights) if l.modelled or l.op in PASS_THROUGH else None
        if made is None:
            standins.append(l)
            continue
        nodes.extend(made)
        for t in l.outputs[:1]:
            produced[t] = shapes.get(t, ())
    consumed = {i for n in nodes for i in n.input}
    graph_inputs, seen = [], set()
    for n in nodes:
        for i in n.input:
            if i and i not in produced and not i.startswith("__c") and i not in seen:
                seen.add(i)
                graph_inputs.append(helper.make_tensor_value_info(i, TensorProto.FLOAT, list(shapes.get(i, ()))))
    outputs = [t for t in produced if t not in consumed]
    # tensors consumed by a stand-in must stay materialised
    standin_inputs = {t for l in standins for t in l.inputs}
    outputs += [t for t in produced if t in consumed and t in standin_inputs]
    graph_outputs = [helper.make_tensor_value_info(t, TensorProto.FLOAT, list(produced[t])) for t in dict.fromkeys(outputs)]
    value_info = [helper.make_tensor_value_info(t, TensorProto.FLOAT, list(s)) for t, s in produced.items()
                  if t not in set(outputs)]
    graph = helper.make_graph(nodes, "skeleton", graph_inputs, graph_outputs, weights.inits, value_info=value_info)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    return model, standins


def tensor_shapes(layers: list[Layer]) -> dict[str, tuple]:
    """Static shapes of the tensors ``layers`` read and write."""
    shapes: dict[str, tuple] = {}
    for l in layers:
        for t, s in zip(l.inputs, l.input_shapes):
            shapes.setdefault(t, tuple(s))
        for t, s in zip(l.outputs, l.output_shapes):
            shapes[t] = tuple(s)
    return shapes
