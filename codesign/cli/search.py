"""`codesign search CONFIG.toml --out DIR`: the joint co-design search and its artifacts."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from codesign.cli.common import Strategy, ensure_out_dir
from codesign.files import write_text
from hwmodels.errors import CodesignError


def search(
    config: Annotated[Path, typer.Argument(help="search config (TOML); see examples/digits_systolic.toml")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder: study.db, pareto.csv/json, model files, report.html")],
    strategy: Annotated[Strategy, typer.Option("--strategy", help="joint, sequential, both side by side, random (the floor), or all three (same budget each)")] = Strategy.both,
    resume: Annotated[bool, typer.Option("--resume", help="continue the study in OUT after a crash or Ctrl-C")] = False,
    pick: Annotated[Optional[int], typer.Option("--pick", help="index in the joint front of the design to export (default: knee point)")] = None,
    trials: Annotated[Optional[int], typer.Option("--trials", help="override budget.trials")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="override the config's seed")] = None,
    storage: Annotated[Optional[str], typer.Option("--storage", help="optuna storage URL for the studies (default: sqlite in OUT); several processes with the same postgresql://... URL and --resume share one study")] = None,
    workers: Annotated[int, typer.Option("--workers", help="measured evaluations in parallel on this machine (processes); with --ray, at most this many tasks at once")] = 1,
    ray: Annotated[Optional[str], typer.Option("--ray", help="run evaluations as Ray tasks: local (start Ray here), auto (the running cluster) or HOST:PORT")] = None,
) -> None:
    """Search architecture x per-layer bits x accelerator together; write the chosen design's files."""
    from codesign.search.config import load_config

    cfg = load_config(config)
    if trials is not None:
        if trials < 2:
            raise CodesignError("--trials must be at least 2")
        cfg.budget.trials = trials
    if seed is not None:
        cfg.seed = seed
    if cfg.model is not None:          # [model]: a trained model to quantize, not a space to search
        used = [f for f, v in (("--storage", storage), ("--ray", ray), ("--pick", pick),
                               ("--workers", workers if workers != 1 else None)) if v is not None]
        if used or strategy != Strategy.both:
            raise CodesignError(f"search config {config}: [model] runs `codesign quantize` on that model, which takes "
                                f"no {', '.join(used) or '--strategy'}; drop it, or use a config without [model]")
        from codesign.cli.quantize_cmd import run_from_config

        run_from_config(cfg, out, resume)
        return
    strategies = {Strategy.both: ["joint", "sequential"], Strategy.all: ["joint", "sequential", "random"]}.get(
        strategy, [strategy.value])
    from codesign.search.checks import check_references

    try:
        check_references(cfg)           # before anything is written to --out or trained
    except CodesignError as e:
        raise CodesignError(f"search config {config}: {e}") from None
    if workers < 1:
        raise CodesignError(f"--workers {workers}: give 1 or more")
    from codesign.search import storage as st

    url = storage if storage is not None else st.default_url(out)
    if storage is not None:            # reachable, and holding no other config's study, before anything is trained
        st.check_studies(st.open_storage(url), cfg, url, resume)
    started_ray = False
    if ray is not None:
        from codesign.search.ray_workers import connect

        started_ray = connect(ray, workers if workers > 1 else None)
    _prepare_out(out, resume, cfg)
    console = Console(stderr=True)
    lock = out / ".lock"
    write_text(lock, str(os.getpid()), "--out")
    try:
        _run(cfg, out, strategies, pick, console, url if storage is not None else None, workers, ray, started_ray)
    except st.database_errors() as e:
        raise st.lost_database(url, e) from None
    finally:
        lock.unlink(missing_ok=True)


def _prepare_out(out: Path, resume: bool, cfg) -> None:
    db = out / "study.db"
    if out.exists() and not out.is_dir():
        raise CodesignError(f"--out {out} exists and is not a folder")
    if db.exists() and not resume:
        raise CodesignError(f"{out} already holds a study; pass --resume to continue it or choose another --out")
    lock = out / ".lock"
    if lock.exists():
        try:
            pid = int(lock.read_text().strip())
            os.kill(pid, 0)
            raise CodesignError(f"{out} is in use by a running search (pid {pid})")
        except (ValueError, ProcessLookupError, PermissionError):
            lock.unlink(missing_ok=True)    # left behind by a process that died
    _remove_stray_tmp(out)
    ensure_out_dir(out)
    saved = out / "config.json"
    current = cfg.digest()             # configs without [model] keep the config.json they had before it existed
    if resume and saved.exists():
        before = json.loads(saved.read_text())
        if before != json.loads(json.dumps(current)):
            changed = sorted(k for k in current if before.get(k) != json.loads(json.dumps(current[k])))
            raise CodesignError(f"--resume: the config differs from the one the study in {out} was started with "
                                f"(changed: {', '.join(changed)}); resume with the same config")
    write_text(saved, json.dumps(current, indent=2), "--out")


def _remove_stray_tmp(out: Path) -> None:
    """Temporary files (``.NAME.PID.tmp``, codesign.files) of a process killed between writing and
    renaming one: nothing else removes them."""
    for f in out.glob(".*.tmp") if out.is_dir() else ():
        pid = f.name.rsplit(".", 2)[-2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)        # a live writer (another command on this folder): leave it
        except ProcessLookupError:
            f.unlink(missing_ok=True)
        except OSError:
            pass


def _run(cfg, out: Path, strategies: list[str], pick_index: int | None, console: Console, url: str | None = None,
         workers: int = 1, ray: str | None = None, started_ray: bool = False) -> None:
    from codesign.search.artifacts import write_design, write_fronts
    from codesign.search.problem import Problem
    from codesign.search.rows import front, pick
    from codesign.search.runner import Runner
    from codesign.search.saved import ReportInputs

    with console.status("preparing: data, supernet (trained once, then reused), target"):
        problem = Problem(cfg, out, log=lambda m: console.print(f"  {m}"))
    console.print(f"[bold]codesign search[/]: space {cfg.space.name}, data {cfg.data.source}, target {cfg.target.name}, "
                  f"{cfg.algorithm}, {cfg.budget.trials} trials per strategy, seed {cfg.seed}")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("front {task.fields[front]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console)
    tasks: dict[str, int] = {}

    def report(label: str, done: int, total: int, front_size: int) -> None:
        if label not in tasks:
            tasks[label] = progress.add_task(label, total=total, front=0)
        progress.update(tasks[label], completed=done, front=front_size)

    from codesign.search.workers import make_evaluator

    evaluator = make_evaluator(problem, workers, ray, started_ray)
    if evaluator.capacity > 1:
        console.print(f"  evaluations: {evaluator.capacity} at once ({evaluator.where})")
    try:
        runner = Runner(problem, cfg, out, report, url=url, evaluator=evaluator)
        rows = {}
        with progress:
            for s in strategies:
                rows[s] = {"joint": runner.joint, "sequential": runner.sequential, "random": runner.random}[s]()
    finally:
        evaluator.close()
    if runner.relaunched:
        console.print(f"[yellow]note:[/] a worker died while measuring {len(runner.relaunched)} trial(s) ("
                      + ", ".join(f"{n} #{t}" for n, t in runner.relaunched) + "); each was measured again with the "
                      f"same candidate under its own number")
    if not any(rows.values()):
        raise CodesignError("the budget ran out before any trial finished; raise budget.minutes")
    fronts = {s: front(r, cfg.objectives) for s, r in rows.items()}
    if not any(fronts.values()):
        raise CodesignError("no trial met the constraints; relax them (see the trials in study.db)")
    with console.status("measuring test accuracy of the front members"):
        test_acc = {}
        for f in fronts.values():
            for r in f:
                if problem.key(r.candidate) not in test_acc:
                    test_acc[problem.key(r.candidate)] = problem.evaluation.evaluate(r.candidate, part="test")["accuracy"]
    logs = {s: log.summary() for s, log in runner.logs.items()}
    logs = {s: logs.get(s) or _phase_logs(logs, s) for s in rows}
    from codesign.search.compare import compare

    summary = write_fronts(out, rows, cfg.objectives, test_acc, problem.key, logs,
                           comparison=compare(problem, fronts, cfg.objectives), usage=runner.usage)
    for s, u in runner.usage.items():
        if u["stopped_by_wall_clock"]:
            console.print(f"[yellow]note:[/] {s} stopped at budget.minutes after {u['spent']:g} of {u['budget']} "
                          f"measured evaluations; raise budget.minutes for the full budget")
    main = "joint" if fronts.get("joint") else next(s for s in fronts if fronts[s])
    if pick_index is not None and not 0 <= pick_index < len(fronts[main]):
        raise CodesignError(f"--pick {pick_index}: the {main} front has {len(fronts[main])} members (0..{len(fronts[main]) - 1})")
    chosen = pick(rows[main], cfg.objectives, pick_index)
    with console.status("exporting the chosen design (ONNX, QDQ ONNX, TVM module, accelerator)"):
        design = write_design(out, problem, chosen)
        _, cost = problem.evaluation.cost(chosen.candidate)
    inputs = ReportInputs(cfg.objectives, rows, [(c.to_json(), a) for c, a in _test_pairs(fronts, test_acc, problem.key)],
                          logs, summary.get("joint_vs_sequential"), runner.usage, design, cost, problem.target, {})
    write_outputs(out, inputs, summary)
    _print(console, summary, design, out)


def _test_pairs(fronts: dict, test_acc: dict, key) -> list:
    """(candidate, test accuracy) of every front member, once per network and bits."""
    from codesign.search.saved import candidate_key

    seen, out = set(), []
    for f in fronts.values():
        for r in f:
            if key(r.candidate) in test_acc and candidate_key(r.candidate) not in seen:
                seen.add(candidate_key(r.candidate))
                out.append((r.candidate, test_acc[key(r.candidate)]))
    return out


DESIGN_FILES = ["model.onnx", "model.qdq.onnx", "accelerator.toml", "model_tvm.so", "design.json", "pareto.csv",
                "pareto.json", "study.db"]


def write_outputs(out: Path, inputs, summary: dict) -> None:
    """report_data.json, then report.html from it: the one path both `search` and `report` take."""
    from codesign.report.search_report import file_sizes, write_search_report
    from codesign.search.saved import save

    inputs.files = file_sizes(out, DESIGN_FILES)
    save(out, inputs)
    write_search_report(out / "report.html", inputs, summary)


def _phase_logs(logs: dict, strategy: str) -> dict:
    """The sequential strategy's surrogate logs are per phase ("sequential: arch", ...)."""
    return {label.split(": ", 1)[1]: v for label, v in logs.items() if label.startswith(f"{strategy}: ") and v}


def _print(console: Console, summary: dict, design: dict, out: Path) -> None:
    table = Table(title="fronts")
    for c in ("strategy", "trials", "feasible", "front", "hypervolume"):
        table.add_column(c)
    for s, v in summary["strategies"].items():
        table.add_row(s, str(v["trials"]), str(v["feasible"]), str(v["front_size"]), f"{v['hypervolume']:.4f}")
    console.print(table)
    from codesign.search.artifacts import surrogate_logs

    for label, log in surrogate_logs(summary):
        p = log["predictor"]
        console.print(f"{label}: surrogate scored {log['candidates_scored']:,} candidates in {log['rounds']} rounds "
                      f"({log['candidates_per_second']:,.0f}/s); accuracy predictor (estimate) out-of-fold on "
                      f"{p['samples']} measured trials: Spearman {p['oof_spearman']:.3f}, MAE {p['oof_mae_points']:.2f} points")
    if "joint_dominates_sequential" in summary:
        console.print(f"joint front dominates sequential front: {summary['joint_dominates_sequential']}")
    m = design["metrics"]
    console.print("chosen design: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items() if k in
                                                ("accuracy", "latency_ms", "energy_mj", "area_mm2", "size_kb")))
    console.print(f"test accuracy: fake-quant {design['accuracy_test_fake_quant']:.4f}, "
                  f"model.qdq.onnx (onnxruntime) {design['accuracy_test_qdq_onnxruntime']:.4f}")
    console.print(f"artifacts in {out}: pareto.csv, pareto.json, model.onnx, model.qdq.onnx, "
                  + ("accelerator.toml, " if "accelerator" in design else "") + "model_tvm.so, report.html, report_data.json"
                  + (", study.db" if (out / "study.db").exists() else ""))
