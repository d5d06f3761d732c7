"""Benchmark of the measured-kernel cost model on held-out random networks (issues 4 and 12).

1. Kernels are measured on this machine with onnxruntime (1 thread, ORT_ENABLE_ALL,
   sequential), each node of onnxruntime's optimized graph timed alone without the profiler
   (``hwmodels.ort_kernel_timer``): the fused kernels of ``--train`` random networks (netgen
   seed 7; each kernel in a one-block model with its producers as context) plus ``--random``
   random kernel configurations.  Every block is measured between two canary samples
   (``hwmodels.quiet``); blocks measured in a busy spell are measured again in later passes.
   The per-network overhead comes from chains of trivial nodes (or, with ``--calibrate N``,
   from N *training* networks measured whole -- never held-out ones).
2. ``--held-out`` other random networks (netgen seed 1001, no architecture shared with the
   training ones) are measured end to end from their ONNX files, interleaved with the kernel
   profiling: the profiling budget is spent in ``2 x --rounds`` chunks, each followed by one
   canary-gated measurement round over all networks (a round: the fastest quarter of 12+ runs),
   so kernels and networks meet the same spells of the shared machine.  The first half of the
   rounds is set A, the second half (minutes later) set B.  A network's latency is its lowest
   quiet round over A and B; A against B is the machine's own repeatability, reported beside
   the model's accuracy.
3. They are predicted by ``MeasuredModel`` (exact hits + per-class regressors + onnxruntime's
   fusion + the overhead), measured directly by ``MeasuredModel(mode="measure")`` (the
   MnasNet-style path, timed per network against prediction), and estimated by
   ``mode="auto"`` (which of the two it chose is counted).
4. Baseline: latency proportional to MACs with the best single scale for the held-out set
   (an oracle scale, which flatters the baseline).
5. TVM path: ``--tvm-nets`` held-out networks through the TVM backend (fusion groups compiled
   and timed one by one) vs the whole network compiled by TVM.

Writes a JSON with every figure (``--out``) and prints a summary.

    python benchmarks/bench_measured.py --out benchmarks/results/measured_run1.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

from netgen import generate  # noqa: E402


def spearman(a, b) -> float:
    from scipy.stats import spearmanr
    return float(spearmanr(a, b).correlation)


def scores(pred, meas) -> dict:
    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    e = pred / meas - 1
    return {"within_10pct": float(np.mean(np.abs(e) <= 0.10)), "within_20pct": float(np.mean(np.abs(e) <= 0.20)),
            "median_abs_err": float(np.median(np.abs(e))), "mean_signed_err": float(np.mean(e)),
            "max_abs_err": float(np.max(np.abs(e))), "spearman": spearman(pred, meas)}


class Truth:
    """Whole-network latency of ONNX files: canary-gated rounds, kept per measurement set."""

    def __init__(self, paths, gate):
        from hwmodels.ort_runner import make_session, random_feeds

        self.paths, self.gate = paths, gate
        self.sessions = [make_session(p) for p in paths]
        self.feeds = [random_feeds(s) for s in self.sessions]
        self.rounds: list[list[dict]] = [[] for _ in paths]

    def measure(self, label: str, rounds: int) -> None:
        from hwmodels.ort_runner import fastest_quarter, time_session

        for _ in range(rounds):
            for i, (s, f) in enumerate(zip(self.sessions, self.feeds)):
                (us, cpu_us), quiet = self.gate.measure(lambda: self._one(s, f, fastest_quarter, time_session))
                self.rounds[i].append({"set": label, "us": us, "cpu_us": cpu_us, "quiet": quiet, "t": time.time()})

    @staticmethod
    def _one(s, f, fastest_quarter, time_session):
        wall, cpu = time_session(s, f, 12, 2, 0.03, with_cpu=True)
        return fastest_quarter(wall) * 1e6, fastest_quarter(cpu) * 1e6

    def lowest(self, sets=None, field="us") -> np.ndarray:
        """Per network: the lowest quiet round among ``sets`` (the lowest round when none was quiet)."""
        out = []
        for rs in self.rounds:
            rs = [r for r in rs if sets is None or r["set"] in sets]
            quiet = [r[field] for r in rs if r["quiet"]]
            out.append(min(quiet) if quiet else min(r[field] for r in rs))
        return np.array(out)

    def quiet_share(self, sets=None) -> float:
        return float(np.mean([any(r["quiet"] for r in rs if sets is None or r["set"] in sets) for rs in self.rounds]))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=60, help="random networks whose kernels are profiled")
    ap.add_argument("--random", type=int, default=400, help="random kernel configurations profiled")
    ap.add_argument("--held-out", type=int, default=50, help="held-out networks predicted and measured")
    ap.add_argument("--budget-s", type=float, default=600, help="kernel profiling budget (all passes)")
    ap.add_argument("--calibrate", type=int, default=0, help="training networks measured whole to fit the per-network "
                    "overhead (default 0: chains of trivial kernels)")
    ap.add_argument("--rounds", type=int, default=6, help="measurement rounds over the held-out networks per set (A, B)")
    ap.add_argument("--tvm-nets", type=int, default=3, help="held-out networks also run through TVM (0: skip)")
    ap.add_argument("--work", type=Path, default=None, help="directory for networks and the kernel cache (default: temp)")
    ap.add_argument("--cache", type=Path, default=None, help="kernel cache (default: fresh file in --work)")
    ap.add_argument("--out", type=Path, default=None, help="write all figures as JSON here")
    args = ap.parse_args(argv)

    from codesign.frontends.onnx_frontend import load_onnx
    from codesign.profiling import profile_blocks
    from hwmodels.kernel_backend import get_backend
    from hwmodels.kernel_profiling import run_profile
    from hwmodels.kernel_store import KernelStore, machine_fingerprint, machine_info
    from hwmodels.measured import MeasuredModel, fit_network_overhead
    from hwmodels.quiet import QuietGate
    from hwmodels.targets import load_target

    t_start = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_measured_"))
    work.mkdir(parents=True, exist_ok=True)
    cache = args.cache or work / f"kernels_{int(time.time())}.sqlite"
    train = generate(args.train, 7, work / "train")
    held = generate(args.held_out, 1001, work / "held_out")
    train_specs = {p.with_suffix(".json").read_text() for p in train}
    overlap = sum(p.with_suffix(".json").read_text() in train_specs for p in held)
    print(f"generated {len(train)} training + {len(held)} held-out networks ({overlap} identical specs)", flush=True)

    # 1. profile kernels in chunks, each followed by one measurement round over the held-out
    #    networks: rounds 1..R form set A, rounds R+1..2R set B (minutes later)
    gate = QuietGate()
    store = KernelStore(cache)
    backend = get_backend("onnxruntime")
    key = (backend.name, machine_fingerprint(backend.name), backend.threads, backend.variant)
    blocks = profile_blocks(backend, train, args.random, seed=0)
    truth = Truth(held, gate)
    chunks = 2 * args.rounds
    order, chunk_log = list(blocks), []
    t0 = time.perf_counter()
    for c in range(chunks):
        s = run_profile(store, backend, order, args.budget_s / chunks, passes=1, gate=gate)
        order = order[s["next"]:] + order[: s["next"]]
        truth.measure("A" if c < args.rounds else "B", 1)
        chunk_log.append({k: v for k, v in s.items() if k != "machine"})
        print(f"chunk {c + 1}/{chunks}: {s['profiled']} blocks measured ({s['quiet_blocks']} quiet), "
              f"{s['stored_quiet']}/{s['stored_total']} kernels measured quietly; measurement round "
              f"{c + 1} done", flush=True)
    t_prof = time.perf_counter() - t0
    fit = fit_network_overhead(MeasuredModel(store=store), [load_onnx(p) for p in train[: args.calibrate]]) \
        if args.calibrate else None
    if fit:
        print(f"overhead fit on {args.calibrate} training networks: {fit}", flush=True)

    # 2. predict, measure directly, and let auto choose
    tgt = load_target("host")
    model = MeasuredModel(store=store)
    direct = MeasuredModel(store=store, mode="measure")
    auto = MeasuredModel(store=store, mode="auto")
    preds, direct_us, auto_us, auto_measured, macs, hits, kernels, t_pred, t_direct = [], [], [], [], [], [], [], [], []
    for p in held:
        wl = load_onnx(p)
        t = time.perf_counter()
        cost = model.estimate(wl, tgt)
        t_pred.append(time.perf_counter() - t)
        preds.append(cost.latency_s * 1e6)
        t = time.perf_counter()
        direct_us.append(direct.estimate(wl, tgt).latency_s * 1e6)
        t_direct.append(time.perf_counter() - t)
        a = auto.estimate(wl, tgt)
        auto_us.append(a.latency_s * 1e6)
        auto_measured.append(any(n.startswith("measured directly") for n in a.notes))
        macs.append(wl.macs)
        note = next(n for n in cost.notes if "exact hits" in n)
        kernels.append(int(note.split(" runtime kernels")[0].split()[-1]))
        hits.append(int(note.split(" exact hits")[0].split()[-1]))
    T, TA, TB = truth.lowest(), truth.lowest(["A"]), truth.lowest(["B"])
    P, D, M = np.array(preds), np.array(direct_us), np.array(macs, float)
    scale = float(np.exp(np.median(np.log(T / M))))      # MACs-only baseline with the oracle scale
    sizes = {}
    for lo, hi in ((0, 300), (300, 1000), (1000, 1e12)):
        sel = (T >= lo) & (T < hi)
        if sel.any():
            sizes[f"{lo:g}-{hi:g} us"] = {"n": int(sel.sum()), **scores(P[sel], T[sel])}
    res = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info("onnxruntime"), "python": platform.python_version(),
        "settings": {"threads": 1, "opt_level": "ORT_ENABLE_ALL", "execution": "sequential",
                     **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}},
        "profile": {"blocks": len(blocks), "chunks": chunk_log, "seconds_with_measurement_rounds": t_prof,
                    "kernels": store.count(*key), "kernels_quiet": store.count(*key, quiet_only=True),
                    "overhead": store.overhead(*key), "canary_quiet_share": gate.quiet_samples / max(gate.samples, 1)},
        "overhead_fit": fit,
        "held_out": {
            "n": len(held), "identical_specs_with_training": overlap,
            "latency_us_range": [float(T.min()), float(T.max())],
            "exact_hit_share": float(np.sum(hits) / np.sum(kernels)), "kernels": int(np.sum(kernels)),
            "networks_with_a_quiet_round": truth.quiet_share(),
            "predicted": scores(P, T), "predicted_vs_set_A": scores(P, TA), "predicted_vs_set_B": scores(P, TB),
            "predicted_vs_cpu_time": scores(P, truth.lowest(field="cpu_us")),
            "by_size": sizes,
            "repeatability_A_vs_B": scores(TA, TB),
            "direct": {**scores(D, T), "seconds_per_net": float(np.median(t_direct))},
            "predict_seconds_per_net": float(np.median(t_pred)),
            "auto": {**scores(auto_us, T), "measured_share": float(np.mean(auto_measured))},
        },
        "macs_baseline": {**scores(M * scale, T), "scale_us_per_gmac": scale * 1e9},
        "networks": [{"name": p.name, "macs": int(m), "predicted_us": float(a), "direct_us": float(d), "auto_us": float(au),
                      "measured_us": float(b), "auto_measured": bool(am), "rounds": r, "exact_hits": h, "kernels": k}
                     for p, m, a, d, au, b, am, r, h, k in zip(held, macs, P, D, auto_us, T, auto_measured, truth.rounds,
                                                               hits, kernels)],
    }
    h = res["held_out"]
    print(f"repeatability (set A vs set B): within 10% {h['repeatability_A_vs_B']['within_10pct']:.0%}, within 20% "
          f"{h['repeatability_A_vs_B']['within_20pct']:.0%}, median |diff| {h['repeatability_A_vs_B']['median_abs_err']:.1%}")
    for name in ("predicted", "predicted_vs_set_A", "predicted_vs_set_B", "direct", "auto"):
        s = h[name]
        print(f"{name}: within 10% {s['within_10pct']:.0%}, within 20% {s['within_20pct']:.0%}, median |err| "
              f"{s['median_abs_err']:.1%}, mean {s['mean_signed_err']:+.1%}, Spearman {s['spearman']:.3f}")
    print(f"MACs: within 10% {res['macs_baseline']['within_10pct']:.0%}, Spearman {res['macs_baseline']['spearman']:.3f}; "
          f"exact hits {h['exact_hit_share']:.0%}; predict {h['predict_seconds_per_net'] * 1e3:.0f} ms/net, "
          f"measure {h['direct']['seconds_per_net'] * 1e3:.0f} ms/net; auto measured {h['auto']['measured_share']:.0%}", flush=True)

    # 5. TVM path
    if args.tvm_nets:
        import onnx

        from hwmodels.tvm_backend import measure_tvm_latency_ms

        t0 = time.perf_counter()
        order = np.argsort(T)[: args.tvm_nets * 3: 3]     # small-to-medium networks, spread out
        tvm_rows = []
        tvm_backend = get_backend("tvm")
        tvm_model = MeasuredModel(store=store, backend="tvm")
        for i in order:
            p = held[int(i)]
            wl = load_onnx(p)
            s = run_profile(store, tvm_backend, tvm_backend.blocks([wl]), passes=1, gate=gate)
            cost = tvm_model.estimate(wl, tgt)
            m = measure_tvm_latency_ms(onnx.load(str(p)))
            tvm_rows.append({"name": p.name, "groups": s["blocks"], "predicted_ms": cost.latency_s * 1e3,
                             "measured_ms": m["fast_ms"], "measured_median_ms": m["median_ms"],
                             "onnxruntime_ms": float(T[int(i)]) / 1e3})
            print(f"tvm {p.name}: predicted {cost.latency_s * 1e3:.2f} ms, measured {m['fast_ms']:.2f} ms", flush=True)
        res["tvm"] = {"rows": tvm_rows, "seconds": time.perf_counter() - t0,
                      "note": "untuned llvm builds; each fusion group compiled and timed alone (exact kernels), "
                              "summed with the VM call overhead"}
    res["total_seconds"] = time.perf_counter() - t_start
    store.close()
    if args.out:
        args.out.write_text(json.dumps(res, indent=1, default=str))
    print(f"total {res['total_seconds']:.0f} s")
    return res


if __name__ == "__main__":
    main()
