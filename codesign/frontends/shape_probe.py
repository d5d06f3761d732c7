"""Shapes that ONNX shape inference leaves open, read from one onnxruntime run.

Some exporters compute shapes at run time (torch's TorchScript exporter writes attention's
head split as Shape -> Gather -> Div -> Concat -> Reshape, which ``onnx.shape_inference``
does not always follow).  The model then has static shapes all the same: running it once at
the static input shapes shows them.  The run is a copy of the model with the open tensors made
graph outputs, fed zeros (valid token ids, no data-dependent branch surprises), with graph
optimisations off so that every tensor asked for is computed as written.  It is bounded: only
models within ``MAX_PROBE_ELEMENTS`` of weights and inputs are run, on one thread.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper

from hwmodels.errors import CodesignError

MAX_PROBE_ELEMENTS = 2**28      # weights + inputs (1 GiB of fp32): beyond, a run is not worth a shape


def probe_shapes(model: onnx.ModelProto, names: list[str], source: str) -> dict[str, tuple[int, tuple[int, ...]]]:
    """name -> (ONNX element type, dims) of each tensor in ``names``, from one onnxruntime run of
    ``model`` (whose inputs have static dims).  {} when the model cannot be run (the caller then
    reports the open shape as before); a model too large to run is refused with the reason."""
    inputs = _inputs(model)
    if inputs is None or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                             for n in model.graph.node for a in n.attribute):
        return {}                      # control flow (Loop/If/Scan) may run unbounded: not probed
    size = sum(math.prod(t.dims) for t in model.graph.initializer) + sum(math.prod(s) for s, _ in inputs.values())
    if size > MAX_PROBE_ELEMENTS:
        raise CodesignError(f"{source}: shape inference leaves the shape of {names[0]!r} open and the model is too "
                            f"large ({size:.3g} elements) to run once to find it; export it with static shapes")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    have = {o.name for o in copy.graph.output}
    for n in names:
        if n not in have:
            copy.graph.output.append(helper.make_empty_tensor_value_info(n))
    try:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        sess = ort.InferenceSession(copy.SerializeToString(), so, providers=["CPUExecutionProvider"])
        feeds = {name: np.zeros(shape, dtype) for name, (shape, dtype) in inputs.items()}
        outs = sess.run(names, feeds)
    except Exception:          # onnxruntime cannot run it: the open shape stays an error
        return {}
    found = {}
    for name, value in zip(names, outs):
        arr = np.asarray(value)
        try:
            elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
        except Exception:
            continue
        found[name] = (elem, tuple(int(d) for d in arr.shape))
    return found


def _inputs(model: onnx.ModelProto) -> dict[str, tuple[tuple[int, ...], np.dtype]] | None:
    """Static shape and numpy dtype of every activation input, or None if one is not static."""
    inits = {i.name for i in model.graph.initializer}
    out = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        dims = t.shape.dim if t.HasField("shape") else None
        if dims is None or not all(d.HasField("dim_value") and d.dim_value >= 0 for d in dims):
            return None
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type))
        except Exception:
            return None
        out[vi.name] = (tuple(int(d.dim_value) for d in dims), dtype)
    return out
