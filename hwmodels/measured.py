"""The measured-kernel cost model: latency from kernels measured on this machine.

Whole-network latency = per-run overhead + sum over the kernels the runtime will execute of
(the stored measurement of that exact kernel, or the per-class regressor's prediction for an
unseen shape) + per-kernel overhead x kernels.  Which kernels a Workload becomes, how they
are measured and what a run costs beyond them is the kernel backend's business
(``hwmodels.kernel_backend``: onnxruntime's own fusion and NCHWc layout, or TVM's fusion
groups); measurements live in a ``KernelStore`` (SQLite, user cache dir by default) keyed by
kernel signature, backend, machine fingerprint, threads and backend variant.

``mode``:

* ``"predict"`` (default): exact hits + regressors.  If the store holds nothing for this
  machine/backend/threads, ``estimate`` raises ``CodesignError`` asking for
  ``codesign profile --target host`` (it never silently profiles).
* ``"measure"``: the candidate network itself is run and timed (MnasNet-style: the lowest
  quiet round of ``rounds``); per-layer times split it by the kernels' stored or
  in-place-measured times.
* ``"auto"``: measure when that is cheaper than predicting well -- when the store has nothing
  for this machine, or when timing the network (its predicted latency x the runs a direct
  measurement takes) costs less than profiling its kernels that the store has not seen
  (the store's own profiling cost per block); predict otherwise, and also when every round
  of the direct measurement fell in a busy spell (one busy moment is a worse estimate than
  kernels measured over many).

Only fp32 is measured; other bit-widths are reported as fp32 with a note.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hwmodels.base import LayerCost, NetworkCost
from hwmodels.bits import BitAssignment
from hwmodels.errors import CodesignError
from hwmodels.kernel_backend import BACKENDS, CompiledNetwork, KernelBackend, get_backend
from hwmodels.kernel_predictor import KernelPredictor
from hwmodels.kernel_store import KernelStore, machine_fingerprint
from hwmodels.targets import Target
from hwmodels.workload import Workload

MODES = ("predict", "measure", "auto")
RUNS_PER_ROUND = 14            # warm-up + timed runs of one direct-measurement round (ort_backend)
# where a layer's time came from -> its bound (hwmodels.base): removed by the runtime, folded into a
# neighbour's kernel, or estimated from bytes; measured/predicted kernels are "measured"
_BOUND_OF_SOURCE = {"eliminated": "free", "fused": "fused"}
_PREDICTORS: dict[tuple, KernelPredictor] = {}


def _predictor(store: KernelStore, key: tuple) -> KernelPredictor:
    """The regressors for this store's rows: from memory, else from an ``.npz`` of plain numbers beside
    the store named by the rows' content hash (so a changed store never reuses stale regressors), else
    fitted.  The file is read with ``allow_pickle=False`` and checked (``KernelPredictor.load``);
    anything wrong with it -- damaged, foreign, another version -- means refitting.  Pickles an older
    version left (``*.predictor.pkl``) are deleted, never read."""
    backend, machine, threads, variant = key
    content = store.content_hash(*key)
    mkey = (str(store.path), *key, content)
    if mkey in _PREDICTORS:
        return _PREDICTORS[mkey]
    stem = f"{store.path.name}.{backend}-{machine}-{threads}-{variant}"
    side = store.path.with_name(f"{stem}-{content}.predictor.npz")
    for old in store.path.parent.glob(f"{stem}-*.predictor.pkl"):
        try:
            old.unlink(missing_ok=True)
        except OSError:
            pass
    pred = None
    try:
        if side.is_file():
            pred = KernelPredictor.load(side)
    except Exception:                       # damaged or foreign: refit (and overwrite it below)
        pred = None
    if pred is None:
        pred = KernelPredictor().fit(store.records(*key))
        tmp = side.with_name(side.name + f".{os.getpid()}.tmp")
        try:
            for old in store.path.parent.glob(f"{stem}-*.predictor.npz"):
                old.unlink(missing_ok=True)
            pred.save(tmp)
            os.replace(tmp, side)
        except (OSError, ValueError):       # read-only cache dir, or a non-finite number JSON refuses
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
    _PREDICTORS[mkey] = pred
    return pred


@dataclass
class KernelEstimate:
    name: str
    kind: str
    us: float
    source: str                # "exact" | "regressor" | "class-median" | ... | "measured-alone"
    layers: list[str] = field(default_factory=list)


class MeasuredModel:
    """``MeasuredModel(cache=None, backend="onnxruntime", threads=None, opt_level="all", mode="predict")``.

    ``threads=None`` takes the target's thread count (``host``: 1).
    """

    name = "measured"

    def __init__(self, cache: str | Path | None = None, backend: str = "onnxruntime", threads: int | None = None,
                 opt_level: str = "all", store: KernelStore | None = None, mode: str = "predict", rounds: int = 3):
        if backend not in BACKENDS:
            raise CodesignError(f"unknown measured backend {backend!r}; use one of {', '.join(BACKENDS)}")
        if mode not in MODES:
            raise CodesignError(f"unknown measured mode {mode!r}; use one of {', '.join(MODES)}")
        self.backend, self.threads, self.opt_level, self.mode, self.rounds = backend, threads, opt_level, mode, rounds
        self._store = store
        self.cache = Path(cache) if cache is not None else None
        self._backends: dict[int, KernelBackend] = {}
        self._gate = None

    @property
    def store(self) -> KernelStore:
        if self._store is None:
            self._store = KernelStore(self.cache)
        return self._store

    def runtime(self, threads: int) -> KernelBackend:
        if threads not in self._backends:
            self._backends[threads] = get_backend(self.backend, threads, self.opt_level)
        return self._backends[threads]

    def _key(self, threads: int) -> tuple:
        b = self.runtime(threads)
        return b.name, machine_fingerprint(b.name), threads, b.variant

    def _has_store(self, threads: int) -> bool:
        return self.store.count(*self._key(threads)) > 0

    # ------------------------------------------------------------------------------------
    def kernel_estimates(self, workload: Workload | CompiledNetwork, threads: int) -> tuple[list[KernelEstimate], list, dict]:
        """Per-kernel predictions for ``workload`` plus the stand-in layers and the overheads."""
        key = self._key(threads)
        store = self.store
        if store.count(*key) == 0:
            raise CodesignError(
                f"the kernel cache {store.path} holds no {self.backend} measurements for this machine at "
                f"{threads} thread(s); run `codesign profile --target host --backend {self.backend}` first")
        compiled = workload if isinstance(workload, CompiledNetwork) else self.runtime(threads).compile(workload)
        pred = _predictor(store, key)
        ests: list[KernelEstimate] = []
        todo: dict[str, list] = {}
        for k in compiled.kernels:
            rec = store.get(k.sig_hash, *key)
            if rec is not None:
                ests.append(KernelEstimate(k.name, k.kind, rec.us, "exact", k.layers))
            else:
                ests.append(KernelEstimate(k.name, k.kind, 0.0, pred.source(k.kind), k.layers))
                todo.setdefault(k.kind, []).append((len(ests) - 1, k.features))
        for kind, items in todo.items():
            for (i, _), v in zip(items, pred.predict_many(kind, [f for _, f in items])):
                ests[i].us = float(v)
        return ests, compiled.standins, self._overhead(key)

    def _overhead(self, key: tuple) -> dict:
        ov = self.store.overhead(*key)
        return {**ov, "measured": True} if ov else \
            {"per_run_us": 0.0, "per_node_us": 0.0, "scale": 1.0, "source": "none", "measured": False}

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

    # ------------------------------------------------------------------------------------
    def gate(self):
        if self._gate is None:
            from hwmodels.quiet import QuietGate

            self._gate = QuietGate()
        return self._gate

    def measure_latency_us(self, workload: Workload | CompiledNetwork, threads: int = 1) -> tuple[float, bool]:
        """The network itself timed on this machine: ``(us, measured in a quiet moment)``."""
        compiled = workload if isinstance(workload, CompiledNetwork) else self.runtime(threads).compile(workload)
        if not compiled.kernels:
            raise CodesignError("measured mode 'measure': no layer of this network can be given to "
                                f"{self.backend}; use the predicting mode or another cost model")
        return self.runtime(threads).measure_network(compiled, self.gate(), self.rounds)

    def _measure_is_cheaper(self, ests, total_us: float, key: tuple) -> bool:
        unseen = sum(e.source != "exact" for e in ests)
        per_kernel_s = self.store.profile_cost_s(*key)
        if not unseen or per_kernel_s is None:
            return False
        return self.rounds * RUNS_PER_ROUND * total_us * 1e-6 < unseen * per_kernel_s

    def estimate(self, workload: Workload, target: Target, bits: BitAssignment | None = None) -> NetworkCost:
        threads = self.threads if self.threads is not None else int(getattr(target, "threads", 1) or 1)
        notes: list[str] = []
        if bits is not None and (bits.default.widest < 32 or any(b.widest < 32 for b in bits.per_layer.values())):
            notes.append(f"measured model: only fp32 kernels are measured; bits {bits.label} ignored (latency is fp32)")
        key = self._key(threads)
        compiled = self.runtime(threads).compile(workload)
        has_store = self._has_store(threads)
        if has_store:
            ests, standins, ov = self.kernel_estimates(compiled, threads)
            total_us = self._total(ests, standins, ov, target)
        elif self.mode == "predict":
            self.kernel_estimates(compiled, threads)      # raises the "run codesign profile" error
        measure = self.mode == "measure" or (self.mode == "auto" and (not has_store or self._measure_is_cheaper(ests, total_us, key)))
        if measure:
            net_us, quiet = self.measure_latency_us(compiled, threads)
            if self.mode == "auto" and has_store and not quiet:
                measure = False
                notes.append(f"auto: measuring directly found the machine busy in all {self.rounds} rounds "
                             f"({net_us:.1f} us); predicted from the store instead")
        if measure:
            if not has_store:
                alone = self.runtime(threads).measure_kernels(compiled)
                ests = [KernelEstimate(k.name, k.kind, alone.get(k.name, 0.0), "measured-alone", k.layers)
                        for k in compiled.kernels]
                standins, ov = compiled.standins, self._overhead(key)
            ests = self._split(ests, ov, net_us)
            total_us = net_us + sum(self._standin_us(l, target) for l in standins)
            notes.append(f"measured directly ({self.backend}, {threads} thread(s)): {net_us:.1f} us, the lowest "
                         f"{'quiet ' if quiet else ''}round of up to {self.rounds}"
                         + ("" if quiet else " (no quiet round: the machine was busy)")
                         + ("; per-layer split by the stored kernel times" if has_store else
                            "; per-layer split by its kernels timed alone"))
        costs = self._layer_costs(workload, ests, standins, target)
        n_exact = sum(1 for e in ests if e.source == "exact")
        notes.append(f"measured ({self.backend}, {threads} thread(s), {key[3]}): {len(ests)} runtime kernels, "
                     f"{n_exact} exact hits in the store, {len(ests) - n_exact} "
                     + ("timed alone" if measure and not has_store else "predicted by the per-class regressors"))
        if standins:
            notes.append(f"{len(standins)} layer(s) not rebuildable for the runtime ({', '.join(sorted({l.op for l in standins}))}): "
                         f"estimated from bytes and the target's bandwidth")
        if ov["measured"] and not measure:
            notes.append(f"network = {ov['per_run_us']:.1f} us per run + {ov.get('scale', 1.0):.3f} x kernel sum + "
                         f"{ov['per_node_us']:.2f} us per kernel (fitted from {ov.get('source', 'chain')}; overheads are "
                         f"in the total, not in per-layer latencies)")
        elif not measure:
            notes.append("overhead not measured (run `codesign profile` to fit it); none added")
        notes.append("energy is not estimated by the measured cost model")
        return NetworkCost(
            model=workload.name, target=target.name, cost_model=self.name, layers=costs,
            latency_s=total_us * 1e-6, energy_j=None, macs=workload.macs, params=workload.params,
            peak_memory_bytes=workload.peak_activation_bytes() + workload.weight_bytes,
            not_modelled=workload.not_modelled, notes=notes)

    @staticmethod
    def _split(ests: list[KernelEstimate], ov: dict, net_us: float) -> list[KernelEstimate]:
        """Kernel times scaled so that, with the overheads, they add up to the measured network."""
        kernel_sum = sum(e.us for e in ests)
        left = net_us - ov["per_run_us"] - ov["per_node_us"] * len(ests)
        scale = max(left, 0.0) / kernel_sum if kernel_sum > 0 else 0.0
        return [KernelEstimate(e.name, e.kind, e.us * scale, e.source, e.layers) for e in ests]

    def _layer_costs(self, workload: Workload, ests: list[KernelEstimate], standins: list, target: Target) -> list[LayerCost]:
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
        fallback_level = target.memory[min(1, len(target.memory) - 1)].name    # what _standin_us charges
        costs = []
        for l in layers:
            src = source_of.get(l.name, "eliminated")
            costs.append(LayerCost(
                name=l.name, op=l.op, op_class=l.op_class, macs=l.macs, weight_bytes=l.weight_bytes,
                act_bytes=l.act_bytes, latency_s=per_layer[l.name] * 1e-6, energy_j=None,
                bound=fallback_level if src == "fallback" else _BOUND_OF_SOURCE.get(src, "measured"),
                precision="fp32", extra={"kernel": kernel_of.get(l.name, ""), "source": src}))
        return costs


def fit_network_overhead(model: MeasuredModel, workloads: list[Workload], threads: int = 1,
                         min_nets: int = 5) -> dict | None:
    """Fit ``latency = per_run + sum(kernels) + per_node * kernels`` on whole networks measured
    directly (calibration networks -- never the ones a benchmark evaluates) and store it
    (source "networks").  Least squares on the *relative* error, so small and large networks
    weigh alike.  Returns the fit, or None with fewer than ``min_nets`` usable networks.

    The default overhead (chains of trivial nodes, ``backend.measure_overhead``) needs no
    networks; this is the alternative for runtimes whose per-network costs chains miss."""
    import numpy as np

    rows = []
    for wl in workloads:
        compiled = model.runtime(threads).compile(wl)
        if compiled.standins or not compiled.kernels:
            continue
        ests, _, _ = model.kernel_estimates(compiled, threads)
        y, _ = model.measure_latency_us(compiled, threads)
        rows.append((sum(e.us for e in ests), len(ests), y))
    if len(rows) < min_nets:
        return None
    S, N, Y = (np.array(c, float) for c in zip(*rows))
    A = np.vstack([np.ones_like(S), N]).T / Y[:, None]
    per_run, per_node = (float(c) for c in np.linalg.lstsq(A, 1 - S / Y, rcond=None)[0])
    pred = per_run + S + per_node * N
    key = model._key(threads)
    model.store.put_overhead(*key, per_run, per_node, len(rows), 1.0, "networks")
    return {"per_run_us": per_run, "per_node_us": per_node, "scale": 1.0, "n": len(rows),
            "median_abs_rel_err": float(np.median(np.abs(pred / Y - 1)))}
