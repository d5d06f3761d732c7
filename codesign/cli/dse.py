"""``codesign dse``: sweep a systolic template's ranges for a model; Pareto front of latency, energy, area."""
from __future__ import annotations

import csv
import io
import json
import time
import tomllib
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from codesign.cli.common import TARGET_HELP, InputShapeOpt
from codesign.files import write_bytes, write_text
from hwmodels.errors import CodesignError
from hwmodels.targets import SystolicRanges

OBJECTIVES = ("latency_ms", "energy_mj", "area_mm2")
FIELDS = tuple(SystolicRanges.model_fields)


def load_ranges(target, ranges_path: Path | None):
    """The template's ranges, or those of a TOML ([systolic.ranges], [ranges] or top level)."""
    from pydantic import ValidationError

    from hwmodels.targets import SystolicRanges

    if ranges_path is None:
        return target.systolic.ranges
    try:
        data = tomllib.loads(ranges_path.read_text())
    except FileNotFoundError:
        raise CodesignError(f"ranges file not found: {ranges_path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise CodesignError(f"ranges file {ranges_path} is not valid TOML: {e}") from None
    table = data.get("systolic", {}).get("ranges") or data.get("ranges") or data
    merged = {**target.systolic.ranges.model_dump(), **table}
    try:
        return SystolicRanges.model_validate(merged)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise CodesignError(f"ranges file {ranges_path}: field '{loc}': {err['msg']}") from None


def pareto_mask(obj: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``obj`` [n, k] (all minimised)."""
    n = obj.shape[0]
    order = np.lexsort(obj.T[::-1])
    keep = np.zeros(n, dtype=bool)
    front: list[int] = []
    for i in order:
        if front:
            f = obj[front]
            if np.any(np.all(f <= obj[i], axis=1) & np.any(f < obj[i], axis=1)) or np.any(np.all(f == obj[i], axis=1)):
                continue
        front.append(i)
        keep[i] = True
    return keep


def sweep(layers, target, ranges, word_bits: int, chunk: int = 4096, progress=None):
    """Score every config of ``ranges`` on ``layers``; returns (configs, objectives [n, 3], cycles,
    number of configs skipped because an SRAM cannot hold one fold)."""
    from hwmodels.systolic import configs_from_grid, simulate
    from hwmodels.systolic_cost import network_costs

    configs = configs_from_grid(ranges.rows, ranges.cols, ranges.ifmap_sram_kb, ranges.filter_sram_kb,
                                ranges.ofmap_sram_kb, ranges.dataflow, [int(round(b)) for b in ranges.dram_bandwidth_words],
                                word_bits=(word_bits,))
    fits = configs.fold_fits()
    if not fits.any():
        raise CodesignError("no configuration in the ranges has SRAMs large enough for one fold of its array; "
                            "raise the *_sram_kb ranges or lower rows/cols")
    configs = _slice(configs, fits)
    n = len(configs)
    clock = target.systolic.default.clock_mhz
    obj = np.empty((n, 3))
    cycles = np.empty(n, dtype=np.int64)
    task = progress.add_task("configs", total=n) if progress else None
    for s in range(0, n, chunk):
        sub = _slice(configs, slice(s, min(n, s + chunk)))
        c = network_costs(simulate(layers, sub), target, clock_mhz=clock)
        obj[s:s + len(sub)] = np.stack([c["latency_s"] * 1e3, c["energy_j"] * 1e3, c["area_mm2"]], axis=1)
        cycles[s:s + len(sub)] = c["cycles"]
        if progress:
            progress.update(task, advance=len(sub))
    return configs, obj, cycles, int((~fits).sum())


def _slice(configs, index):
    from dataclasses import fields

    from hwmodels.systolic import ArrayConfigs

    return ArrayConfigs(**{f.name: getattr(configs, f.name)[index] for f in fields(ArrayConfigs)})


def dse(
    model: Annotated[Path, typer.Argument(help="ONNX model (or a SCALE-Sim topology CSV)")],
    template: Annotated[str, typer.Option("--template", "--target", "-t", help=f"a systolic template: {TARGET_HELP}")] = "systolic",
    ranges: Annotated[Optional[Path], typer.Option("--ranges", help="TOML with [systolic.ranges] overriding the template's")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory for pareto.csv/json/png")] = Path("dse_out"),
    word_bits: Annotated[Optional[int], typer.Option("--word-bits", help="operand width in bits (default: template's)")] = None,
    input_shape: InputShapeOpt = None,
    top: Annotated[int, typer.Option("--top", help="Pareto rows to print")] = 15,
    html_out: Annotated[Optional[Path], typer.Option("--html", help="also write a self-contained HTML report of the sweep (front plots and table) to this path")] = None,
) -> None:
    """Sweep a systolic template's ranges: latency, energy, area per config; Pareto front as CSV/JSON/plot."""
    from codesign.cli.simulate import load_layers
    from hwmodels.targets import load_target

    t = load_target(template)
    if t.systolic is None:
        raise CodesignError(f"target {t.name} is not a systolic template (no [systolic] table); use --template systolic")
    rng = load_ranges(t, ranges)
    bits = word_bits or t.systolic.default.word_bits
    layers = load_layers(model, input_shape)
    console = Console(stderr=True)
    t0 = time.perf_counter()
    with Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        configs, obj, cycles, skipped = sweep(layers, t, rng, bits, progress=progress)
    elapsed = time.perf_counter() - t0
    mask = pareto_mask(obj)
    idx = np.nonzero(mask)[0]
    idx = idx[np.argsort(obj[idx, 0])]
    rows = []
    for i in idx:
        d = configs.describe(int(i))
        rows.append({**{k: d[k] for k in FIELDS}, "word_bits": bits, "cycles": int(cycles[i]),
                     **{k: float(v) for k, v in zip(OBJECTIVES, obj[i])}})
    table_csv = io.StringIO()
    w = csv.DictWriter(table_csv, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_text(out / "pareto.csv", table_csv.getvalue(), "--out")
    summary = {"model": str(model), "template": t.name, "configs": len(configs), "skipped_sram_too_small": skipped,
               "layers": len(layers),
               "seconds": elapsed, "layer_configs_per_s": len(configs) * len(layers) / max(elapsed, 1e-9),
               "objectives": list(OBJECTIVES), "notes": list(getattr(layers, "notes", [])), "pareto": rows}
    write_text(out / "pareto.json", json.dumps(summary, indent=2) + "\n", "--out")
    _plot(obj, mask, out / "pareto.png", f"{model.name} on {t.name}: {len(configs):,} configs")
    if html_out is not None:
        from codesign.report.model_report import write_dse_report

        write_dse_report(html_out, summary, obj, mask, f"{model.name} on {t.name}: {len(configs):,} configs")
    c = Console()
    table = Table(title=f"Pareto front ({len(rows)} of {len(configs):,} configs)")
    for col in ("rows", "cols", "dataflow", "ifmap KB", "filter KB", "ofmap KB", "BW", "latency ms", "energy mJ", "area mm2"):
        table.add_column(col, justify="right")
    for r in rows[:top]:
        table.add_row(str(r["rows"]), str(r["cols"]), r["dataflow"], f"{r['ifmap_sram_kb']:g}", f"{r['filter_sram_kb']:g}",
                      f"{r['ofmap_sram_kb']:g}", str(r["dram_bandwidth_words"]), f"{r['latency_ms']:.4f}",
                      f"{r['energy_mj']:.4f}", f"{r['area_mm2']:.3f}")
    c.print(table)
    if skipped:
        c.print(f"skipped {skipped:,} configs whose SRAMs cannot hold one fold of their array")
    for note in summary["notes"]:
        c.print(f"[yellow]note:[/] {note}")
    c.print(f"{len(configs):,} configs x {len(layers)} layers in {elapsed:.2f} s "
            f"({summary['layer_configs_per_s']:,.0f} layer-configs/s); wrote {out}/pareto.csv, pareto.json, pareto.png")


def _plot(obj: np.ndarray, mask: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    sc = ax.scatter(obj[~mask, 0], obj[~mask, 1], c=obj[~mask, 2], s=4, alpha=0.3, cmap="viridis")
    ax.scatter(obj[mask, 0], obj[mask, 1], c=obj[mask, 2], s=30, edgecolors="red", cmap="viridis", label="Pareto front")
    fig.colorbar(sc, ax=ax, label="area mm$^2$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("energy (mJ)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_bytes(path, buf.getvalue(), "--out")
