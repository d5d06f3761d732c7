"""`codesign quantize MODEL.onnx --data DATA --target T --out DIR`: per-layer mixed precision for a
trained classifier, measured in onnxruntime and costed on the target."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from codesign.cli.common import OutDirOpt, TargetOpt


def quantize(
    model: Annotated[Path, typer.Argument(help="the trained float model (ONNX classifier: one input, (N, classes) output)")],
    data: Annotated[str, typer.Option("--data", help="an .npz with x (fed as stored) and integer labels y, or an image folder")],
    out: OutDirOpt,
    target: TargetOpt = "systolic",
    bits: Annotated[str, typer.Option("--bits", help="bit-width choices per layer, comma-separated")] = "2,4,8,16",
    max_accuracy_drop: Annotated[float, typer.Option("--max-accuracy-drop", help="allowed top-1 drop against the float model, a fraction (0.01 = one point)")] = 0.01,
    objective: Annotated[str, typer.Option("--objective", help="what to minimise: energy, latency or size")] = "energy",
    trials: Annotated[int, typer.Option("--trials", help="measured bit maps in the search (after the sensitivity pass)")] = 40,
    minutes: Annotated[float, typer.Option("--minutes", help="wall-clock budget for the whole run")] = 10.0,
    seed: Annotated[int, typer.Option("--seed", help="split and sampler seed")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="continue the study in DIR/study.db")] = False,
    layers: Annotated[Optional[str], typer.Option("--layers", help="only these layers (comma-separated node names); default every Conv/Gemm/MatMul with constant weights")] = None,
) -> None:
    """Choose per-layer weight/activation bits for a trained model: smallest cost within the accuracy drop."""
    from codesign.quantize.pipeline import QuantizeOptions, parse_choices, run

    opts = QuantizeOptions(model=model, data=data, target=target, out=out, bits=parse_choices(bits),
                           max_accuracy_drop=max_accuracy_drop, objective=objective, trials=trials, minutes=minutes,
                           seed=seed, resume=resume,
                           layers=[s.strip() for s in layers.split(",") if s.strip()] if layers else None)
    _with_progress(lambda tick: run(opts, tick), out)


def run_from_config(cfg, out: Path, resume: bool = False) -> None:
    """``codesign search CONFIG`` when the config has a ``[model]`` section: quantize that trained model."""
    from codesign.quantize.api import quantize_from_config

    _with_progress(lambda tick: quantize_from_config(cfg, out, resume=resume, progress=tick), out)


def _with_progress(work, out: Path) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True)
    tasks: dict[str, int] = {}

    def tick(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    with progress:
        summary = work(tick)
    _print(Console(), summary, out)


def _print(console: Console, s: dict, out: Path) -> None:
    b, c, f = s["baseline"], s["chosen"], s["float"]
    t = Table(title=f"{Path(s['model']).name} on {s['target']} ({s['cost_model']}), objective {s['objective']}")
    for col in ("design", "top-1", "energy mJ", "latency ms", "size KB"):
        t.add_column(col, justify="left" if col == "design" else "right")
    def num(v, d=4):
        return "n/a" if v is None else f"{v:.{d}g}"
    t.add_row("float", f"{s['float_accuracy']:.2%}", num(f.get("energy_mj")), num(f.get("latency_ms")), num(f.get("size_kb")))
    t.add_row(f"uniform {b['bits']}", f"{b['accuracy']:.2%}", num(b.get("energy_mj")), num(b.get("latency_ms")), num(b.get("size_kb")))
    t.add_row(f"chosen ({c['label']})", f"{c['accuracy_onnxruntime']:.2%}", num(c.get("energy_mj")), num(c.get("latency_ms")),
              num(c.get("size_kb")))
    console.print(t)
    ratios = ", ".join(f"{k.removesuffix('_ratio')} {v:.2f}x" for k, v in s["vs_baseline"].items() if v)
    console.print(f"vs uniform {b['bits']}: {ratios}; top-1 drop {c['accuracy_drop']:.2%} "
                  f"(allowed {s['max_accuracy_drop']:.2%}); {s['measured_bit_maps']} bit maps measured in {s['seconds']:.0f} s")
    for n in s["notes"]:
        console.print(f"[yellow]note:[/] {n}")
    console.print(f"wrote {out}/model.qdq.onnx, bits.json, pareto.csv, pareto.json, report.html"
                  + (", accelerator.toml" if s.get("accelerator") else ""))
