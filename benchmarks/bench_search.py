"""Joint vs sequential vs random search on equal budgets of measured evaluations, over seeds.

One problem per config (supernet trained once and reused, layer sensitivity measured once:
setup shared by every strategy); for each seed the joint search, the sequential baseline
(architecture -> bits -> hardware, the same predictor and surrogate machinery in each phase)
and random search (the floor) each spend ``budget.trials`` measured accuracy evaluations.
Hypervolume per seed on one normalisation shared by the three fronts (objectives minimised,
accuracy as 1 - accuracy, costs on a log scale (``pareto.hv_scale``), each scaled to [0, 1]
over every feasible point of the three strategies, reference point 1.1 in every objective);
the linear-scale hypervolume is reported beside it.  Re-running on a finished ``--out`` measures
nothing new and re-scores the stored studies.

    python benchmarks/bench_search.py --config examples/digits_systolic.toml --seeds 0 1 2 3 4
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import statistics
import time
from pathlib import Path

import numpy as np

from codesign.search.config import load_config
from codesign.search.pareto import as_minimization, dominates_all, hypervolume, normalizer
from codesign.search.problem import Problem
from codesign.search.rows import front
from codesign.search.runner import Runner

STRATEGIES = ("joint", "sequential", "random")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="examples/digits_systolic.toml")
    ap.add_argument("--trials", type=int, default=None, help="override budget.trials")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--method", choices=["surrogate", "direct"], default=None, help="override search.method")
    ap.add_argument("--carry", choices=["knee", "accuracy"], default=None,
                    help="override search.carry: what the sequential strategy hands from one phase to the next")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    base = load_config(args.config)
    if args.trials:
        base.budget.trials = args.trials
    if args.method:
        base.search.method = args.method
    if args.carry:
        base.search.carry = args.carry
    base.budget.minutes = 120
    out = Path(args.out or f"benchmarks/out/search-{Path(args.config).stem}-{base.search.method}")
    base.supernet.checkpoint_dir = str(out / "checkpoints")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    problem = Problem(base, out, log=print)
    setup_s = time.perf_counter() - t0
    objectives = base.objectives
    results = []
    for seed in args.seeds:
        fronts, times, logs = {}, {}, {}
        for strategy in STRATEGIES:
            cfg = copy.deepcopy(base)
            cfg.seed = seed
            run_dir = out / f"seed{seed}-{strategy}"
            run_dir.mkdir(parents=True, exist_ok=True)
            runner = Runner(problem, cfg, run_dir)
            t = time.perf_counter()
            rows = getattr(runner, strategy)()
            times[strategy] = time.perf_counter() - t
            fronts[strategy] = (rows, front(rows, objectives))
            logs[strategy] = {label: log.summary() for label, log in runner.logs.items() if log.rounds}
        every = [r.metrics for rows, _ in fronts.values() for r in rows if r.feasible and r.fidelity == "full"]
        norm, norm_lin = normalizer(every, objectives), normalizer(every, objectives, linear=True)
        # the fronts were selected on validation accuracy; scored again with each member's test accuracy
        # (measured once per network and bits), so a strategy that chases validation noise gains nothing
        test = {s: [{**r.metrics, "accuracy": _test_accuracy(problem, r.candidate)} for r in f]
                for s, (_, f) in fronts.items()}
        norm_test = normalizer([m for ms in test.values() for m in ms], objectives)
        rec = {"seed": seed, "normalisation": {o: [float(lo), float(hi)] for o, lo, hi in zip(objectives, *norm[:2])}}
        for s, (rows, f) in fronts.items():
            measured = [r for r in rows if not r.derived]
            own = front(measured, objectives)             # without the hardware trade-off points
            rec[s] = {"trials": len(measured), "feasible": sum(r.feasible for r in measured), "front": len(f),
                      "hv_measured_only": hypervolume([r.metrics for r in own], objectives, norm),
                      "hv": hypervolume([r.metrics for r in f], objectives, norm),
                      "hv_linear": hypervolume([r.metrics for r in f], objectives, norm_lin),
                      "hv_test": hypervolume(test[s], objectives, norm_test), "seconds": times[s],
                      "surrogate": logs[s]}
        rec["joint_dominates_sequential"] = dominates_all([r.metrics for r in fronts["joint"][1]],
                                                          [r.metrics for r in fronts["sequential"][1]], objectives)
        rec["joint_dominates_sequential_test"] = dominates_all(test["joint"], test["sequential"], objectives)
        rec["dominance_gap_images"] = dominance_gap([r.metrics for r in fronts["joint"][1]],
                                                    [r.metrics for r in fronts["sequential"][1]], objectives,
                                                    1.0 / len(problem.splits.val))
        results.append(rec)
        print(json.dumps({k: (v if k in ("seed", "joint_dominates_sequential") else
                              {kk: vv for kk, vv in v.items() if kk != "surrogate"} if isinstance(v, dict) else v)
                          for k, v in rec.items() if k != "normalisation"}))
    payload = {"config": args.config, "trials": base.budget.trials, "method": base.search.method,
               "setup_seconds": setup_s, "sensitivity_evaluations": getattr(problem.sensitivity, "evaluations", 0),
               "results": results}
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=float))
    print(markdown(payload, args))


def dominance_gap(joint: list[dict], seq: list[dict], objectives: list[str], image: float) -> float | None:
    """How many validation images of accuracy every joint member would need to gain for the joint front
    to weakly dominate the sequential one (None: some sequential member is cheaper on some cost than
    every joint member that could cover it, so no accuracy gain suffices)."""
    j, s = as_minimization(joint, objectives), as_minimization(seq, objectives)
    acc = objectives.index("accuracy")
    costs = [i for i in range(len(objectives)) if i != acc]
    worst = 0.0
    for y in s:
        lifts = [max(0.0, x[acc] - y[acc]) for x in j if np.all(x[costs] <= y[costs])]
        if not lifts:
            return None
        worst = max(worst, min(lifts))
    return round(worst / image, 6)


_TEST: dict[str, float] = {}


def _test_accuracy(problem, cand) -> float:
    key = problem.key(cand)
    if key not in _TEST:
        _TEST[key] = problem.evaluation.accuracy(cand, part="test")[0]
    return _TEST[key]


def markdown(payload: dict, args) -> str:
    results = payload["results"]
    lines = [f"`python benchmarks/bench_search.py --config {args.config} --seeds {' '.join(map(str, args.seeds))}"
             + (f" --trials {args.trials}" if args.trials else "") + (f" --method {args.method}" if args.method else "")
             + (f" --carry {args.carry}" if args.carry else "")
             + f"` — {dt.date.today()}; {payload['trials']} measured evaluations per strategy; setup (supernet, "
             f"{payload['sensitivity_evaluations']} sensitivity evaluations) {payload['setup_seconds']:.0f} s, shared.", "",
             "| seed | HV joint | HV sequential | HV random | joint/sequential | test-accuracy HV j/s/r | "
             "linear HV j/s/r | joint dominates sequential (val / test) | predictor OOF Spearman / MAE (joint) | "
             "scored/s (joint) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        joint_log = r["joint"]["surrogate"].get("joint", {})
        p = joint_log.get("predictor", {})
        lines.append(f"| {r['seed']} | {r['joint']['hv']:.4f} | {r['sequential']['hv']:.4f} | {r['random']['hv']:.4f} | "
                     f"{r['joint']['hv'] / max(r['sequential']['hv'], 1e-12):.3f} | "
                     f"{r['joint']['hv_test']:.3f}/{r['sequential']['hv_test']:.3f}/{r['random']['hv_test']:.3f} | "
                     f"{r['joint']['hv_linear']:.3f}/{r['sequential']['hv_linear']:.3f}/{r['random']['hv_linear']:.3f} | "
                     f"{r['joint_dominates_sequential']} / {r['joint_dominates_sequential_test']} | "
                     f"{p.get('oof_spearman', float('nan')):.3f} / {p.get('oof_mae_points', float('nan')):.2f} | "
                     f"{joint_log.get('candidates_per_second', 0):,.0f} |")
    med = {s: statistics.median(r[s]["hv"] for r in results) for s in STRATEGIES}
    gain = statistics.median(r["joint"]["hv"] / max(r["sequential"]["hv"], 1e-12) for r in results)
    wins = sum(r["joint"]["hv"] > r["sequential"]["hv"] for r in results)
    med_t = {s: statistics.median(r[s]["hv_test"] for r in results) for s in STRATEGIES}
    gain_t = statistics.median(r["joint"]["hv_test"] / max(r["sequential"]["hv_test"], 1e-12) for r in results)
    wins_t = sum(r["joint"]["hv_test"] > r["sequential"]["hv_test"] for r in results)
    lines.append(f"| median | {med['joint']:.4f} | {med['sequential']:.4f} | {med['random']:.4f} | {gain:.3f} | "
                 f"{med_t['joint']:.3f}/{med_t['sequential']:.3f}/{med_t['random']:.3f} | | "
                 f"{sum(r['joint_dominates_sequential'] for r in results)}/{len(results)} / "
                 f"{sum(r['joint_dominates_sequential_test'] for r in results)}/{len(results)} | | |")
    lines.append("")
    lines.append(f"Joint above sequential on {wins}/{len(results)} seeds (median HV ratio {gain:.3f}); scored with test "
                 f"accuracy, on {wins_t}/{len(results)} seeds (median ratio {gain_t:.3f}).")
    if all("hv_measured_only" in r[s] for r in results for s in STRATEGIES):
        med_m = {s: statistics.median(r[s]["hv_measured_only"] for r in results) for s in STRATEGIES}
        wins_m = sum(r["joint"]["hv_measured_only"] > r["sequential"]["hv_measured_only"] for r in results)
        lines.append(f"Measured rows only (no hardware trade-off points): median HV joint {med_m['joint']:.4f}, "
                     f"sequential {med_m['sequential']:.4f}, random {med_m['random']:.4f}; joint above sequential on "
                     f"{wins_m}/{len(results)} seeds.")
    if all("dominance_gap_images" in r for r in results):
        gaps = ", ".join("none" if r["dominance_gap_images"] is None else f"{r['dominance_gap_images']:.0f}"
                         for r in results)
        lines.append(f"Validation images of accuracy the joint front lacks to dominate the sequential one, per seed "
                     f"(0 = dominates; none = some sequential member is not beaten on every cost): {gaps}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
