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
ORT_WRITER = "onnxruntime.quantization"
# what onnxruntime.quantization's QDQQuantizer writes and onnxruntime 1.31 runs: per-channel int4/int8/int16
# weights, uint8/uint16 activations (no 2-bit type; uint4 activations fuse into QLinearConv that it rejects)
ORT_WEIGHT_BITS = (4, 8, 16)
ORT_ACT_BITS = (8, 16)
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
        """The QDQ model as bytes and the name of the writer that made it: onnxruntime.quantization
        where the map fits what it writes, the project's writer otherwise (2-bit or 4-bit activations,
        or layers reading one tensor at different activation widths)."""
        if self.ort_fits(bits):
            return self._write_ort(bits), ORT_WRITER
        return self.write_own(bits), WRITER

    def ort_fits(self, bits: dict[str, tuple[int, int]]) -> bool:
        quantized = {n: b for n, b in bits.items() if min(b) < 32}
        if not quantized or any(w not in ORT_WEIGHT_BITS or a not in ORT_ACT_BITS for w, a in quantized.values()):
            return False
        by_tensor: dict[str, set[int]] = {}
        for n, (_, a) in quantized.items():
            by_tensor.setdefault(self.model.node(n).input[0], set()).add(a)
        return all(len(v) == 1 for v in by_tensor.values())

    def _write_ort(self, bits: dict[str, tuple[int, int]]) -> bytes:
        """onnxruntime.quantization's QDQQuantizer with this run's calibrated ranges and per-tensor types."""
        from onnxruntime.quantization import QuantType
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
        from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

        wtype = {4: QuantType.QInt4, 8: QuantType.QInt8, 16: QuantType.QInt16}
        atype = {8: QuantType.QUInt8, 16: QuantType.QUInt16}
        quantized = {n: b for n, b in bits.items() if min(b) < 32}
        widest = max(a for _, a in quantized.values())
        overrides, act_bits = {}, {}
        for n, (w, a) in quantized.items():
            overrides[self.model.weights[n]] = [{"quant_type": wtype[w]}]
            act_bits[self.model.node(n).input[0]] = a
        ranges = {}
        for t in self.ranges.samples:
            a = act_bits.get(t, widest)
            scale, zp = self.ranges.params(t, a)
            levels = 2 ** a - 1
            ranges[t] = TensorData(lowest=np.array((0 - zp) * scale, np.float32),
                                   highest=np.array((levels - zp) * scale, np.float32))
            if t in act_bits or a != 8:
                overrides.setdefault(t, [{"quant_type": atype[a]}])
        proto = onnx.ModelProto()
        proto.CopyFrom(self.base)
        q = QDQQuantizer(proto, True, False, QuantType.QInt8, atype[widest], TensorsData(CalibrationMethod.MinMax, ranges),
                         list(quantized), [], list(self.model_ops), {"TensorQuantOverrides": overrides,
                                                                     "ActivationSymmetric": False, "WeightSymmetric": True})
        out = q.quantize_model()
        _topological(out.graph)        # it appends its Q/DQ nodes at the end; onnx's checker wants them in order
        onnx.checker.check_model(out)
        return out.SerializeToString()

    model_ops = ("Conv", "Gemm", "MatMul")

    def write_own(self, bits: dict[str, tuple[int, int]]) -> bytes:
        """The project's QDQ style (see the module docstring)."""
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
        return proto.SerializeToString()

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


def _topological(graph) -> None:
    """Reorder ``graph.node`` so that every node follows the producers of its inputs (stable)."""
    produced = {o: i for i, n in enumerate(graph.node) for o in n.output if o}
    nodes = list(graph.node)
    deps = [{produced[t] for t in n.input if t in produced} for n in nodes]
    order, placed, pending = [], set(), list(range(len(nodes)))
    while pending:
        rest = []
        for i in pending:
            if deps[i] <= placed:
                order.append(i)
                placed.add(i)
            else:
                rest.append(i)
        if len(rest) == len(pending):
            raise CodesignError("QDQ model: the quantized graph has a cycle")
        pending = rest
    sorted_nodes = [nodes[i] for i in order]
    del graph.node[:]
    graph.node.extend(sorted_nodes)


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _opset(proto: onnx.ModelProto) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
