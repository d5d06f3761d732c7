"""TVM kernels: compile with the llvm target (Relax, ``tvm.compile``) and time with the VM.

TVM fuses differently from onnxruntime: after ``LegalizeOps`` its operator fusion folds the
elementwise tail of a convolution or matmul (BatchNorm decomposed for inference, bias,
activation, a residual Add) into one kernel.  ``tvm_groups`` reproduces that on a Workload
with a static rule -- a group starts at every compute layer (conv, matmul, pool, reduce,
softmax, norm, data movement) and elementwise/BatchNorm layers join the group of their
producer -- and each group is compiled and timed on its own (``measure_group``) as an
untuned llvm build (TVM's default schedules; no MetaSchedule tuning).  Whole networks are
compiled and timed the same way (``measure_tvm_latency_ms``).

Threads: the TVM runtime thread pool is set to ``threads`` (default 1, like the host target).
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from hwmodels.workload import Layer, Workload
from hwmodels.ort_profiler import _numel, skeleton_model

_JOINS = {"elementwise", "norm"}


def _tvm(threads: int = 1):
    os.environ.setdefault("TVM_NUM_THREADS", str(threads))
    import tvm

    try:
        tvm.get_global_func("runtime.config_threadpool")(0, int(threads))
    except Exception:  # pragma: no cover - older/newer runtimes without the hook
        pass
    return tvm


def tvm_groups(workload: Workload | list[Layer]) -> list[list[Layer]]:
    """Layers grouped the way TVM's operator fusion runs them (see module docstring)."""
    layers = workload.layers() if isinstance(workload, Workload) else list(workload)
    producer = {t: l.name for l in layers for t in l.outputs[:1]}
    group_of: dict[str, int] = {}
    groups: list[list[Layer]] = []
    for l in layers:
        prods = [group_of[producer[t]] for t in l.inputs if t in producer]
        joins = l.op_class in _JOINS and prods and (l.op in ("BatchNormalization",) or l.op_class == "elementwise")
        if joins:
            g = max(prods)   # the latest producer's group: its kernel computes this tail
            groups[g].append(l)
            group_of[l.name] = g
        else:
            groups.append([l])
            group_of[l.name] = len(groups) - 1
    return groups


def group_signature(group: list[Layer]) -> dict:
    return {"backend": "tvm", "layers": [
        {"op": l.op, "in": [list(s) for s in l.input_shapes], "out": [list(s) for s in l.output_shapes],
         "attrs": {k: v for k, v in sorted(l.attrs.items()) if not isinstance(v, str) or not v.startswith("<")},
         "params": l.params} for l in group]}


def group_kind_features(group: list[Layer]) -> tuple[str, dict]:
    main = max(group, key=lambda l: (l.macs, -group.index(l)))
    f = {"macs": sum(l.macs for l in group), "in_elems": sum(_numel(s) for s in main.input_shapes),
         "out_elems": sum(_numel(s) for s in group[-1].output_shapes[:1]),
         "w_elems": sum(l.params for l in group), "act": len(group) - 1, "n_inputs": len(main.inputs),
         "has_sum": int(any(l.op == "Add" and len(l.inputs) == 2 for l in group))}
    if main.conv is not None:
        c = main.conv
        f.update(c=c.c, k=c.k, h=c.h, w=c.w, p=c.p, q=c.q, r=c.r, s=c.s, stride=c.stride_h, groups=c.groups)
    elif main.gemm is not None:
        f.update(c=main.gemm.k, k=main.gemm.n, h=main.gemm.m)
    kind = "tvm." + main.op_class
    return kind, f


def _compile(onnx_model, threads: int = 1):
    tvm = _tvm(threads)
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(onnx_model, keep_params_in_input=False)
    mod = relax.transform.DecomposeOpsForInference()(mod)
    mod = relax.transform.LegalizeOps()(mod)
    ex = tvm.compile(mod, target="llvm")
    return mod, ex


def _time(mod, ex, threads: int = 1, number: int = 0, repeat: int = 20, min_repeat_ms: int = 10) -> dict:
    tvm = _tvm(threads)
    from tvm import relax

    dev = tvm.cpu()
    vm = relax.VirtualMachine(ex, dev)
    rng = np.random.default_rng(0)
    args = []
    for p in mod["main"].params:
        shape = [int(v) for v in p.ty.shape.values]
        arr = rng.standard_normal(shape).astype(str(p.ty.dtype))
        args.append(tvm.runtime.tensor(arr, dev) if hasattr(tvm.runtime, "tensor") else tvm.nd.array(arr, dev))
    vm["main"](*args)   # warm-up
    te = vm.time_evaluator("main", dev, number=max(number, 1), repeat=repeat, min_repeat_ms=min_repeat_ms)
    res = te(*args)
    results = [r * 1e6 for r in res.results]
    from hwmodels.ort_profiler import fast_center
    us, mad, kept = fast_center(results)    # interruptions only add time: the fast quarter
    return {"us": us, "median_us": float(np.median(results)), "mad_us": mad, "repeats": len(results)}


def measure_group(group: list[Layer], threads: int = 1) -> float:
    """Median microseconds of one compiled group (one call of the VM's main)."""
    model, standins = skeleton_model(group)
    if standins or not model.graph.node:
        raise ValueError(f"group {group[0].name} cannot be rebuilt for TVM")
    mod, ex = _compile(model, threads)
    return _time(mod, ex, threads)["us"]


def measure_tvm_latency_ms(path, threads: int = 1, repeat: int = 20) -> dict:
    """Whole network: relax import, llvm build, VM time evaluator (``repeat`` repeats of at least
    10 ms each; mean of the fastest quarter, like the kernels; ``median_ms`` as well)."""
    import onnx

    mod, ex = _compile(onnx.load(str(path)), threads)
    r = _time(mod, ex, threads, repeat=repeat, min_repeat_ms=10)
    return {"fast_ms": r["us"] / 1e3, "median_ms": r["median_us"] / 1e3, "mad_ms": r["mad_us"] / 1e3, "repeats": r["repeats"], "threads": threads,
            "target": "llvm", "tuned": False}


def measure_vm_overhead_us(threads: int = 1) -> float:
    """Per-call cost of the VM around a trivial kernel (a 16-element add): the per-network overhead."""
    from onnx import TensorProto, helper

    from hwmodels.ort_profiler import IR_VERSION, OPSET

    g = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "t",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    mod, ex = _compile(m, threads)
    return _time(mod, ex, threads)["us"]


def signature_hash(sig: dict) -> str:
    return hashlib.sha256(json.dumps(sig, sort_keys=True, default=str).encode()).hexdigest()[:32]
