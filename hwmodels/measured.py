"""The measured-kernel cost model: latency from kernels measured on this machine.

Whole-network latency = per-run overhead + sum over the kernels the runtime will execute of
(the stored measurement of that exact kernel, or the per-class regressor's prediction for an
unseen shape) + per-kernel overhead x kernels.

* onnxruntime (default): the kernels and their fusion are onnxruntime's own -- the Workload is
  rebuilt as an ONNX skeleton and optimized by onnxruntime (ORT_ENABLE_ALL: BatchNorm folding,
  Conv+activation(+residual Add) fusion, NCHWc blocked layout with reorders, FusedGemm); see
  ``hwmodels.ort_profiler``.  Kernel times are onnxruntime profiler per-node times; the
  overhead terms are fitted by ``measure_overhead`` (profiler bookkeeping makes the per-node
  term negative).
* tvm: layers grouped as TVM's operator fusion runs them, each group an untuned llvm build
  timed with the VM's time evaluator (``hwmodels.tvm_profiler``).

Measurements live in a ``KernelStore`` (SQLite, user cache dir by default), keyed by kernel
signature, backend, machine fingerprint, threads and optimization level.  If the store holds
nothing for this machine/backend/threads, ``estimate`` raises ``CodesignError`` asking for
``codesign profile --target host`` (it never silently profiles).  Only fp32 is measured;
other bit-widths are reported as fp32 with a note.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from hwmodels.errors import CodesignError
from hwmodels.targets import Target
from hwmodels.workload import Workload
from hwmodels.base import LayerCost, NetworkCost
from hwmodels.kernel_predictor import KernelPredictor
from hwmodels.kernel_store import KernelRecord, KernelStore, machine_fingerprint
from hwmodels.bits import BitAssignment

BACKENDS = ("onnxruntime", "tvm")
# where a layer's time came from -> its bound (hwmodels.base): removed by the runtime, folded into a
# neighbour's kernel, or estimated from bytes; measured/predicted kernels are "measured"
_BOUND_OF_SOURCE = {"eliminated": "free", "fused": "fused"}
_PREDICTORS: dict[tuple, KernelPredictor] = {}


def _predictor(store: KernelStore, backend: str, machine: str, threads: int, opt_level: str) -> KernelPredictor:
    """The regressors for this store's rows: from memory, else from a pickle beside the store
    named by the rows' content hash (so a changed store never reuses stale regressors), else fitted."""
    import pickle

    content = store.content_hash(backend, machine, threads, opt_level)
    key = (str(store.path), backend, machine, threads, opt_level, content)
    if key in _PREDICTORS:
        return _PREDICTORS[key]
    side = store.path.with_name(f"{store.path.name}.{backend}-{machine}-{threads}-{opt_level}-{content}.predictor.pkl")
    pred = None
    try:
        if side.exists():
            pred = pickle.loads(side.read_bytes())
            if not isinstance(pred, KernelPredictor):
                pred = None
    except Exception:
        pred = None
    if pred is None:
        pred = KernelPredictor().fit(store.records(backend, machine, threads, opt_level))
        try:
            for old in store.path.parent.glob(f"{store.path.name}.{backend}-{machine}-{threads}-{opt_level}-*.predictor.pkl"):
                old.unlink(missing_ok=True)
            tmp = side.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(pred))
            os.replace(tmp, side)
        except OSError:
            pass
    _PREDICTORS[key] = pred
    return pred


@dataclass
class KernelEstimate:
    name: str
    kind: str
    us: float
    source: str                # "exact" | "regressor" | "class-median" | ... | "fallback"
    layers: list[str] = field(default_factory=list)


class MeasuredModel:
    """``MeasuredModel(cache=None, backend="onnxruntime", threads=None, opt_level="all")``.

    ``threads=None`` takes the target's thread count (``host``: 1).
    """

    name = "measured"

    def __init__(self, cache: str | Path | None = None, backend: str = "onnxruntime", threads: int | None = None,
                 opt_level: str = "all", store: KernelStore | None = None):
        if backend not in BACKENDS:
            raise CodesignError(f"unknown measured backend {backend!r}; use one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.threads = threads
        self.opt_level = opt_level if backend == "onnxruntime" else "llvm"
        self._store = store
        self.cache = Path(cache) if cache is not None else None

    @property
    def store(self) -> KernelStore:
        if self._store is None:
            self._store = KernelStore(self.cache)
        return self._store

    # ------------------------------------------------------------------------------------
    def kernel_estimates(self, workload: Workload, threads: int) -> tuple[list[KernelEstimate], list, dict]:
        """Per-kernel predictions for ``workload`` plus the stand-in layers and overheads."""
        store = self.store
        machine = machine_fingerprint(self.backend)
        if store.count(self.backend, machine, threads, self.opt_level) == 0:
            raise CodesignError(
                f"the kernel cache {store.path} holds no {self.backend} measurements for this machine at "
                f"{threads} thread(s); run `codesign profile --target host --backend {self.backend}` first")
        pred = _predictor(store, self.backend, machine, threads, self.opt_level)
        ests: list[KernelEstimate] = []
        if self.backend == "onnxruntime":
            from hwmodels.ort_profiler import compile_workload

            cg = compile_workload(workload, threads, self.opt_level)
            todo: dict[str, list] = {}
            for k in cg.kernels:
                rec = store.get(k.sig_hash, self.backend, machine, threads, self.opt_level)
                if rec is not None:
                    ests.append(KernelEstimate(k.name, k.kind, rec.median_us, "exact", cg.layers_of.get(k.name, [])))
                else:
                    ests.append(KernelEstimate(k.name, k.kind, 0.0, pred.source(k.kind), cg.layers_of.get(k.name, [])))
                    todo.setdefault(k.kind, []).append((len(ests) - 1, k.features))
            for kind, items in todo.items():
                vals = pred.predict_many(kind, [f for _, f in items])
                for (i, _), v in zip(items, vals):
                    ests[i].us = float(v)
            standins = cg.standins
        else:
            from hwmodels.tvm_profiler import group_kind_features, group_signature, signature_hash, tvm_groups

            standins = []
            for g in tvm_groups(workload):
                sig = group_signature(g)
                rec = store.get(signature_hash(sig), self.backend, machine, threads, self.opt_level)
                kind, feats = group_kind_features(g)
                if rec is not None:
                    ests.append(KernelEstimate(g[0].name, kind, rec.median_us, "exact", [l.name for l in g]))
                else:
                    ests.append(KernelEstimate(g[0].name, kind, pred.predict_us(kind, feats), pred.source(kind),
                                               [l.name for l in g]))
        ov = store.overhead(self.backend, machine, threads, self.opt_level)
        overhead = {**ov, "measured": True} if ov else \
            {"per_run_us": 0.0, "per_node_us": 0.0, "scale": 1.0, "source": "none", "measured": False}
        return ests, standins, overhead

    def predict_latency_us(self, workload: Workload, threads: int = 1) -> float:
        ests, standins, ov = self.kernel_estimates(workload, threads)
        return self._total(ests, standins, ov, None)

    @staticmethod
    def _standin_us(layer, target: Target | None) -> float:
        if target is None:
            return 5.0
        bw = target.memory[1].bandwidth_gbs if len(target.memory) > 1 else target.memory[0].bandwidth_gbs
        return target.overheads.per_layer_us + (layer.input_bytes + layer.output_bytes) / (bw * 1e3)

    def _total(self, ests, standins, ov, target) -> float:
        k = ov.get("scale", 1.0) * sum(e.us for e in ests) + sum(self._standin_us(l, target) for l in standins)
        return max(ov["per_run_us"] + k + ov["per_node_us"] * len(ests), 0.0) if ests or standins else 0.0

    def estimate(self, workload: Workload, target: Target, bits: BitAssignment | None = None) -> NetworkCost:
        threads = self.threads if self.threads is not None else int(getattr(target, "threads", 1) or 1)
        notes: list[str] = []
        if bits is not None and (bits.default.widest < 32 or any(b.widest < 32 for b in bits.per_layer.values())):
            notes.append(f"measured model: only fp32 kernels are measured; bits {bits.label} ignored (latency is fp32)")
        t0 = time.perf_counter()
        ests, standins, ov = self.kernel_estimates(workload, threads)
        total_us = self._total(ests, standins, ov, target)
        layers = workload.layers()
        by_name = {l.name: l for l in layers}
        per_layer: dict[str, float] = {l.name: 0.0 for l in layers}
        source_of: dict[str, str] = {}
        kernel_of: dict[str, str] = {}
        last_main = None
        pending = 0.0
        for e in ests:
            if not e.layers:     # layout reorders and other runtime-only kernels: charge to a neighbour
                if last_main is None:
                    pending += e.us
                else:
                    per_layer[last_main] += e.us
                continue
            main = max(e.layers, key=lambda n: (by_name[n].macs, -e.layers.index(n)))
            per_layer[main] += e.us + pending
            pending = 0.0
            last_main = main
            for n in e.layers:
                source_of[n] = e.source if n == main else "fused"
                kernel_of[n] = e.name
        for l in standins:
            per_layer[l.name] += self._standin_us(l, target)
            source_of[l.name] = "fallback"
        if pending and layers:
            per_layer[layers[-1].name] += pending
        costs = []
        fallback_level = target.memory[min(1, len(target.memory) - 1)].name    # what _standin_us charges
        for l in layers:
            src = source_of.get(l.name, "eliminated")
            costs.append(LayerCost(
                name=l.name, op=l.op, op_class=l.op_class, macs=l.macs, weight_bytes=l.weight_bytes,
                act_bytes=l.act_bytes, latency_s=per_layer[l.name] * 1e-6, energy_j=None,
                bound=fallback_level if src == "fallback" else _BOUND_OF_SOURCE.get(src, "measured"),
                precision="fp32", extra={"kernel": kernel_of.get(l.name, ""), "source": src}))
        n_exact = sum(1 for e in ests if e.source == "exact")
        n_pred = len(ests) - n_exact
        notes.append(f"measured ({self.backend}, {threads} thread(s), opt {self.opt_level}): {len(ests)} runtime kernels, "
                     f"{n_exact} exact hits in the store, {n_pred} predicted by the per-class regressors")
        if standins:
            notes.append(f"{len(standins)} layer(s) not rebuildable for the runtime ({', '.join(sorted({l.op for l in standins}))}): "
                         f"estimated from bytes and the target's bandwidth")
        if ov["measured"]:
            notes.append(f"network = {ov['per_run_us']:.1f} us per run + {ov.get('scale', 1.0):.3f} x kernel sum + "
                         f"{ov['per_node_us']:.2f} us per kernel (fitted from {ov.get('source', 'chain')}; overheads are "
                         f"in the total, not in per-layer latencies)")
        else:
            notes.append("overhead not measured (run `codesign profile` to fit it); none added")
        notes.append("energy is not estimated by the measured cost model")
        del t0
        return NetworkCost(
            model=workload.name, target=target.name, cost_model=self.name, layers=costs,
            latency_s=total_us * 1e-6, energy_j=None, macs=workload.macs, params=workload.params,
            peak_memory_bytes=workload.peak_activation_bytes() + workload.weight_bytes,
            not_modelled=workload.not_modelled, notes=notes)


# ----------------------------------------------------------------------------------------
# profiling driver (used by `codesign profile` and the benchmark)
# ----------------------------------------------------------------------------------------
def run_profile(store: KernelStore, blocks: list, backend: str = "onnxruntime", threads: int = 1,
                opt_level: str = "all", budget_s: float | None = None, repeats: int = 30, warmup: int = 5,
                on_progress=None, measure_overheads: bool = True, passes: int = 1) -> dict:
    """Measure ``blocks`` (from ``hwmodels.kernel_sampling``) into ``store`` within ``budget_s``.

    Every measurement is committed as taken; a ``KeyboardInterrupt`` stops the loop and the
    summary (``interrupted=True``) is returned with everything measured so far kept.
    ``on_progress(done, total, label)`` is called after each block.  ``passes > 1`` (onnxruntime)
    measures every block again in later passes, minutes apart, and keeps each kernel's faster
    measurement: on a shared machine a kernel met during a busy spell is re-measured later.
    """
    machine = machine_fingerprint(backend)
    start = time.perf_counter()
    summary = {"blocks": len(blocks), "profiled": 0, "kernels_stored": 0, "already_known": 0, "failed": 0,
               "interrupted": False, "budget_exhausted": False, "overhead": None, "machine": machine,
               "backend": backend, "threads": threads, "opt_level": opt_level if backend == "onnxruntime" else "llvm"}
    try:
        if measure_overheads and store.get_overhead(backend, machine, threads, summary["opt_level"]) is None:
            if backend == "onnxruntime":
                from hwmodels.ort_profiler import measure_overhead
                summary["overhead"] = measure_overhead(store, machine, threads, opt_level)
            else:
                from hwmodels.tvm_profiler import measure_vm_overhead_us
                vm = measure_vm_overhead_us(threads)
                store.put_overhead("tvm", machine, threads, "llvm", vm, -vm, 1)
                summary["overhead"] = (vm, -vm)
        n_pass = passes if backend == "onnxruntime" else 1
        schedule = [(p, i, b) for p in range(n_pass) for i, b in enumerate(blocks)]
        summary["passes_done"] = 0
        for j, (pass_no, i, b) in enumerate(schedule):
            if budget_s is not None and time.perf_counter() - start > budget_s:
                summary["budget_exhausted"] = True
                break
            if i == 0:
                summary["passes_done"] = pass_no
            try:
                if backend == "onnxruntime":
                    from hwmodels.ort_profiler import profile_block
                    stored, known = profile_block(b.model, store, machine, threads, opt_level, repeats, warmup,
                                                  force=pass_no > 0)
                else:
                    stored, known = _profile_tvm_block(b, store, machine, threads)
                if pass_no == 0:
                    summary["kernels_stored"] += stored
                    summary["already_known"] += known
                    summary["profiled"] += 1
            except KeyboardInterrupt:
                raise
            except Exception:   # one bad block must not stop a long profile
                summary["failed"] += 1
            if on_progress is not None:
                on_progress(j + 1, len(schedule), b.key)
        else:
            summary["passes_done"] = n_pass
    except KeyboardInterrupt:
        summary["interrupted"] = True
    summary["elapsed_s"] = time.perf_counter() - start
    summary["stored_total"] = store.count(backend, machine, threads, summary["opt_level"])
    return summary


def _profile_tvm_block(block, store: KernelStore, machine: str, threads: int) -> tuple[int, int]:
    """A TVM block is a list of Layers (one fusion group) carried in ``block.model``."""
    from hwmodels.tvm_profiler import group_kind_features, group_signature, measure_group, signature_hash

    group = block.model
    sig = group_signature(group)
    h = signature_hash(sig)
    if store.get(h, "tvm", machine, threads, "llvm") is not None:
        return 0, 1
    us = measure_group(group, threads)
    kind, feats = group_kind_features(group)
    store.put(KernelRecord(h, kind, group[0].op, sig, feats, us, 0.0, 1, "tvm", machine, threads, "llvm"))
    return 1, 0


def tvm_blocks(workloads: list[Workload]) -> list:
    """TVM fusion groups of ``workloads`` as profile blocks (de-duplicated by signature)."""
    from hwmodels.kernel_sampling import Block
    from hwmodels.tvm_profiler import group_signature, signature_hash, tvm_groups

    seen, out = set(), []
    for wl in workloads:
        for g in tvm_groups(wl):
            h = signature_hash(group_signature(g))
            if h not in seen:
                seen.add(h)
                out.append(Block(f"{wl.name}:{g[0].name}", g, f"workload:{wl.name}"))
    return out


def calibrate_network_overhead(store: KernelStore, networks: list[tuple[Workload, Path]], threads: int = 1, opt_level: str = "all",
                               rounds: int = 2, min_nets: int = 5, fit_scale: bool = False) -> dict | None:
    """Fit ``latency = per_run + scale * sum(kernels) + per_node * kernels`` on whole networks
    (``scale`` is fixed at 1 unless ``fit_scale``: on a shared machine a scale fitted on
    networks measured at one moment mostly learns that moment's load).

    ``networks``: (Workload, ONNX file) pairs whose kernels are in the store (calibration networks -- never the
    ones a benchmark evaluates).  Each is measured end to end (``fast_ms``, lowest of
    ``rounds``); the three terms are fitted by least squares on the *relative* error so small
    and large networks weigh alike.  The per-node term absorbs the profiler's own per-node
    bookkeeping and the executor's dispatch; the scale absorbs what running in a network
    changes in a kernel (cache state of its inputs and weights).  Stored in the overheads table
    (source "networks"); returns the fit, or None with fewer than ``min_nets`` usable networks.
    """
    import numpy as np

    from hwmodels.ort_runner import measure_onnx_latency_ms

    model = MeasuredModel(store=store, threads=threads, opt_level=opt_level)
    rows = []
    for wl, p in networks:
        ests, standins, _ = model.kernel_estimates(wl, threads)
        if standins or not ests:
            continue
        y = min(measure_onnx_latency_ms(p, threads, repeats=24, warmup=4, opt_level=opt_level, min_time_s=0.1)["fast_ms"]
                for _ in range(rounds)) * 1e3
        rows.append((sum(e.us for e in ests), len(ests), y))
    if len(rows) < min_nets:
        return None
    S, N, Y = (np.array(c, float) for c in zip(*rows))
    if fit_scale:
        A = np.vstack([np.ones_like(S), S, N]).T / Y[:, None]
        coef, *_ = np.linalg.lstsq(A, np.ones_like(Y), rcond=None)
        per_run, scale, per_node = (float(c) for c in coef)
    if not fit_scale or not (0.5 <= scale <= 2.0):     # keep the kernel sum as measured
        A2 = np.vstack([np.ones_like(S), N]).T / Y[:, None]
        c2, *_ = np.linalg.lstsq(A2, 1 - S / Y, rcond=None)
        per_run, per_node, scale = float(c2[0]), float(c2[1]), 1.0
    pred = per_run + scale * S + per_node * N
    fit = {"per_run_us": per_run, "per_node_us": per_node, "scale": scale, "n": len(rows),
           "median_abs_rel_err": float(np.median(np.abs(pred / Y - 1)))}
    store.put_overhead("onnxruntime", machine_fingerprint("onnxruntime"), threads, opt_level, per_run, per_node,
                       len(rows), scale, "networks")
    return fit
