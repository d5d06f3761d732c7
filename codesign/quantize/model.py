"""The user's float model as quantize sees it: one input, one (N, classes) output, and the layers
that can carry Q/DQ (Conv, Gemm and MatMul whose weight is a constant).

Unnamed nodes get the names the ONNX frontend gives them (``<op>_<index>``), so the Workload's
layer names, the bit map's keys and the QDQ model's node names are one set of names.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from codesign.frontends.onnx_frontend import read_onnx
from hwmodels.errors import CodesignError

QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul")


@dataclass
class FloatModel:
    proto: onnx.ModelProto
    path: Path
    input_name: str
    input_dims: list[int | None]      # None: dynamic
    input_dtype: np.dtype
    output_name: str
    num_classes: int
    layers: list[str]                 # quantizable layers, in graph order
    weights: dict[str, str]           # layer -> its weight initializer
    digest: str

    @property
    def fixed_batch(self) -> int | None:
        return self.input_dims[0] if self.input_dims else None

    def node(self, name: str) -> onnx.NodeProto:
        return next(n for n in self.proto.graph.node if n.name == name)


def load_float_model(path: str | Path) -> FloatModel:
    path = Path(path)
    proto = read_onnx(path)
    _name_nodes(proto)
    g = proto.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise CodesignError(f"{path}: quantize takes a model with one input; this one has {len(inputs)} "
                            f"({', '.join(i.name for i in inputs)})")
    if len(g.output) < 1:
        raise CodesignError(f"{path}: the model has no output")
    inp, out = inputs[0], g.output[0]
    tt = inp.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
    except Exception:
        raise CodesignError(f"{path}: input {inp.name!r} has an element type onnxruntime cannot be fed from numpy") from None
    out_dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in out.type.tensor_type.shape.dim]
    if len(out_dims) != 2 or out_dims[1] is None:
        raise CodesignError(f"{path}: output {out.name!r} has shape {_text(out_dims)}; quantize needs a classifier "
                            "whose output is (N, classes) logits")
    layers, weights = [], {}
    for node in g.node:
        if node.op_type in QUANTIZABLE_OPS and len(node.input) > 1 and node.input[1] in inits and node.input[0] not in inits:
            layers.append(node.name)
            weights[node.name] = node.input[1]
    if not layers:
        raise CodesignError(f"{path}: no layer to quantize (quantize writes Q/DQ for {', '.join(QUANTIZABLE_OPS)} "
                            "layers with constant weights; this model has none)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return FloatModel(proto, path, inp.name, dims, dtype, out.name, int(out_dims[1]), layers, weights, digest)


def _name_nodes(proto: onnx.ModelProto) -> None:
    """Names as the ONNX frontend gives them: the node's own, else ``<op>_<index>``; repeats get ``#2``..."""
    used: set[str] = set()
    for i, node in enumerate(proto.graph.node):
        base = node.name or f"{node.op_type}_{i}"
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}#{k}"
        used.add(name)
        node.name = name


def _text(dims) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def check_input(model: FloatModel, x: np.ndarray, where: str) -> None:
    """DATA's x must be what the model's input takes: its dtype and every fixed dimension but the batch."""
    if x.dtype != model.input_dtype:
        raise CodesignError(f"{where}: x has dtype {x.dtype} but model input {model.input_name!r} takes "
                            f"{model.input_dtype} (x is fed exactly as stored; save it as {model.input_dtype})")
    if x.ndim != len(model.input_dims):
        raise CodesignError(f"{where}: x has shape {x.shape} (rank {x.ndim}) but model input {model.input_name!r} is "
                            f"{_text(model.input_dims)} (rank {len(model.input_dims)})")
    for axis, (have, want) in enumerate(zip(x.shape[1:], model.input_dims[1:]), start=1):
        if want is not None and have != want:
            raise CodesignError(f"{where}: x has shape {x.shape} but model input {model.input_name!r} is "
                                f"{_text(model.input_dims)} (dimension {axis}: {have} != {want})")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise CodesignError(f"{where}: x holds NaN or infinite values")


def static_shape(model: FloatModel, x: np.ndarray) -> tuple[int, ...]:
    """The input shape the cost models see: one sample (a dynamic batch is taken as 1)."""
    return (1, *x.shape[1:])
