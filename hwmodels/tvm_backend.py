"""The TVM kernel backend (``hwmodels.kernel_backend``): llvm builds (Relax, ``tvm.compile``) timed with the VM.

TVM fuses differently from onnxruntime: after ``LegalizeOps`` its operator fusion folds the
elementwise tail of a convolution or matmul (BatchNorm decomposed for inference, bias,
activation, a residual Add) into one kernel.  ``tvm_groups`` reproduces that on a Workload
with a static rule -- a group starts at every compute layer (conv, matmul, pool, reduce,
softmax, norm, data movement) and elementwise/BatchNorm layers join the group of their
producer -- and each group is one kernel: compiled and timed on its own as an untuned llvm
build (TVM's default schedules; no MetaSchedule tuning).  A group's time is one call of the
VM, so the VM's own per-call cost is charged once per network and taken off every kernel
(``measure_overhead``).  Models reach TVM as in-memory ONNX skeletons
(``hwmodels.ort_skeleton``) through ``tvm.relax.frontend.onnx.from_onnx``.

Threads: the TVM runtime thread pool is set to ``threads`` (default 1, like the host target).
"""
from __future__ import annotations

import os

import numpy as np

from hwmodels.kernel_backend import Block, CompiledNetwork, Kernel, KernelTiming
from hwmodels.kernel_store import signature_hash
from hwmodels.ort_skeleton import IR_VERSION, OPSET, numel, skeleton_model
from hwmodels.workload import Layer, Workload

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
    f = {"macs": sum(l.macs for l in group), "in_elems": sum(numel(s) for s in main.input_shapes),
         "out_elems": sum(numel(s) for s in group[-1].output_shapes[:1]),
         "w_elems": sum(l.params for l in group), "act": len(group) - 1, "n_inputs": len(main.inputs),
         "has_sum": int(any(l.op == "Add" and len(l.inputs) == 2 for l in group))}
    if main.conv is not None:
        c = main.conv
        f.update(c=c.c, k=c.k, h=c.h, w=c.w, p=c.p, q=c.q, r=c.r, s=c.s, stride=c.stride_h, groups=c.groups)
    elif main.gemm is not None:
        f.update(c=main.gemm.k, k=main.gemm.n, h=main.gemm.m)
    return "tvm." + main.op_class, f


def _group_kernel(group: list[Layer]) -> Kernel:
    sig = group_signature(group)
    kind, feats = group_kind_features(group)
    return Kernel(group[0].name, f"tvm:{group[0].op}", kind, signature_hash(sig), sig, feats, [l.name for l in group])


def compile_onnx(onnx_model, threads: int = 1):
    """``(IRModule, executable)`` of an in-memory ONNX model: Relax import, inference
    decomposition, legalization, an llvm build."""
    tvm = _tvm(threads)
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(onnx_model, keep_params_in_input=False)
    mod = relax.transform.DecomposeOpsForInference()(mod)
    mod = relax.transform.LegalizeOps()(mod)
    return mod, tvm.compile(mod, target="llvm")


def time_vm(mod, ex, threads: int = 1, repeat: int = 20, min_repeat_ms: int = 10) -> dict:
    """The VM's time evaluator on random inputs: the fastest quarter of ``repeat`` repeats (each
    at least ``min_repeat_ms``) and their median, in microseconds."""
    tvm = _tvm(threads)
    from tvm import relax

    from hwmodels.ort_runner import fastest_quarter

    dev = tvm.cpu()
    vm = relax.VirtualMachine(ex, dev)
    rng = np.random.default_rng(0)
    args = []
    for p in mod["main"].params:
        shape = [int(v) for v in p.ty.shape.values]
        arr = rng.standard_normal(shape).astype(str(p.ty.dtype))
        args.append(tvm.runtime.tensor(arr, dev) if hasattr(tvm.runtime, "tensor") else tvm.nd.array(arr, dev))
    vm["main"](*args)   # warm-up
    res = vm.time_evaluator("main", dev, number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)(*args)
    us = [r * 1e6 for r in res.results]
    return {"us": fastest_quarter(us), "median_us": float(np.median(us)),
            "mad_us": float(np.median(np.abs(np.asarray(us) - np.median(us)))), "repeats": len(us)}


def _trivial_onnx():
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "t",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


class TvmBackend:
    name = "tvm"
    variant = "llvm"

    def __init__(self, threads: int = 1, opt_level: str = "all"):
        self.threads = int(threads)     # opt_level is onnxruntime's; TVM builds are untuned llvm

    def compile(self, workload: Workload | list[Layer]) -> CompiledNetwork:
        layers = workload.layers() if isinstance(workload, Workload) else list(workload)
        return CompiledNetwork([_group_kernel(g) for g in tvm_groups(layers)], [], layers)

    def blocks(self, workloads: list[Workload]) -> list[Block]:
        """Each distinct fusion group of ``workloads`` (its layers are the block's model)."""
        seen, out = set(), []
        for wl in workloads:
            for g in tvm_groups(wl):
                k = _group_kernel(g)
                if k.sig_hash not in seen:
                    seen.add(k.sig_hash)
                    out.append(Block(f"{wl.name}:{g[0].name}", g, f"workload:{wl.name}"))
        return out

    def block_hash(self, block: Block) -> str:
        return _group_kernel(block.model).sig_hash

    def measure_block(self, block: Block, skip: frozenset = frozenset()) -> list[KernelTiming]:
        group = block.model
        if _group_kernel(group).sig_hash in skip:
            return []
        model, standins = skeleton_model(group)
        if standins or not model.graph.node:
            raise ValueError(f"group {group[0].name} cannot be rebuilt for TVM")
        t = time_vm(*compile_onnx(model, self.threads), self.threads)
        return [KernelTiming(_group_kernel(group), t["us"], t["mad_us"], t["repeats"])]

    def measure_kernels(self, compiled: CompiledNetwork) -> dict[str, float]:
        """Each fusion group compiled and timed alone: ``{kernel name: us}`` (the VM call included)."""
        out = {}
        for g in tvm_groups(compiled.handle):
            t = self.measure_block(Block(g[0].name, g))[0]
            out[t.kernel.name] = t.us
        return out

    def measure_overhead(self, gate=None) -> tuple[float, float]:
        """One VM call around a 16-element Neg: paid once per network, but inside every kernel's
        measurement, so ``(+vm, -vm)``."""
        vm = time_vm(*compile_onnx(_trivial_onnx(), self.threads), self.threads)["us"]
        return vm, -vm

    def measure_network(self, compiled: CompiledNetwork, gate=None, rounds: int = 1) -> tuple[float, bool]:
        """The whole network compiled as one module and timed with the VM (microseconds)."""
        from hwmodels.quiet import best_of_rounds

        model, standins = skeleton_model(compiled.handle)
        if standins or not model.graph.node:
            raise ValueError("the network cannot be rebuilt for TVM")
        mod, ex = compile_onnx(model, self.threads)
        us, _, n_quiet = best_of_rounds(lambda: time_vm(mod, ex, self.threads)["us"], gate, rounds, stop_after_quiet=1)
        return us, n_quiet > 0


def measure_tvm_latency_ms(onnx_model, threads: int = 1, repeat: int = 20) -> dict:
    """A whole ONNX model (ModelProto) compiled and timed with the VM: ``fast_ms`` (fastest quarter
    of ``repeat`` repeats of at least 10 ms each, like the kernels) and ``median_ms``."""
    r = time_vm(*compile_onnx(onnx_model, threads), threads, repeat=repeat, min_repeat_ms=10)
    return {"fast_ms": r["us"] / 1e3, "median_ms": r["median_us"] / 1e3, "mad_ms": r["mad_us"] / 1e3,
            "repeats": r["repeats"], "threads": threads, "target": "llvm", "tuned": False}
