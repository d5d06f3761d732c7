"""ONNX -> Workload: static shapes by ONNX shape inference, costs by ``op_rules``.

Shapes inference leaves open come from one onnxruntime run (``shape_probe``); a QDQ model's
Q/DQ nodes are folded into the layers they feed and give the Workload its bits (``qdq_reader``).

Constant subgraphs (initializers, Constant/ConstantOfShape and anything computed only from
constants or from tensor shapes) are folded away: their float outputs count as the
parameters of the layer that consumes them, and they never become layers themselves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, shape_inference

from hwmodels.errors import CodesignError
from codesign.frontends.onnx_external import (is_external, load_external, location, needs_weights,
                                              unread_tensors, weights_note)
from codesign.frontends.onnx_checks import check_model, check_sizes
from codesign.frontends.op_rules import RULES, NodeView, OpCost, numel
from codesign.frontends.qdq_reader import FLOAT_CLASSES, assignment as qdq_assignment, read_qdq, standard_qdq
from hwmodels.bits import LayerBits
from hwmodels.workload import Layer, Workload

_CONST_PRODUCERS = {"Constant", "ConstantOfShape"}


def parse_input_shapes(specs: list[str] | None) -> dict[str, tuple[int, ...]]:
    """Parse ``name=1x3x224x224`` specs (the CLI's ``--input-shape``)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or []:
        name, sep, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d <= 0 for d in shape):
            raise CodesignError(f"bad --input-shape {spec!r}: write NAME=DxDx...D with positive integers, e.g. input=1x3x224x224")
        shapes[name] = shape
    return shapes


def read_onnx(path: str | Path, weights: bool = True) -> onnx.ModelProto:
    """Read an ONNX file and its external data (which must lie inside the model's folder).

    ``weights=False``: a model whose external weight file is absent is returned shape-only
    (those tensors keep their dims and types, unread); otherwise it is refused.
    """
    path = Path(path)
    if not path.exists():
        raise CodesignError(f"model file not found: {path}")
    if not path.is_file():
        raise CodesignError(f"model path is not a file: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError, onnx raises its own; both mean "not ONNX"
        raise CodesignError(f"{path} is not a readable ONNX model ({type(e).__name__}: {_first_line(e)})") from None
    if not model.graph.node:
        raise CodesignError(f"{path} is not a readable ONNX model (no graph nodes; truncated or not ONNX?)")
    check_model(model, str(path))
    load_external(model, path)
    unread = unread_tensors(model)
    if weights and unread:
        raise needs_weights(path, unread)
    return model


def load_onnx(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None,
              name: str | None = None) -> Workload:
    """Import an ONNX file into a Workload (see ``workload_from_model``); a model whose external
    weight file is absent is imported from its shapes (``Workload.weights_read`` False)."""
    model = read_onnx(path, weights=False)
    return workload_from_model(model, input_shapes, name=name or Path(path).stem, source=str(path))


def workload_from_model(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None,
                        name: str = "model", source: str = "<model>") -> Workload:
    """A Workload of ``model`` at static input shapes (a dynamic batch dimension is taken as 1).

    Shapes come from ONNX shape inference; where it leaves some open (e.g. a Reshape whose shape
    is computed at run time), from one onnxruntime run on a zero input (``shape_probe``).  A QDQ
    model's Q/DQ nodes are folded into the layers they feed and its bits become ``Workload.bits``.
    """
    runnable, notes = _with_static_inputs(model, input_shapes or {}, source)
    model = _infer(standard_qdq(runnable), source)
    unread = unread_tensors(model)
    tensors = _Tensors(model)
    open_shapes = _open_tensors(model, tensors)
    if open_shapes and not unread:
        check_sizes(tensors.shape, [i.name for i in _activation_inputs(model)], source)   # before any run
        from codesign.frontends.shape_probe import probe_shapes

        found = probe_shapes(runnable, open_shapes, source)
        if found:
            model = _infer(_with_value_info(model, found), source)
            notes.append(f"shapes of {len(found)} tensor(s) that shape inference left open came from one "
                         f"onnxruntime run on a zero input at the static input shapes")
    wl = _build(model, name, source, unread)
    wl.notes[:0] = notes
    return wl


def _infer(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as e:
        raise CodesignError(f"{source}: ONNX shape inference failed: {_first_line(e)}") from None


def _open_tensors(model: onnx.ModelProto, tensors: "_Tensors") -> list[str]:
    """Tensors the costing needs whose shapes shape inference left open: outputs of nodes that are
    not constant folding (only the first output of a node is needed, like ``_layer`` requires)."""
    static = _static_tensors(model, tensors)
    out = []
    for node in model.graph.node:
        if all(o in static for o in node.output if o) or not node.output or not node.output[0]:
            continue
        if node.output[0] not in tensors.shape:
            out.append(node.output[0])
    return out


def _with_value_info(model: onnx.ModelProto, shapes: dict[str, tuple[int, tuple[int, ...]]]) -> onnx.ModelProto:
    """A copy of ``model`` whose value_info states ``shapes`` (name -> (elem_type, dims))."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = [vi for vi in copy.graph.value_info if vi.name not in shapes]
    del copy.graph.value_info[:]
    copy.graph.value_info.extend(kept)
    for name, (elem_type, dims) in shapes.items():
        copy.graph.value_info.append(helper.make_tensor_value_info(name, elem_type, list(dims)))
    return copy


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def _activation_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _with_static_inputs(model: onnx.ModelProto, overrides: dict[str, tuple[int, ...]],
                        source: str) -> tuple[onnx.ModelProto, list[str]]:
    """A copy with every input's dims fixed: from ``--input-shape``, else a dynamic batch (first)
    dimension of an input of rank >= 2 taken as 1 (said in the returned notes); any other dynamic
    dimension is an error that says which ``--input-shape`` to give."""
    inputs = {i.name: i for i in _activation_inputs(model)}
    notes = []
    for nm in overrides:
        if nm not in inputs:
            raise CodesignError(f"{source}: --input-shape names {nm!r} but the model's inputs are {', '.join(inputs)}")
    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    for vi in model_copy.graph.input:
        if vi.name not in inputs:
            continue
        dims = vi.type.tensor_type.shape.dim
        if vi.name in overrides:
            shape = overrides[vi.name]
            if len(shape) != len(dims):
                raise CodesignError(f"{source}: input {vi.name!r} has rank {len(dims)} but --input-shape gives {len(shape)} dims")
            for d, val in zip(dims, shape):
                if d.HasField("dim_value") and d.dim_value != val:
                    raise CodesignError(f"{source}: input {vi.name!r} has fixed dims {_dims_text(dims)}; --input-shape gives {'x'.join(map(str, shape))}")
                d.ClearField("dim_param")
                d.dim_value = val
            continue
        dynamic = lambda d: not d.HasField("dim_value") or d.dim_value <= 0
        if len(dims) >= 2 and not dims[0].HasField("dim_value") and not any(dynamic(d) for d in dims[1:]):
            label = dims[0].dim_param or "?"
            dims[0].ClearField("dim_param")
            dims[0].dim_value = 1
            notes.append(f"input {vi.name!r}: dynamic batch dimension {label!r} taken as 1 "
                         f"(give --input-shape {vi.name}={_dims_text(dims)[1:-1].replace(', ', 'x')} with another batch to change it)")
        elif any(dynamic(d) for d in dims):
            example = "x".join(str(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else "1" for d in dims)
            raise CodesignError(f"{source}: input {vi.name!r} has dynamic dims {_dims_text(dims)}; "
                                f"pass --input-shape {vi.name}={example} (adjusting the sizes)")
    return model_copy, notes


def _dims_text(dims) -> str:
    return "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims) + "]"


class _Tensors:
    """Shapes and element sizes of every tensor known after shape inference."""

    def __init__(self, model: onnx.ModelProto):
        self.shape: dict[str, tuple[int, ...]] = {}
        self.itemsize: dict[str, int] = {}
        self.is_float: dict[str, bool] = {}
        self.elem_type: dict[str, int] = {}      # every typed tensor, shaped or not
        g = model.graph
        for init in g.initializer:
            self._set(init.name, tuple(init.dims), init.data_type)
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            t = vi.type.tensor_type
            if t.elem_type:
                self.elem_type.setdefault(vi.name, t.elem_type)
            if not t.HasField("shape"):
                continue
            dims = t.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                self._set(vi.name, tuple(d.dim_value for d in dims), t.elem_type)

    def _set(self, name: str, shape: tuple[int, ...], elem_type: int) -> None:
        self.shape[name] = shape
        self.elem_type[name] = elem_type
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
            self.itemsize[name] = dtype.itemsize
            self.is_float[name] = dtype.kind == "f"
        except Exception:
            self.itemsize[name] = 4
            self.is_float[name] = False

    def nbytes(self, name: str) -> int:
        return numel(self.shape[name]) * self.itemsize.get(name, 4) if name in self.shape else 0


def _static_tensors(model: onnx.ModelProto, tensors: _Tensors) -> set[str]:
    """Tensors known before any input arrives: constants, shapes, and what derives from them."""
    static = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        ins = [i for i in node.input if i]
        if node.op_type in _CONST_PRODUCERS and all(i in static for i in ins):
            static.update(node.output)
        elif node.op_type == "Shape" and ins and ins[0] in tensors.shape:
            static.update(node.output)
        elif node.op_type == "Size" and ins and ins[0] in tensors.shape:
            static.update(node.output)
        elif ins and all(i in static for i in ins):
            static.update(node.output)
    return static


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH or a.type == onnx.AttributeProto.GRAPHS:
            out[a.name] = "<subgraph>"
            continue
        val = helper.get_attribute_value(a)
        if isinstance(val, bytes):
            val = val.decode(errors="replace")
        elif isinstance(val, onnx.TensorProto):
            val = "<tensor>"
        elif isinstance(val, list):
            val = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in val]
        out[a.name] = val
    return out


def _unread_sources(model: onnx.ModelProto, static: set[str], unread: dict[str, str]) -> dict[str, set[tuple[str, str]]]:
    """For each constant-derived tensor, the unread external tensors (name, location) its values come from."""
    src: dict[str, set[tuple[str, str]]] = {t: {(t, loc)} for t, loc in unread.items()}
    for node in model.graph.node:
        if all(o in static for o in node.output if o):
            deps = set().union(*(src.get(i, set()) for i in node.input if i))
            for a in node.attribute:  # a Constant whose value is external
                if a.HasField("t") and is_external(a.t):
                    deps.add((a.t.name or node.output[0], location(a.t)))
            if deps:
                for o in node.output:
                    src[o] = deps
    return src


def _build(model: onnx.ModelProto, name: str, source: str, unread: dict[str, str] | None = None) -> Workload:
    unread = unread or {}
    tensors = _Tensors(model)
    check_sizes(tensors.shape, [i.name for i in _activation_inputs(model)], source)
    static = _static_tensors(model, tensors)
    wl = Workload(name)
    if unread:
        wl.weights_read = False
        wl.notes.append(weights_note(unread))
    sources = _unread_sources(model, static, unread) if unread else {}
    qdq = read_qdq(model, static, tensors.elem_type, source)
    alias = qdq.alias if qdq is not None else {}
    graph_inputs = [i.name for i in _activation_inputs(model)]
    wl.graph_inputs = {n: tensors.shape[n] for n in graph_inputs if n in tensors.shape}
    wl.graph_outputs = {alias.get(o.name, o.name): tensors.shape.get(o.name, ()) for o in model.graph.output}
    producer: dict[str, str] = {}
    param_owner: dict[str, str] = {}
    used_names: set[str] = set()
    per_layer: dict[str, LayerBits] = {}
    for index, node in enumerate(model.graph.node):
        if all(o in static for o in node.output if o):
            continue  # folded constant / shape computation
        if qdq is not None and index in qdq.folded:
            continue  # a Q/DQ pair (and its Clip): part of the layer it feeds
        layer_name = _unique(node.name or f"{node.op_type}_{index}", used_names)
        layer = _layer(node, layer_name, tensors, static, param_owner, source, sources, alias)
        if qdq is not None and layer.op_class not in FLOAT_CLASSES and (bits := qdq.layer_bits(node)) is not None:
            per_layer[layer_name] = bits
        wl.add_layer(layer)
        wl.graph.nodes[layer_name]["index"] = index
        for t in layer.inputs:
            if t in producer:
                wl.add_edge(producer[t], layer_name, t, tensors.nbytes(t))
        for t in layer.outputs:
            producer[t] = layer_name
    if qdq is not None:
        wl.bits = qdq_assignment(per_layer, {l.name: l.op_class for l in wl.layers()})
        wl.quantized_layers = sorted(per_layer)     # the layers whose bits the Q/DQ nodes give
        folded = len(qdq.folded)
        wl.notes.extend(qdq.notes)
        if wl.bits is not None:
            wl.notes.append(f"bits from the model's Q/DQ nodes: {len(per_layer)} quantized layer(s); "
                            f"{folded} Q/DQ/Clip node(s) folded into the layers they feed")
    return wl


def _unique(name: str, used: set[str]) -> str:
    base, i = name, 1
    while name in used:
        i += 1
        name = f"{base}#{i}"
    used.add(name)
    return name


def _layer(node: onnx.NodeProto, layer_name: str, tensors: _Tensors, static: set[str],
           param_owner: dict[str, str], source: str,
           sources: dict[str, set[tuple[str, str]]] | None = None, alias: dict[str, str] | None = None) -> Layer:
    alias = alias or {}     # a folded Q/DQ's output -> the float tensor it carries
    act_in = [alias.get(i, i) for i in node.input if i and i not in static]
    const_in = [i for i in node.input if i and i in static]
    outputs = [o for o in node.output if o]
    # optional extra outputs (e.g. Dropout's mask) may stay unshaped; the main ones may not
    missing = [t for t in act_in + outputs[:1] if t not in tensors.shape]
    attrs = _attrs(node)
    view = NodeView(
        op=node.op_type, attrs=attrs,
        input_shapes=[tensors.shape.get(i) if i else None for i in node.input],
        output_shapes=[tensors.shape.get(o, ()) for o in outputs],
        input_is_const=[i in static for i in node.input],
    )
    rule = RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
    cost = OpCost("other")
    modelled = rule is not None
    if rule is not None and not missing:
        try:
            cost = rule(view)
        except (IndexError, TypeError, ValueError, KeyError) as e:
            raise CodesignError(f"{source}: cannot cost node {layer_name!r} ({node.op_type}): "
                                f"unexpected shapes {view.input_shapes} ({e})") from None
    elif rule is not None and missing and node.op_type not in ("Shape", "Size"):
        # shapes that follow from values in an absent external file: integer tensors (Reshape's shape,
        # ConstantOfShape's input) or small float ones (Resize's scales); never a weight's own dims
        needed = sorted(t for t in set().union(*((sources or {}).get(i, set()) for i in const_in))
                        if not tensors.is_float.get(t[0], False) or numel(tensors.shape.get(t[0], (1,))) <= 16)
        if needed:
            raise CodesignError(f"{source}: no static shape for tensor {missing[0]!r} of node {layer_name!r} "
                                f"({node.op_type}): it follows from the values of tensor {needed[0][0]!r}, whose external "
                                f"file {needed[0][1]!r} is absent; weights may be absent, tensors that define shapes may not")
        raise CodesignError(f"{source}: no static shape for tensor {missing[0]!r} of node {layer_name!r} "
                            f"({node.op_type}) after shape inference; give all inputs with --input-shape")
    # float constants feeding this layer are its parameters (counted once, by the first user)
    params = 0
    weight_bytes = 0
    for t in const_in:
        if tensors.is_float.get(t, False) and t not in param_owner:
            param_owner[t] = layer_name
            params += numel(tensors.shape.get(t, ()))
            weight_bytes += tensors.nbytes(t)
    dtype_bytes = tensors.itemsize.get(outputs[0], 4) if outputs else 4
    return Layer(
        name=layer_name, op=node.op_type, op_class=cost.op_class,
        inputs=act_in, outputs=outputs,
        input_shapes=[tensors.shape.get(t, ()) for t in act_in],
        output_shapes=[tensors.shape.get(t, ()) for t in outputs],
        attrs=attrs, conv=cost.conv, gemm=cost.gemm, macs=int(cost.macs), ops=int(cost.ops),
        params=params, weight_bytes=weight_bytes,
        input_bytes=sum(tensors.nbytes(t) for t in act_in),
        output_bytes=sum(tensors.nbytes(t) for t in outputs),
        dtype_bytes=dtype_bytes, modelled=modelled,
    )
