"""``codesign dse``: sweep an accelerator template's ranges for a model; Pareto front of latency, energy, area.

Any template kind (``hwmodels.template_kinds``: systolic, Bit Fusion) is swept the same way:
every configuration of its ranges scored on every layer in vectorised chunks, at each layer's
bits (one word width for a systolic array; Bit Fusion runs each layer at its own w/a).
"""
from __future__ import annotations

import csv
import io
import itertools
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

from codesign.cli.common import TARGET_HELP, BitsOpt, InputShapeOpt
from codesign.files import write_bytes, write_text
from hwmodels.errors import CodesignError
from hwmodels.targets import SystolicRanges

OBJECTIVES = ("latency_ms", "energy_mj", "area_mm2")
FIELDS = tuple(SystolicRanges.model_fields)      # the systolic template's (each kind has its own: kind.fields)


def load_ranges(target, ranges_path: Path | None):
    """The template's ranges, or those of a TOML ([<kind>.ranges], [ranges] or top level)."""
    from pydantic import ValidationError

    from hwmodels.template_kinds import kind_of

    kind = kind_of(target)
    base = kind.template(target).ranges
    if ranges_path is None:
        return base
    try:
        data = tomllib.loads(ranges_path.read_text())
    except FileNotFoundError:
        raise CodesignError(f"ranges file not found: {ranges_path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise CodesignError(f"ranges file {ranges_path} is not valid TOML: {e}") from None
    table = data.get(kind.name, {}).get("ranges") or data.get("ranges") or data
    merged = {**base.model_dump(), **table}
    try:
        return kind.ranges_model.model_validate(merged)
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


def _take_layers(layers, index):
    from dataclasses import fields

    from hwmodels.systolic import SystolicLayers

    index = list(index)
    cols = {f.name: getattr(layers, f.name)[index] for f in fields(SystolicLayers) if f.name not in ("names", "notes")}
    return SystolicLayers([layers.names[i] for i in index], **cols)


def score_layers(grid, layers, keys: list, target) -> tuple[np.ndarray, np.ndarray]:
    """Cycles and energy (pJ) [n_configs, n_layers] of every layer at its own bit key."""
    cycles = np.empty((len(grid), len(layers)))
    energy = np.empty((len(grid), len(layers)))
    for key in dict.fromkeys(keys):
        idx = [j for j, k in enumerate(keys) if k == key]
        c, e = grid.score(layers if len(idx) == len(layers) else _take_layers(layers, idx), key, target)
        cycles[:, idx], energy[:, idx] = c, e
    return cycles, energy


def sweep(layers, target, ranges, keys, chunk: int = 4096, progress=None):
    """Score every config of ``ranges`` on ``layers`` at one bit key per layer (``keys``, a list; any
    other value is one key for all); returns (config values, objectives [n, 3], cycles, number of configs
    skipped because an SRAM cannot feed the array)."""
    from hwmodels.template_kinds import kind_of

    kind = kind_of(target)
    keys = keys if isinstance(keys, list) else [keys] * len(layers)     # a list: one key per layer
    raw = dict(ranges) if isinstance(ranges, dict) else ranges.model_dump()
    combos = list(itertools.product(*(raw[f] for f in kind.fields)))
    if not combos:
        raise CodesignError("empty configuration grid: every range needs at least one value")
    values = {f: np.array([c[i] for c in combos]) for i, f in enumerate(kind.fields)}
    widest = kind.widest(keys)
    fits = kind.grid(values).fits(widest, target)
    if not fits.any():
        raise CodesignError("no configuration in the ranges has SRAMs large enough to feed its array; "
                            "raise the *_sram_kb ranges or lower rows/cols")
    values = {f: v[fits] for f, v in values.items()}
    n = int(fits.sum())
    hz = kind.clock_mhz(target) * 1e6
    obj = np.empty((n, 3))
    cycles = np.empty(n, dtype=np.int64)
    task = progress.add_task("configs", total=n) if progress else None
    for s in range(0, n, chunk):
        grid = kind.grid({f: v[s:s + chunk] for f, v in values.items()})
        c, e = score_layers(grid, layers, keys, target)
        total = c.sum(axis=1)
        latency = total / hz
        energy = e.sum(axis=1) * 1e-12 + target.energy.static_power_w * latency
        obj[s:s + len(grid)] = np.stack([latency * 1e3, energy * 1e3, grid.area(widest, target)], axis=1)
        cycles[s:s + len(grid)] = np.rint(total).astype(np.int64)
        if progress:
            progress.update(task, advance=len(grid))
    return values, obj, cycles, int((~fits).sum())


def dse(
    model: Annotated[Path, typer.Argument(help="ONNX model (or a SCALE-Sim topology CSV)")],
    template: Annotated[str, typer.Option("--template", "--target", "-t", help=f"an accelerator template (systolic, bitfusion): {TARGET_HELP}")] = "systolic",
    ranges: Annotated[Optional[Path], typer.Option("--ranges", help="TOML with [<template>.ranges] (e.g. [systolic.ranges]) overriding the template's")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory for pareto.csv/json/png")] = Path("dse_out"),
    word_bits: Annotated[Optional[int], typer.Option("--word-bits", help="operand width in bits for every layer (default: template's)")] = None,
    bits: BitsOpt = None,
    input_shape: InputShapeOpt = None,
    top: Annotated[int, typer.Option("--top", help="Pareto rows to print")] = 15,
    html_out: Annotated[Optional[Path], typer.Option("--html", help="also write a self-contained HTML report of the sweep (front plots and table) to this path")] = None,
) -> None:
    """Sweep a template's ranges: latency, energy, area per config; Pareto front as CSV/JSON/plot."""
    from codesign.cli.simulate import load_layers
    from hwmodels.bits import BitAssignment, LayerBits, check_bits, parse_bits
    from hwmodels.targets import load_target
    from hwmodels.template_kinds import kind_of

    t = load_target(template)
    kind = kind_of(t)
    if kind is None:
        raise CodesignError(f"target {t.name} is not an accelerator template (no [systolic] or [bitfusion] table); "
                            f"use --template systolic or --template bitfusion")
    if bits is not None and word_bits is not None:
        raise CodesignError("give --bits or --word-bits, not both")
    rng = load_ranges(t, ranges)
    layers = load_layers(model, input_shape)
    if bits is not None:
        assignment = parse_bits(bits, list(layers.names))
    elif word_bits is not None:
        wb = check_bits(word_bits, "--word-bits")
        assignment = BitAssignment(LayerBits(wb, wb))
    else:
        assignment = BitAssignment(kind.default_bits(t))
    bad = [b for n in layers.names for b in (assignment.for_layer(n).weight, assignment.for_layer(n).activation)
           if b not in kind.runnable_bits]
    if bad:
        raise CodesignError(f"--bits/--word-bits: the {kind.name} template runs {', '.join(map(str, kind.runnable_bits))}-bit "
                            f"operands, not {bad[0]}; give e.g. --bits w8a8")
    keys = [kind.key(assignment.for_layer(n)) for n in layers.names]
    console = Console(stderr=True)
    t0 = time.perf_counter()
    with Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        values, obj, cycles, skipped = sweep(layers, t, rng, keys, progress=progress)
    elapsed = time.perf_counter() - t0
    n_configs = len(cycles)
    mask = pareto_mask(obj)
    idx = np.nonzero(mask)[0]
    idx = idx[np.argsort(obj[idx, 0])]
    bits_cols = {"word_bits": kind.widest(keys)} if kind.name == "systolic" else {"bits": assignment.label}
    rows = []
    for i in idx:
        rows.append({**{k: _py(values[k][i]) for k in kind.fields}, **bits_cols, "cycles": int(cycles[i]),
                     **{k: float(v) for k, v in zip(OBJECTIVES, obj[i])}})
    table_csv = io.StringIO()
    w = csv.DictWriter(table_csv, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_text(out / "pareto.csv", table_csv.getvalue(), "--out")
    summary = {"model": str(model), "template": t.name, "template_kind": kind.name, "configs": n_configs,
               "skipped_sram_too_small": skipped, "layers": len(layers), "bits": assignment.label,
               "seconds": elapsed, "layer_configs_per_s": n_configs * len(layers) / max(elapsed, 1e-9),
               "objectives": list(OBJECTIVES), "notes": list(getattr(layers, "notes", [])), "pareto": rows}
    write_text(out / "pareto.json", json.dumps(summary, indent=2) + "\n", "--out")
    _plot(obj, mask, out / "pareto.png", f"{model.name} on {t.name}: {n_configs:,} configs")
    if html_out is not None:
        from codesign.report.model_report import write_dse_report

        write_dse_report(html_out, summary, obj, mask, f"{model.name} on {t.name}: {n_configs:,} configs")
    c = Console()
    table = Table(title=f"Pareto front ({len(rows)} of {n_configs:,} configs)")
    shown = [f for f in kind.fields]
    for col in (*shown, "latency ms", "energy mJ", "area mm2"):
        table.add_column(col.replace("_sram_kb", " KB"), justify="right")
    for r in rows[:top]:
        table.add_row(*[f"{r[f]:g}" if isinstance(r[f], float) else str(r[f]) for f in shown],
                      f"{r['latency_ms']:.4f}", f"{r['energy_mj']:.4f}", f"{r['area_mm2']:.3f}")
    c.print(table)
    if skipped:
        c.print(f"skipped {skipped:,} configs whose SRAMs cannot feed their array")
    for note in summary["notes"]:
        c.print(f"[yellow]note:[/] {note}")
    c.print(f"{n_configs:,} configs x {len(layers)} layers in {elapsed:.2f} s "
            f"({summary['layer_configs_per_s']:,.0f} layer-configs/s); wrote {out}/pareto.csv, pareto.json, pareto.png")


def _py(x):
    return x.item() if hasattr(x, "item") else x


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
