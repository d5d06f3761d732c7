"""Per-op cost rules: one small function per ONNX op type, looked up in a table.

Each rule sees a ``NodeView`` (static input/output shapes, attributes, which inputs are
constants) and returns ``OpCost``: the op class, MACs, other arithmetic ops, and the
convolution / GEMM dimensions that array models need.  Ops absent from the table are kept
as zero-MAC "not modelled" layers by the importer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from hwmodels.workload import ConvDims, GemmDims


@dataclass
class NodeView:
    op: str
    attrs: dict
    input_shapes: list[tuple[int, ...] | None]   # None for an absent optional input
    output_shapes: list[tuple[int, ...]]
    input_is_const: list[bool]


@dataclass
class OpCost:
    op_class: str
    macs: int = 0
    ops: int = 0
    conv: ConvDims | None = None
    gemm: GemmDims | None = None
    notes: list[str] = field(default_factory=list)


def numel(shape) -> int:
    return math.prod(int(d) for d in shape) if shape is not None else 0


def _out_elems(v: NodeView) -> int:
    return numel(v.output_shapes[0]) if v.output_shapes else 0


# --- convolutions -------------------------------------------------------------------------

def _pads(attrs: dict, nspatial: int) -> list[int]:
    pads = list(attrs.get("pads", [0] * (2 * nspatial)))
    return pads if len(pads) == 2 * nspatial else [0] * (2 * nspatial)


def conv(v: NodeView) -> OpCost:
    x, w = v.input_shapes[0], v.input_shapes[1]
    y = v.output_shapes[0]
    groups = int(v.attrs.get("group", 1))
    if groups < 1 or x[1] % groups or w[1] * groups != x[1]:
        raise ValueError(f"input channels {x[1]} do not match the weights' {w[1]} x group {groups}")
    if not y or any(d <= 0 for d in y[2:]) or len(y) != len(x):
        raise ValueError(f"the kernel {list(w[2:])} does not fit the padded input {list(x[2:])}")
    nsp = len(x) - 2
    if nsp not in (1, 2):
        macs = numel(y) * numel(w[1:])
        return OpCost("conv", macs=macs, ops=numel(y) if _has_bias(v) else 0,
                      notes=[f"{nsp}-D conv: MACs counted, no array dims"])
    # 1-D convs are 2-D convs with height 1
    xs = (1,) + tuple(x[2:]) if nsp == 1 else tuple(x[2:])
    ys = (1,) + tuple(y[2:]) if nsp == 1 else tuple(y[2:])
    ks = (1,) + tuple(w[2:]) if nsp == 1 else tuple(w[2:])
    strides = list(v.attrs.get("strides", [1] * nsp))
    dil = list(v.attrs.get("dilations", [1] * nsp))
    pads = _pads(v.attrs, nsp)
    if nsp == 1:
        strides, dil = [1] + strides, [1] + dil
        pads = [0, pads[0], 0, pads[1]]
    dims = ConvDims(
        n=int(x[0]), c=int(x[1]), h=int(xs[0]), w=int(xs[1]), k=int(w[0]),
        r=int(ks[0]), s=int(ks[1]), p=int(ys[0]), q=int(ys[1]),
        stride_h=int(strides[0]), stride_w=int(strides[1]),
        dilation_h=int(dil[0]), dilation_w=int(dil[1]), groups=groups,
        pad_top=int(pads[0]), pad_left=int(pads[1]), pad_bottom=int(pads[2]), pad_right=int(pads[3]),
    )
    if groups > 1 and groups == dims.c:
        op_class = "depthwise_conv"
    elif groups == 1 and dims.r == 1 and dims.s == 1:
        op_class = "pointwise_conv"
    else:
        op_class = "conv"
    return OpCost(op_class, macs=dims.macs, ops=numel(y) if _has_bias(v) else 0, conv=dims)


def conv_transpose(v: NodeView) -> OpCost:
    """Each input pixel scatters a (K/g x R x S) patch: the col2im GEMM of the transposed conv."""
    x, w = v.input_shapes[0], v.input_shapes[1]
    groups = int(v.attrs.get("group", 1))
    n, c = int(x[0]), int(x[1])
    spatial = numel(x[2:])
    k_per_group = int(w[1])
    kernel = numel(w[2:])
    gemm = GemmDims(batch=groups, m=n * spatial, n=k_per_group * kernel, k=c // groups)
    return OpCost("conv", macs=gemm.macs, ops=_out_elems(v) if _has_bias(v) else 0, gemm=gemm)


def _has_bias(v: NodeView) -> bool:
    return len(v.input_shapes) > 2 and v.input_shapes[2] is not None


# --- matrix products ----------------------------------------------------------------------

def gemm(v: NodeView) -> OpCost:
    a, b = v.input_shapes[0], v.input_shapes[1]
    m, k = (a[1], a[0]) if v.attrs.get("transA", 0) else (a[0], a[1])
    n = b[0] if v.attrs.get("transB", 0) else b[1]
    dims = GemmDims(batch=1, m=int(m), n=int(n), k=int(k))
    ops = _out_elems(v) if len(v.input_shapes) > 2 and v.input_shapes[2] is not None else 0
    return OpCost("matmul", macs=dims.macs, ops=ops, gemm=dims)


def matmul(v: NodeView) -> OpCost:
    a, b = list(v.input_shapes[0]), list(v.input_shapes[1])
    if len(a) == 1:
        a = [1] + a
    if len(b) == 1:
        b = b + [1]
    m, k, n = a[-2], a[-1], b[-1]
    batch_shape = _broadcast(a[:-2], b[:-2])
    dims = GemmDims(batch=numel(batch_shape), m=int(m), n=int(n), k=int(k))
    return OpCost("matmul", macs=dims.macs, gemm=dims)


def _broadcast(a: list[int], b: list[int]) -> list[int]:
    n = max(len(a), len(b))
    a = [1] * (n - len(a)) + list(a)
    b = [1] * (n - len(b)) + list(b)
    return [max(x, y) for x, y in zip(a, b)]


def einsum(v: NodeView) -> OpCost:
    """MACs = product of the sizes of every index in the equation (each output element sums the rest)."""
    eq = v.attrs.get("equation", "")
    if isinstance(eq, bytes):
        eq = eq.decode()
    lhs = eq.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for term, shape in zip(lhs, v.input_shapes):
        if shape is None or "." in term:
            return OpCost("matmul", notes=["einsum with ellipsis: MACs not counted"])
        for letter, d in zip(term, shape):
            sizes[letter] = max(sizes.get(letter, 1), int(d))
    return OpCost("matmul", macs=math.prod(sizes.values()) if len(lhs) > 1 else 0)


# --- everything else ----------------------------------------------------------------------

def pool(v: NodeView) -> OpCost:
    kernel = v.attrs.get("kernel_shape")
    if kernel is None:  # global pooling reads every input element once
        return OpCost("pool", ops=numel(v.input_shapes[0]))
    return OpCost("pool", ops=_out_elems(v) * numel(kernel))


def per_element(cost_per_element: int, op_class: str = "elementwise") -> Callable[[NodeView], OpCost]:
    def rule(v: NodeView) -> OpCost:
        return OpCost(op_class, ops=cost_per_element * _out_elems(v))
    return rule


def variadic_elementwise(v: NodeView) -> OpCost:
    """Sum/Max/Min/Mean of n inputs: n-1 ops per output element."""
    return OpCost("elementwise", ops=max(len(v.input_shapes) - 1, 1) * _out_elems(v))


def reduce(v: NodeView) -> OpCost:
    return OpCost("reduce", ops=numel(v.input_shapes[0]))


def lrn(v: NodeView) -> OpCost:
    return OpCost("norm", ops=(int(v.attrs.get("size", 5)) + 3) * _out_elems(v))


def data_movement(v: NodeView) -> OpCost:
    return OpCost("data_movement")


# ops per element for elementwise ops: 1 for arithmetic, more for transcendental ones
_ELEMENTWISE_COST = {
    "Add": 1, "Sub": 1, "Mul": 1, "Div": 1, "Neg": 1, "Abs": 1, "Relu": 1, "LeakyRelu": 2,
    "PRelu": 2, "Clip": 2, "Max": 1, "Min": 1, "Pow": 4, "Sqrt": 4, "Reciprocal": 4,
    "Exp": 8, "Log": 8, "Erf": 8, "Tanh": 8, "Sigmoid": 8, "HardSigmoid": 3, "HardSwish": 4,
    "Gelu": 10, "Softplus": 10, "Mish": 12, "Elu": 8, "Selu": 8, "Celu": 8, "Softsign": 4,
    "Floor": 1, "Ceil": 1, "Round": 1, "Sign": 1, "Where": 1, "Equal": 1, "Less": 1,
    "Greater": 1, "LessOrEqual": 1, "GreaterOrEqual": 1, "Not": 1, "And": 1, "Or": 1,
    "Xor": 1, "Mod": 2, "Cast": 1, "Sin": 8, "Cos": 8, "IsNaN": 1, "IsInf": 1,
    "QuantizeLinear": 3, "DequantizeLinear": 2, "ThresholdedRelu": 2, "Shrink": 2,
}

_DATA_MOVEMENT = (
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice",
    "Gather", "GatherElements", "GatherND", "Pad", "Expand", "Tile", "Shape", "Identity",
    "Dropout", "DepthToSpace", "SpaceToDepth", "ConstantOfShape", "Size", "Range",
    "ScatterND", "ScatterElements", "Trilu", "CastLike", "NonZero",
)

RULES: dict[str, Callable[[NodeView], OpCost]] = {
    "Conv": conv,
    "ConvTranspose": conv_transpose,
    "Gemm": gemm,
    "MatMul": matmul,
    "Einsum": einsum,
    "MaxPool": pool,
    "AveragePool": pool,
    "LpPool": pool,
    "GlobalAveragePool": pool,
    "GlobalMaxPool": pool,
    "GlobalLpPool": pool,
    "BatchNormalization": per_element(2, "norm"),
    "InstanceNormalization": per_element(6, "norm"),
    "GroupNormalization": per_element(6, "norm"),
    "LayerNormalization": per_element(8, "norm"),
    "RMSNormalization": per_element(6, "norm"),
    "LRN": lrn,
    "Softmax": per_element(5, "softmax"),
    "LogSoftmax": per_element(6, "softmax"),
    "Sum": variadic_elementwise,
    "Mean": variadic_elementwise,
    "Resize": per_element(4),
    "Upsample": per_element(4),
    "ReduceMean": reduce, "ReduceSum": reduce, "ReduceMax": reduce, "ReduceMin": reduce,
    "ReduceProd": reduce, "ReduceL2": reduce, "ReduceL1": reduce, "ReduceSumSquare": reduce,
    "ReduceLogSumExp": reduce, "ArgMax": reduce, "ArgMin": reduce, "TopK": reduce,
    **{op: per_element(c) for op, c in _ELEMENTWISE_COST.items()},
    **{op: data_movement for op in _DATA_MOVEMENT},
}
