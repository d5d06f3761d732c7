"""Joint vs sequential vs random search on equal budgets, over several seeds.

One supernet (trained once, reused) and one problem (examples/digits_systolic.toml); for each
seed, the joint search (NSGA-II), the sequential baseline (architecture -> bits -> hardware,
NSGA-II in each phase) and random search (the floor) each get the same number of trials.
Hypervolume is computed per seed on one normalisation shared by the three fronts.

    python benchmarks/bench_search.py [--config examples/digits_systolic.toml] [--trials 30] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import statistics
import time
from pathlib import Path

from codesign.search.config import load_config
from codesign.search.pareto import dominates_all, hypervolume, normalizer
from codesign.search.problem import Problem
from codesign.search.runner import Runner, front


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="examples/digits_systolic.toml")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="benchmarks/out/search")
    ap.add_argument("--algorithm", default="nsga2", choices=["nsga2", "tpe"],
                    help="sampler of the joint search and of each sequential phase")
    args = ap.parse_args()
    out = Path(args.out)
    base = load_config(args.config)
    base.budget.trials = args.trials
    base.budget.minutes = 60
    base.supernet.checkpoint_dir = str(out / "checkpoints")
    out.mkdir(parents=True, exist_ok=True)
    problem = Problem(base, out, log=print)
    objectives = base.objectives
    results = []
    for seed in args.seeds:
        fronts, times = {}, {}
        for strategy, algorithm in (("joint", args.algorithm), ("sequential", args.algorithm), ("random", "random")):
            cfg = copy.deepcopy(base)
            cfg.seed, cfg.algorithm = seed, algorithm
            run_dir = out / f"seed{seed}-{strategy}-{algorithm}"
            run_dir.mkdir(parents=True, exist_ok=True)
            runner = Runner(problem, cfg, run_dir)
            t0 = time.perf_counter()
            rows = runner.sequential() if strategy == "sequential" else runner.joint()
            times[strategy] = time.perf_counter() - t0
            fronts[strategy] = (rows, front(rows, objectives))
        every = [r.metrics for rows, _ in fronts.values() for r in rows if r.feasible]
        norm = normalizer(every, objectives)
        rec = {"seed": seed}
        for s, (rows, f) in fronts.items():
            rec[s] = {"trials": len(rows), "feasible": sum(r.feasible for r in rows), "front": len(f),
                      "hv": hypervolume([r.metrics for r in f], objectives, norm), "seconds": times[s]}
        rec["joint_dominates_sequential"] = dominates_all([r.metrics for r in fronts["joint"][1]],
                                                          [r.metrics for r in fronts["sequential"][1]], objectives)
        results.append(rec)
        print(json.dumps(rec))
    (out / f"results-{args.algorithm}.json").write_text(json.dumps(results, indent=2))
    print(f"\n`python benchmarks/bench_search.py --config {args.config} --trials {args.trials} "
          f"--seeds {' '.join(map(str, args.seeds))} --algorithm {args.algorithm}` — {dt.date.today()}\n")
    print("| seed | HV joint | HV sequential | HV random | joint dominates sequential | feasible j/s/r |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['seed']} | {r['joint']['hv']:.4f} | {r['sequential']['hv']:.4f} | {r['random']['hv']:.4f} | "
              f"{r['joint_dominates_sequential']} | {r['joint']['feasible']}/{r['sequential']['feasible']}/{r['random']['feasible']} |")
    med = {s: statistics.median(r[s]["hv"] for r in results) for s in ("joint", "sequential", "random")}
    print(f"| median | {med['joint']:.4f} | {med['sequential']:.4f} | {med['random']:.4f} | "
          f"{sum(r['joint_dominates_sequential'] for r in results)}/{len(results)} | |")


if __name__ == "__main__":
    main()
