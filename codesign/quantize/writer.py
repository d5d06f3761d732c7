"""A bit map -> a real QDQ ONNX model that onnxruntime runs.

The project's QDQ style (as ``codesign.search.qdq``): weights per output channel, symmetric,
in int4 (2- and 4-bit), int8 or int16 containers + DequantizeLinear; activations asymmetric per
tensor in uint8 (2-, 4-, 8-bit, with a Clip in front when narrower than 8 bits: onnxruntime 1.31
rejects uint4 activations in the QLinearConv it fuses) or uint16; biases as int32 at
a_scale x w_scale.  Each layer gets its own Q/DQ pair on its input, so two layers reading one
tensor (an attention block's q, k and v projections) may differ in bits.  Opset 21 (int4 and
16-bit Q/DQ).

``bits``: layer -> (weight bits, activation bits); 32 or an absent layer means float.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter

from codesign.quantize.calibrate import Ranges
from codesign.quantize.model import FloatModel
from hwmodels.errors import CodesignError

OPSET = 21
WRITER = "codesign-qdq"
_W_TYPE = {2: TensorProto.INT4, 4: TensorProto.INT4, 8: TensorProto.INT8, 16: TensorProto.INT16}
_A_TYPE = {2: TensorProto.UINT8, 4: TensorProto.UINT8, 8: TensorProto.UINT8, 16: TensorProto.UINT16}
_CONTAINER = {2: 8, 4: 8, 8: 8, 16: 16}
CLIP_RATIOS = np.linspace(0.5, 1.0, 11)


class QDQWriter:
    """Writes candidates of one float model; weight integers are computed once per (layer, width)."""

    def __init__(self, model: FloatModel, ranges: Ranges):
        self.model, self.ranges = model, ranges
        try:
            base = version_converter.convert_version(model.proto, OPSET) if _opset(model.proto) < OPSET else model.proto
        except Exception as e:
            raise CodesignError(f"{model.path}: cannot convert the model to opset {OPSET} for int4/16-bit Q/DQ "
                                f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
        self.base = base
        self._weights: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, int]] = {}

    def write(self, bits: dict[str, tuple[int, int]]) -> tuple[bytes, str]:
        """The QDQ model as bytes and the name of the writer that made it."""
        proto = onnx.ModelProto()
        proto.CopyFrom(self.base)
        g = proto.graph
        inits = {i.name: i for i in g.initializer}
        before: dict[str, list[onnx.NodeProto]] = {}
        for node in g.node:
            if node.name not in bits:
                continue
            w_bits, a_bits = bits[node.name]
            added: list[onnx.NodeProto] = []
            a_scale = None
            if a_bits < 32:
                a_scale, zp = self.ranges.params(self.model.node(node.name).input[0], a_bits)
                added += _quantize_input(node, a_bits, a_scale, zp, g)
            if w_bits < 32:
                ints, scale, axis = self._weight(node, w_bits, inits)
                q = f"{node.input[1]}_{node.name}_q{w_bits}"
                g.initializer.append(helper.make_tensor(q, _W_TYPE[w_bits], ints.shape, ints.ravel().tolist()))
                g.initializer.append(numpy_helper.from_array(scale, f"{q}_scale"))
                g.initializer.append(helper.make_tensor(f"{q}_zp", _W_TYPE[w_bits], scale.shape, [0] * scale.size))
                added.append(helper.make_node("DequantizeLinear", [q, f"{q}_scale", f"{q}_zp"], [f"{q}_dq"],
                                              name=f"{node.name}/weight_dq", axis=axis))
                node.input[1] = f"{q}_dq"
                if a_scale is not None and len(node.input) > 2 and node.input[2] in inits:
                    bias = numpy_helper.to_array(inits[node.input[2]])
                    if bias.ndim == 1 and bias.shape[0] == scale.shape[0]:
                        added.append(_int32_bias(node, bias, a_scale * scale.astype(np.float64), g))
            before[node.name] = added
        ordered = []
        for n in g.node:
            ordered += before.get(n.name, [])
            ordered.append(n)
        del g.node[:]
        g.node.extend(ordered)
        used = {i for n in g.node for i in n.input}
        keep = [i for i in g.initializer if i.name in used]
        del g.initializer[:]
        g.initializer.extend(keep)
        return proto.SerializeToString(), WRITER

    def _weight(self, node, bits: int, inits) -> tuple[np.ndarray, np.ndarray, int]:
        key = (node.name, bits)
        if key not in self._weights:
            w = numpy_helper.to_array(inits[self.model.weights[node.name]]).astype(np.float32)
            if node.op_type == "Conv" or (node.op_type == "Gemm" and _attr(node, "transB", 0)):
                axis = 0
            else:
                axis = w.ndim - 1          # MatMul / Gemm without transB: [K, N], channels last
            moved = np.moveaxis(w, axis, 0)
            ints, scale = quantize_per_channel(moved.reshape(moved.shape[0], -1), bits)
            ints = np.moveaxis(ints.reshape(moved.shape), 0, axis)
            self._weights[key] = (ints, scale, axis)
        return self._weights[key]


def quantize_per_channel(flat: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric integers per row with the clip ratio of least squared error; (ints, scale)."""
    qmax = 2 ** (bits - 1) - 1
    amax = np.maximum(np.abs(flat).max(axis=1), 1e-8)
    best_err = np.full(flat.shape[0], np.inf)
    best_scale = amax / qmax
    for r in (CLIP_RATIOS if bits < 16 else [1.0]):
        s = amax * r / qmax
        err = ((np.clip(np.rint(flat / s[:, None]), -qmax, qmax) * s[:, None] - flat) ** 2).sum(axis=1)
        better = err < best_err
        best_err, best_scale = np.where(better, err, best_err), np.where(better, s, best_scale)
    scale = best_scale.astype(np.float32)
    ints = np.clip(np.rint(flat / scale[:, None]), -qmax, qmax).astype(np.int32)
    return ints, scale


def _int32_bias(node, bias: np.ndarray, scale: np.ndarray, graph) -> onnx.NodeProto:
    """The bias as int32 at a_scale x w_scale (doubled where it would overflow int32)."""
    b = bias.astype(np.float64)
    s = np.where(scale > 0, scale, 1e-12)
    while np.any(np.abs(np.rint(b / s)) > 2**31 - 1):
        s = np.where(np.abs(np.rint(b / s)) > 2**31 - 1, s * 2, s)
    q = np.rint(b / s).astype(np.int32)
    name = f"{node.input[2]}_{node.name}_int32"
    graph.initializer.append(numpy_helper.from_array(q, name))
    graph.initializer.append(numpy_helper.from_array(s.astype(np.float32), f"{name}_scale"))
    graph.initializer.append(numpy_helper.from_array(np.zeros_like(q), f"{name}_zp"))
    node.input[2] = f"{name}_dq"
    return helper.make_node("DequantizeLinear", [name, f"{name}_scale", f"{name}_zp"], [f"{name}_dq"],
                            name=f"{node.name}/bias_dq", axis=0)


def _quantize_input(node, bits: int, scale: float, zero_point: int, graph) -> list[onnx.NodeProto]:
    tag = f"{node.name}/in0_a{bits}"
    graph.initializer.append(numpy_helper.from_array(np.array(scale, np.float32), f"{tag}_scale"))
    graph.initializer.append(helper.make_tensor(f"{tag}_zp", _A_TYPE[bits], [], [int(zero_point)]))
    out, src = [], node.input[0]
    if _CONTAINER[bits] != bits:
        # clip before quantizing (a Clip after the DequantizeLinear is dropped by onnxruntime's optimizer)
        lo = np.array((0 - zero_point) * scale, np.float32)
        hi = np.array((2 ** bits - 1 - zero_point) * scale, np.float32)
        graph.initializer.append(numpy_helper.from_array(lo, f"{tag}_lo"))
        graph.initializer.append(numpy_helper.from_array(hi, f"{tag}_hi"))
        out.append(helper.make_node("Clip", [src, f"{tag}_lo", f"{tag}_hi"], [f"{tag}_clipped"], name=f"{tag}/clip"))
        src = f"{tag}_clipped"
    out += [helper.make_node("QuantizeLinear", [src, f"{tag}_scale", f"{tag}_zp"], [f"{tag}_q"], name=f"{tag}/q"),
            helper.make_node("DequantizeLinear", [f"{tag}_q", f"{tag}_scale", f"{tag}_zp"], [f"{tag}_dq"], name=f"{tag}/dq")]
    node.input[0] = f"{tag}_dq"
    return out


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _opset(proto: onnx.ModelProto) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
