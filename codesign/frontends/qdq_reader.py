"""Per-layer bit-widths of a QDQ ONNX model, read from its QuantizeLinear / DequantizeLinear nodes.

A QDQ model says how each layer runs by the Q/DQ nodes on the layer's inputs; those nodes are
bookkeeping, not layers of their own.  This module finds them so that the importer can fold
them into the layers they feed (edges go producer -> consumer, as in the float model) and cost
each layer at the bits the model fixes.

- Weight bits: a quantized initializer (int4/uint4/int8/uint8/int16/uint16) feeding a
  DequantizeLinear, or a float initializer -> QuantizeLinear -> DequantizeLinear
  (onnxruntime.quantization's two styles); the width is the container's.  One exception: a
  4-bit container whose stored integers span at most 4 levels (e.g. all in [-2, 1] or [-1, 1])
  holds a 2-bit weight -- the project's own writer (``codesign.search.qdq``) stores per-channel
  symmetric 2-bit weights in int4, since onnxruntime has no 2-bit type.
- Activation bits: the QuantizeLinear on the layer's input (its zero point's type, else its
  ``output_dtype``, else uint8).  The Clip trick: a Clip in front of that QuantizeLinear whose
  range covers only 4 or 16 steps of the scale makes the input 2 or 4 bits in an 8-bit container.
- For a product of two activations (attention's QK^T and attn x V) the B operand plays the
  weight's role.  A layer quantized on its inputs but without weights runs at its activation
  width; a quantized weight without an input Q/DQ means float activations (32).

LayerNorm/Softmax-like layers (``FLOAT_CLASSES``) stay float (32 bits) even with Q/DQ around them:
a Q/DQ pair there says how the tensor is stored between two quantized MatMuls (onnxruntime's
quantize_static puts one on a Softmax that feeds attn x V), not that the normalisation is
integer arithmetic; the cost model maps 32 bits to the target's float precision, or to its
widest one where it has none (a target that runs them quantized).  Other unquantized layers (ReLU,
pooling, residual adds...) run at the widest width any quantized layer uses, the same rule the
search costs its candidates with (``Evaluation.assignment``), so that a model the search wrote
is costed here exactly as the search costed it.  Malformed Q/DQ nodes (a missing, zero or
negative scale, a zero point whose type differs from the data's) are one-line errors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hwmodels.bits import FLOAT_BITS, BitAssignment, LayerBits
from hwmodels.errors import CodesignError

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# integer containers -> bits (float8 containers count as 8-bit)
CONTAINER_BITS = {TensorProto.INT4: 4, TensorProto.UINT4: 4, TensorProto.INT8: 8, TensorProto.UINT8: 8,
                  TensorProto.INT16: 16, TensorProto.UINT16: 16, TensorProto.INT32: 32,
                  TensorProto.FLOAT8E4M3FN: 8, TensorProto.FLOAT8E4M3FNUZ: 8, TensorProto.FLOAT8E5M2: 8,
                  TensorProto.FLOAT8E5M2FNUZ: 8}
_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
_WEIGHTED = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1, "ConvInteger": 1, "MatMulInteger": 1}
FLOAT_CLASSES = ("norm", "softmax")     # stay float unless the model quantizes them itself
_WIDTHS = (2, 4, 8, 16)


@dataclass
class QdqView:
    """What the importer needs of a model's Q/DQ nodes."""

    folded: set[int] = field(default_factory=set)          # node indices that are not layers
    alias: dict[str, str] = field(default_factory=dict)    # DQ output -> the float tensor it carries
    act_bits: dict[str, int] = field(default_factory=dict)     # activation DQ output -> bits
    weight_bits: dict[str, int] = field(default_factory=dict)  # constant DQ output -> bits
    notes: list[str] = field(default_factory=list)

    def layer_bits(self, node: onnx.NodeProto) -> LayerBits | None:
        """The bits a (non-folded) node runs at, or None when none of its inputs is quantized."""
        ins = list(node.input)
        w_pos = _WEIGHTED.get(node.op_type)
        weight_name = ins[w_pos] if w_pos is not None and len(ins) > w_pos else ""
        acts = [self.act_bits[i] for k, i in enumerate(ins) if i in self.act_bits and k != w_pos]
        w_bits = None
        if weight_name in self.weight_bits:
            w_bits = self.weight_bits[weight_name]
        elif weight_name in self.act_bits:            # activation x activation: B is the "weight"
            w_bits = self.act_bits[weight_name]
        if w_bits is None and not acts:
            return None
        a_bits = max(acts) if acts else FLOAT_BITS
        if w_bits is None:          # a float weight (or B operand) stays float; no weight: the input's width
            w_bits = FLOAT_BITS if weight_name else a_bits
        return LayerBits(_valid(w_bits), _valid(a_bits))


def _valid(bits: int) -> int:
    """A width the cost models know: 2/4/8/16, or 32 (float) for anything wider."""
    return bits if bits in _WIDTHS else FLOAT_BITS


def standard_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with onnxruntime's com.microsoft QuantizeLinear/DequantizeLinear (what
    onnxruntime.quantization writes for int4/16-bit below opset 21) in the standard domain, the
    same ops, so that shape inference follows them.  For costing only: never saved or run."""
    if not any(n.op_type in QDQ_OPS and n.domain == "com.microsoft" for n in model.graph.node):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for n in copy.graph.node:
        if n.op_type in QDQ_OPS and n.domain == "com.microsoft":
            n.domain = ""
    return copy


def has_qdq(model: onnx.ModelProto) -> bool:
    return any(n.op_type in QDQ_OPS and n.domain in ("", "ai.onnx") for n in model.graph.node)


def read_qdq(model: onnx.ModelProto, static: set[str], elem_type: dict[str, int], source: str) -> QdqView | None:
    """The Q/DQ structure of ``model`` (after shape inference), or None when it has no Q/DQ nodes.

    ``static``: tensors known before any input arrives; ``elem_type``: tensor -> ONNX element type."""
    if not has_qdq(model):
        return None
    g = model.graph
    consts = _Constants(model)
    producer: dict[str, tuple[int, onnx.NodeProto]] = {}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for i, n in enumerate(g.node):
        for o in n.output:
            producer[o] = (i, n)
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    graph_outputs = {o.name for o in g.output}
    view = QdqView()
    unread_weights = []
    for index, node in enumerate(g.node):
        if node.op_type not in QDQ_OPS or node.domain not in ("", "ai.onnx"):
            continue
        where = f"{source}: {node.op_type} node {node.name or node.output[0]!r}"
        _check_node(node, where, consts, elem_type)
        if node.op_type != "DequantizeLinear":
            continue
        x, out = node.input[0], node.output[0]
        if out in static:                                  # a weight (or bias) chain, folded as a constant
            bits = _weight_bits(x, producer, consts, elem_type, where)
            if bits is None:
                unread_weights.append(x)
                bits = CONTAINER_BITS.get(elem_type.get(x, 0), FLOAT_BITS)
            view.weight_bits[out] = bits
            continue
        bits = CONTAINER_BITS.get(elem_type.get(x, 0))
        q = producer.get(x)
        if q is None or q[1].op_type != "QuantizeLinear":
            if bits is not None:
                view.act_bits[out] = bits        # e.g. an integer graph input: stays a layer
            continue
        q_index, q_node = q
        bits = _quantize_bits(q_node, elem_type)
        src = q_node.input[0]
        clip = producer.get(src)
        narrowed = _clip_bits(clip[1], q_node, consts, bits) if clip and clip[1].op_type == "Clip" else None
        foldable = all(c.op_type == "DequantizeLinear" for c in consumers.get(x, [])) and x not in graph_outputs
        if narrowed is not None and foldable and src not in graph_outputs and \
                all(c.op_type == "QuantizeLinear" for c in consumers.get(src, [])):
            bits = narrowed
            view.folded.add(clip[0])
            src = clip[1].input[0]
        view.act_bits[out] = bits
        if foldable:
            view.folded.update((q_index, index))
            view.alias[out] = src
    if unread_weights:
        view.notes.append(f"weight bits of {len(unread_weights)} tensor(s) read from their types only (values not "
                          f"read); a 2-bit weight stored in int4 reads as 4 bits")
    return view


def assignment(per_layer: dict[str, LayerBits], op_class: dict[str, str]) -> BitAssignment | None:
    """The BitAssignment of a QDQ model: its layers' own bits; float for norm/softmax layers; the
    widest width in use for every other unquantized layer (the search's rule)."""
    if not per_layer:
        return None
    widest = max(b.widest for b in per_layer.values())
    layers = dict(per_layer)
    for name, cls in op_class.items():
        if name not in layers and cls in FLOAT_CLASSES:
            layers[name] = LayerBits(FLOAT_BITS, FLOAT_BITS)
    return BitAssignment(LayerBits(widest, widest), layers)


def layer_bits(model_or_path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, tuple[int, int]]:
    """layer name -> (w_bits, a_bits) of every layer of a QDQ model, as ``codesign analyze`` costs it
    (the names are the Workload's; layers the model leaves unquantized get the rule of ``assignment``).
    A model without Q/DQ nodes gives {}.  ``model_or_path``: an ONNX file or a ModelProto."""
    from codesign.frontends.onnx_frontend import load_onnx, workload_from_model

    if isinstance(model_or_path, onnx.ModelProto):
        wl = workload_from_model(model_or_path, input_shapes)
    else:
        wl = load_onnx(Path(model_or_path), input_shapes)
    if wl.bits is None:
        return {}
    return {l.name: (wl.bits.for_layer(l.name).weight, wl.bits.for_layer(l.name).activation) for l in wl.layers()}


# ----- reading the nodes -------------------------------------------------------------------------

class _Constants:
    """Values of initializers and Constant nodes, read on demand."""

    def __init__(self, model: onnx.ModelProto):
        self.tensors: dict[str, TensorProto] = {t.name: t for t in model.graph.initializer}
        for n in model.graph.node:
            if n.op_type == "Constant" and n.output:
                for a in n.attribute:
                    if a.name == "value" and a.HasField("t"):
                        self.tensors[n.output[0]] = a.t

    def has(self, name: str) -> bool:
        return name in self.tensors

    def value(self, name: str) -> np.ndarray | None:
        """The tensor's values, or None when it is not a constant or its external data is unread."""
        t = self.tensors.get(name)
        if t is None or t.data_location == TensorProto.EXTERNAL:
            return None
        try:
            return numpy_helper.to_array(t)
        except Exception:
            return None

    def elem_type(self, name: str) -> int | None:
        t = self.tensors.get(name)
        return t.data_type if t is not None else None


def _check_node(node: onnx.NodeProto, where: str, consts: _Constants, elem_type: dict[str, int]) -> None:
    """A Q/DQ node onnxruntime would refuse, or one whose scale makes nonsense, is an error."""
    ins = list(node.input)
    if len(ins) < 2 or not ins[1]:
        raise CodesignError(f"{where} has no scale input; a {node.op_type} needs (x, scale[, zero_point])")
    scale = ins[1]
    s_type = consts.elem_type(scale) or elem_type.get(scale)
    if s_type is not None and s_type not in _FLOAT_TYPES:
        raise CodesignError(f"{where}: scale {scale!r} is of type {_type_name(s_type)}; a scale must be float")
    values = consts.value(scale)
    if values is not None:
        v = values.astype(np.float64)
        if v.size == 0 or not np.all(np.isfinite(v)) or np.any(v <= 0):
            bad = "empty" if v.size == 0 else f"{v.reshape(-1)[~(np.isfinite(v.reshape(-1)) & (v.reshape(-1) > 0))][0]:g}"
            raise CodesignError(f"{where}: scale {scale!r} holds {bad}; every scale must be a finite number > 0 "
                                f"(re-run the quantizer's calibration)")
    zp = ins[2] if len(ins) > 2 and ins[2] else ""
    zp_type = (consts.elem_type(zp) or elem_type.get(zp)) if zp else None
    if node.op_type == "DequantizeLinear":
        x_type = consts.elem_type(ins[0]) or elem_type.get(ins[0])
        if zp_type is not None and x_type is not None and zp_type != x_type:
            raise CodesignError(f"{where}: zero point {zp!r} is {_type_name(zp_type)} but the data {ins[0]!r} is "
                                f"{_type_name(x_type)}; they must be of one type")
        if x_type is not None and x_type not in CONTAINER_BITS:
            raise CodesignError(f"{where}: data {ins[0]!r} is {_type_name(x_type)}, not a quantized integer type")
    else:
        out_dtype = _attr(node, "output_dtype", 0)
        if zp_type is not None and out_dtype and zp_type != out_dtype:
            raise CodesignError(f"{where}: zero point {zp!r} is {_type_name(zp_type)} but output_dtype is "
                                f"{_type_name(out_dtype)}; they must agree")
        if zp_type is not None and zp_type not in CONTAINER_BITS:
            raise CodesignError(f"{where}: zero point {zp!r} is {_type_name(zp_type)}, not a quantized integer type")
    axis_len = _axis_len(node, ins[0], consts)
    if values is not None and values.ndim == 1 and values.size > 1 and axis_len is not None \
            and _attr(node, "block_size", 0) == 0 and values.size != axis_len:
        raise CodesignError(f"{where}: scale {scale!r} has {values.size} values but axis "
                            f"{_attr(node, 'axis', 1)} of {ins[0]!r} has {axis_len}; give one scale per channel")


def _axis_len(node: onnx.NodeProto, x: str, consts: _Constants) -> int | None:
    t = consts.tensors.get(x)
    if t is None or not t.dims:
        return None
    axis = _attr(node, "axis", 1)
    dims = list(t.dims)
    return dims[axis] if -len(dims) <= axis < len(dims) else None


def _quantize_bits(q: onnx.NodeProto, elem_type: dict[str, int]) -> int:
    """Container width of a QuantizeLinear's output: zero point's type, else output_dtype, else uint8."""
    zp = q.input[2] if len(q.input) > 2 and q.input[2] else ""
    t = elem_type.get(zp) if zp else None
    t = t or _attr(q, "output_dtype", 0) or elem_type.get(q.output[0]) or TensorProto.UINT8
    return CONTAINER_BITS.get(t, 8)


def _weight_bits(x: str, producer, consts: _Constants, elem_type: dict[str, int], where: str) -> int | None:
    """Bits of a constant DQ input: a quantized initializer (4-bit containers narrowed to 2 bits by
    their values), or a float constant quantized by a QuantizeLinear.  None: values unread."""
    q = producer.get(x)
    if q is not None and q[1].op_type == "QuantizeLinear":
        return _quantize_bits(q[1], elem_type)
    t = consts.elem_type(x) or elem_type.get(x)
    bits = CONTAINER_BITS.get(t or 0)
    if bits is None:
        raise CodesignError(f"{where}: weight {x!r} is {_type_name(t)}, not a quantized integer type")
    if bits == 4:
        values = consts.value(x) if consts.has(x) else None
        if values is None:
            return None if consts.has(x) else bits
        ints = values.astype(np.int64)
        if ints.size and int(ints.max()) - int(ints.min()) + 1 <= 4:
            return 2
    return bits


def _clip_bits(clip: onnx.NodeProto, q: onnx.NodeProto, consts: _Constants, container: int) -> int | None:
    """The Clip trick: a Clip before a QuantizeLinear leaving only ``levels`` steps of its scale
    (a narrower width in the container), or None when the Clip does not narrow it."""
    ins = list(clip.input)
    lo = consts.value(ins[1]) if len(ins) > 1 and ins[1] else None
    hi = consts.value(ins[2]) if len(ins) > 2 and ins[2] else None
    if lo is None and hi is None:                   # opset < 11: min/max attributes
        lo, hi = _attr(clip, "min", None), _attr(clip, "max", None)
    scale = consts.value(q.input[1])
    if lo is None or hi is None or scale is None or np.size(scale) != 1:
        return None
    steps = (float(np.asarray(hi).reshape(-1)[0]) - float(np.asarray(lo).reshape(-1)[0])) / float(np.asarray(scale).reshape(-1)[0])
    if not math.isfinite(steps) or steps < 0:
        return None
    levels = round(steps) + 1
    for b in _WIDTHS:
        if b < container and levels <= 2 ** b:
            return b
    return None


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _type_name(t: int | None) -> str:
    if not t:
        return "of unknown type"
    try:
        return TensorProto.DataType.Name(t).lower()
    except ValueError:
        return f"type {t}"


# ----- what analyze / check cost -----------------------------------------------------------------

def costing_bits(spec, workload) -> tuple[BitAssignment | None, str, list[str]]:
    """The assignment ``analyze``/``check`` cost with, where it came from, and notes.

    ``--bits`` (``spec``) overrides the bits a QDQ model fixes, with a note saying so: it is how a
    user asks "what if this model ran at other widths".  Without it a QDQ model's own bits apply;
    a float model gets the target's default (None)."""
    from hwmodels.bits import parse_bits

    names = [l.name for l in workload.layers()]
    if spec is not None:
        notes = ["--bits overrides the bit-widths read from the model's Q/DQ nodes"] if workload.bits is not None else []
        return parse_bits(spec, names), "--bits", notes
    if workload.bits is not None:
        return workload.bits, "model", []
    return None, "target default", []


def bits_json(assignment: BitAssignment | None, source: str, workload) -> dict:
    """The ``bits`` object of analyze's JSON: where the bits came from and each layer's widths."""
    out = {"source": source}
    if assignment is None:
        return out
    quantized = set(workload.quantized_layers)
    out["default"] = {"weight": assignment.default.weight, "activation": assignment.default.activation}
    out["layers"] = {l.name: {"weight": assignment.for_layer(l.name).weight,
                              "activation": assignment.for_layer(l.name).activation,
                              "from_qdq": source == "model" and l.name in quantized}
                     for l in workload.layers()}
    return out
