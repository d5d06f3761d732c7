"""Is this ONNX file a model onnxruntime would accept?  Checked before anything is costed.

onnx's checker is the floor (single assignment, topological order, registered ops and their
attributes); on top of it what onnxruntime refuses at session creation and what would make
the costing allocate or loop on nonsense: opsets outside 7..current, operator domains no
runtime defines, graphs without outputs, initializers whose data do not fill their dims,
negative / zero / absurd dimensions (refused from the dims alone, before any allocation), and
convolutions whose shapes do not fit together.  Every refusal is a ``CodesignError`` naming the
file and the node or tensor.
"""
from __future__ import annotations

import math

import onnx
from onnx import TensorProto, helper

from hwmodels.errors import CodesignError

MIN_OPSET = 7                      # the oldest opset onnxruntime loads
MAX_ELEMENTS = 2**32               # per tensor: 16 GiB of fp32, beyond any network this tool costs
KNOWN_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"}
_PACKED_4BIT = {TensorProto.INT4, TensorProto.UINT4} | ({TensorProto.FLOAT4E2M1} if hasattr(TensorProto, "FLOAT4E2M1") else set())
_TYPED_FIELDS = ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")


def check_model(model: onnx.ModelProto, source: str) -> None:
    """Raise ``CodesignError`` for a model onnxruntime would refuse or that cannot be costed."""
    _check_versions(model, source)
    _check_domains(model, source)
    _run_checker(model, source)
    g = model.graph
    if not g.output:
        raise CodesignError(f"{source}: the graph declares no outputs; export the model with its outputs")
    for t in g.initializer:
        _check_tensor(t, source)


def check_sizes(shapes: dict[str, tuple[int, ...]], inputs: list[str], source: str) -> None:
    """Every tensor's size after ``--input-shape`` and shape inference, before any rule multiplies
    it: no negative dimension, none beyond ``MAX_ELEMENTS``; a graph input also not empty."""
    for name, shape in shapes.items():
        what = "input" if name in inputs else "tensor"
        if any(d < 0 for d in shape):
            raise CodesignError(f"{source}: {what} {name!r} has a negative dimension {list(shape)} "
                                f"({'fix the export' if what == 'input' else 'its inputs do not fit the op; fix the model'})")
        if what == "input" and 0 in shape:
            raise CodesignError(f"{source}: input {name!r} has a zero-size dimension {list(shape)}: nothing to run; "
                                f"give its real size with --input-shape")
        if math.prod(shape) > MAX_ELEMENTS:
            raise CodesignError(f"{source}: {what} {name!r} would hold {math.prod(shape):.3g} elements ({list(shape)}), "
                                f"more than {MAX_ELEMENTS:.3g}; check its dims or --input-shape")


def _check_versions(model: onnx.ModelProto, source: str) -> None:
    if model.ir_version > onnx.IR_VERSION:
        raise CodesignError(f"{source}: ONNX IR version {model.ir_version} is newer than this onnx reads "
                            f"({onnx.IR_VERSION}); export with an older IR/opset")
    newest = onnx.defs.onnx_opset_version()
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx") and not MIN_OPSET <= op.version <= newest:
            raise CodesignError(f"{source}: opset {op.version} is outside {MIN_OPSET}..{newest} (what onnx and "
                                f"onnxruntime support); re-export with an opset in that range")


def _check_domains(model: onnx.ModelProto, source: str) -> None:
    local = {f.domain for f in model.functions}
    for node in model.graph.node:
        if node.domain not in KNOWN_DOMAINS and node.domain not in local:
            raise CodesignError(f"{source}: node {node.name or node.output[0]!r} is op {node.op_type!r} of domain "
                                f"{node.domain!r}, which neither onnx nor onnxruntime defines; export with standard ops")


def _run_checker(model: onnx.ModelProto, source: str) -> None:
    """onnx's structural checker on a copy whose external tensors are not looked for (they are
    checked, and read or left unread, by ``onnx_external``) and whose inputs/outputs may lack a
    shape (onnxruntime accepts that)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    g = copy.graph
    external = [t for t in g.initializer if t.data_location == TensorProto.EXTERNAL]
    declared = {i.name for i in g.input}
    for t in external:                 # an external weight becomes a declared input of its dims
        if t.name not in declared:     # (older exports list initializers among the inputs already)
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    kept = [t for t in g.initializer if t.data_location != TensorProto.EXTERNAL]
    del g.initializer[:]
    g.initializer.extend(kept)
    for node in g.node:                # an external Constant value: a one-element stand-in
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_location == TensorProto.EXTERNAL:
                a.t.CopyFrom(helper.make_tensor(a.t.name, TensorProto.FLOAT, [1], [0.0]))
    for vi in list(copy.graph.input) + list(copy.graph.output):
        if vi.type.HasField("tensor_type") and not vi.type.tensor_type.HasField("shape"):
            vi.type.tensor_type.shape.SetInParent()
    try:
        onnx.checker.check_model(copy)
    except onnx.checker.ValidationError as e:
        raise CodesignError(f"{source}: onnx's checker refuses it: {_first_line(e)}") from None
    except Exception as e:       # the checker's own failures on garbage count as refusals too
        raise CodesignError(f"{source}: onnx's checker refuses it ({type(e).__name__}: {_first_line(e)})") from None


def _check_tensor(t: TensorProto, source: str) -> None:
    if any(d < 0 for d in t.dims):
        raise CodesignError(f"{source}: initializer {t.name!r} has negative dims {list(t.dims)}")
    n = math.prod(t.dims)
    if n > MAX_ELEMENTS:
        raise CodesignError(f"{source}: initializer {t.name!r} declares {n:.3g} elements ({list(t.dims)}), more than "
                            f"{MAX_ELEMENTS:.3g}; the file is damaged or not a network this tool costs")
    if t.data_location == TensorProto.EXTERNAL:
        return
    if t.HasField("raw_data"):
        try:
            size = helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        except Exception:
            raise CodesignError(f"{source}: initializer {t.name!r} has unknown data type {t.data_type}") from None
        if t.data_type in (TensorProto.STRING,):
            return
        bits = {TensorProto.INT4: 4, TensorProto.UINT4: 4}.get(t.data_type)
        expected = (n * bits + 7) // 8 if bits else n * size
        if len(t.raw_data) != expected:
            raise CodesignError(f"{source}: initializer {t.name!r} holds {len(t.raw_data)} bytes where its dims "
                                f"{list(t.dims)} need {expected}; the file is damaged")
        return
    held = max((len(getattr(t, f)) for f in _TYPED_FIELDS), default=0)
    packed = (n + 1) // 2 if t.data_type in _PACKED_4BIT else None   # int4/uint4: 2 values per int32_data entry
    if held and held not in (n, 2 * n, packed):  # complex types store 2 values per element
        raise CodesignError(f"{source}: initializer {t.name!r} holds {held} values where its dims {list(t.dims)} "
                            f"need {n}; the file is damaged")


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
