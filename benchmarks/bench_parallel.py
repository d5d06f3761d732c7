"""Parallel evaluations: `--workers 1`, `--workers 2` and `--ray local` (2 CPUs) side by side in one
run, on the same config and the same measured budget.

Each variant is the real `codesign search` command (a fresh process, its own --out), on one
supernet checkpoint trained beforehand (so no variant pays for training).  Reported per variant
(medians over --repeat runs): the command's wall time, the search loop's wall time (first trial
started to last trial finished, read from the study), the part of it the driver's surrogate
rounds took (logged in the study; evaluations wait for them) and the rest ("measuring"), their
ratios to `--workers 1`, and the
hypervolume of the joint front on one normalisation shared by every variant's front (objectives
minimised, accuracy as 1 - accuracy, costs on a log scale, reference point 1.1).  The runner
proposes only when nothing is queued or running, so every variant should build the same study:
``same_trials`` says whether it did.

    python benchmarks/bench_parallel.py --config examples/digits_systolic.toml --trials 50 --repeat 3 \\
        --out runs/bench_parallel --json benchmarks/results/parallel.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna
import tomli_w

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {"workers-1": ["--workers", "1"], "workers-2": ["--workers", "2"], "ray-local-2": ["--ray", "local", "--workers", "2"]}


def _config(src: Path, root: Path, minutes: float) -> Path:
    """The config with one shared checkpoint folder and a clock cap that the budget, not the clock, ends."""
    from codesign.search.config import load_config

    cfg = load_config(src).model_dump(mode="json", exclude_none=True)
    cfg["supernet"]["checkpoint_dir"] = str(root / "ckpt")
    cfg["budget"]["minutes"] = minutes
    out = root / "config.toml"
    out.write_text(tomli_w.dumps(cfg))
    return out


def _run(cfg: Path, out: Path, trials: int, extra: list[str], seed: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "CODESIGN_DEBUG"}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "codesign", "search", str(cfg), "--out", str(out), "--strategy",
                           "joint", "--trials", str(trials), "--seed", str(seed), *extra],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{' '.join(extra)}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    return wall


def _study(out: Path) -> optuna.Study:
    url = f"sqlite:///{out / 'study.db'}"
    name = next(s.study_name for s in optuna.get_all_study_summaries(url) if s.study_name.startswith("joint-"))
    return optuna.load_study(study_name=name, storage=url)


def _loop_seconds(study: optuna.Study) -> float:
    trials = [t for t in study.get_trials() if t.datetime_start and t.datetime_complete]
    return (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()


def _surrogate_seconds(study: optuna.Study) -> float:
    """The driver's surrogate rounds (predictor fit + search), as the runner logged them."""
    return sum(v["seconds"] for k, v in study.user_attrs.items() if k.startswith("round_"))


def _trials(study: optuna.Study) -> list:
    return sorted((t.number, tuple(round(v, 9) for v in t.values or ())) for t in study.get_trials())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "examples" / "digits_systolic.toml"))
    ap.add_argument("--trials", type=int, default=50, help="measured budget of every variant")
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant (medians reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=120, help="budget.minutes (the clock must not end a run)")
    ap.add_argument("--out", default="runs/bench_parallel")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    from codesign.search.pareto import hypervolume, normalizer

    root = Path(args.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    cfg = _config(Path(args.config), root, args.minutes)
    t = time.perf_counter()
    _run(cfg, root / "warm-up", 2, [], args.seed)           # trains the supernet every variant then reuses
    print(f"supernet trained (warm-up run): {time.perf_counter() - t:.1f}s", file=sys.stderr)

    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(args.repeat):
        for name, extra in VARIANTS.items():                 # interleaved, so load drifts hit every variant
            out = root / f"{name}-{r}"
            wall = _run(cfg, out, args.trials, extra, args.seed)
            study = _study(out)
            summary = json.loads((out / "pareto.json").read_text())
            front = [m for m in json.loads((out / "pareto.json").read_text())["front"] if m["strategy"] == "joint"]
            loop, surrogate = _loop_seconds(study), _surrogate_seconds(study)
            runs[name].append({"wall_s": wall, "loop_s": loop, "surrogate_s": surrogate, "measure_s": loop - surrogate,
                               "trials": _trials(study),
                               "front": front, "objectives": summary["summary"]["objectives"],
                               "stopped_by_wall_clock": summary["summary"]["strategies"]["joint"].get(
                                   "budget", {}).get("stopped_by_wall_clock")})
            print(f"  {name} run {r + 1}: {wall:.1f}s (search loop {loop:.1f}s, of which surrogate rounds "
                  f"{surrogate:.1f}s)", file=sys.stderr)

    objectives = runs["workers-1"][0]["objectives"]
    every = [m for rs in runs.values() for x in rs for m in x["front"]]
    norm = normalizer(every, objectives)
    base = runs["workers-1"]
    base_wall = statistics.median(x["wall_s"] for x in base)
    base_loop = statistics.median(x["loop_s"] for x in base)
    base_measure = statistics.median(x["measure_s"] for x in base)
    results = {"date": dt.date.today().isoformat(), "config": args.config, "trials": args.trials,
               "repeat": args.repeat, "seed": args.seed, "cpus": os.cpu_count(), "variants": {}}
    for name, rs in runs.items():
        wall = statistics.median(x["wall_s"] for x in rs)
        loop = statistics.median(x["loop_s"] for x in rs)
        measure = statistics.median(x["measure_s"] for x in rs)
        results["variants"][name] = {
            "wall_s_median": round(wall, 2), "loop_s_median": round(loop, 2), "measure_s_median": round(measure, 2),
            "surrogate_s_median": round(statistics.median(x["surrogate_s"] for x in rs), 2),
            "speedup_wall": round(base_wall / wall, 3), "speedup_loop": round(base_loop / loop, 3),
            "speedup_measuring": round(base_measure / measure, 3),
            "hypervolume": [round(hypervolume(x["front"], objectives, norm), 5) for x in rs],
            "same_trials_as_workers_1": all(x["trials"] == base[0]["trials"] for x in rs),
            "stopped_by_wall_clock": any(x["stopped_by_wall_clock"] for x in rs),
            "wall_s": [round(x["wall_s"], 2) for x in rs], "loop_s": [round(x["loop_s"], 2) for x in rs]}
    print(f"{'variant':<13}{'wall s':>9}{'loop s':>9}{'surr. s':>9}{'x wall':>8}{'x loop':>8}{'x meas.':>8}"
          f"  hypervolume  same trials")
    for name, v in results["variants"].items():
        print(f"{name:<13}{v['wall_s_median']:>9.1f}{v['loop_s_median']:>9.1f}{v['surrogate_s_median']:>9.1f}"
              f"{v['speedup_wall']:>8.2f}{v['speedup_loop']:>8.2f}{v['speedup_measuring']:>8.2f}"
              f"  {statistics.median(v['hypervolume']):>11.4f}  {v['same_trials_as_workers_1']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
