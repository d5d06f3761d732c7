"""`codesign check`: a CI gate for export pipelines.

Exit 0 when the model's predicted cost is within every given budget, 1 when over budget
(printing which layers dominate), 2 on bad input.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from codesign.errors import CodesignError
from codesign.frontends.onnx_frontend import load_onnx, parse_input_shapes
from codesign.targets import load_target
from hwmodels.precision import parse_bits
from hwmodels.registry import get_cost_model, resolve_name


def check(
    model: Path = typer.Argument(..., help="ONNX model file"),
    target: str = typer.Option(..., "--target", "-t", help="target name or .toml path"),
    max_latency_ms: Optional[float] = typer.Option(None, "--max-latency-ms"),
    max_energy_mj: Optional[float] = typer.Option(None, "--max-energy-mj"),
    max_peak_memory_kb: Optional[float] = typer.Option(None, "--max-peak-memory-kb"),
    bits: Optional[str] = typer.Option(None, "--bits", help="w8a8 or a per-layer map"),
    cost_model: str = typer.Option("auto", "--cost-model"),
    input_shape: Optional[list[str]] = typer.Option(None, "--input-shape"),
    json_out: Optional[str] = typer.Option(None, "--json", help="write the verdict as JSON to PATH or -"),
    top: int = typer.Option(5, "--top", help="dominant layers listed when over budget"),
) -> None:
    """Exit 0 if MODEL meets every budget on TARGET, 1 if not, 2 on bad input."""
    budgets = {"latency_ms": max_latency_ms, "energy_mj": max_energy_mj, "peak_memory_kb": max_peak_memory_kb}
    if all(v is None for v in budgets.values()):
        raise CodesignError("give at least one budget: --max-latency-ms, --max-energy-mj or --max-peak-memory-kb")
    for name, v in budgets.items():
        if v is not None and v <= 0:
            raise CodesignError(f"--max-{name.replace('_', '-')} must be > 0, got {v}")
    tgt = load_target(target)
    workload = load_onnx(model, parse_input_shapes(input_shape))
    name = resolve_name(cost_model, tgt)
    cost = get_cost_model(name).estimate(workload, tgt, parse_bits(bits, [l.name for l in workload.layers()]))
    actual = {"latency_ms": cost.latency_s * 1e3, "energy_mj": cost.energy_j * 1e3,
              "peak_memory_kb": cost.peak_memory_bytes / 1024}
    over = {k: (actual[k], v) for k, v in budgets.items() if v is not None and actual[k] > v}
    verdict = {"model": str(model), "target": tgt.name, "cost_model": name, "pass": not over,
               "actual": actual, "budgets": {k: v for k, v in budgets.items() if v is not None},
               "over_budget": sorted(over)}
    dominant = _dominant(cost, over, top)
    verdict["dominant_layers"] = dominant
    if json_out == "-":
        print(json.dumps(verdict, indent=2))
    else:
        if json_out:
            Path(json_out).write_text(json.dumps(verdict, indent=2))
        _print(verdict, over)
    if over:
        raise typer.Exit(1)


def _dominant(cost, over: dict, top: int) -> list[dict]:
    key = "energy_j" if "energy_mj" in over and "latency_ms" not in over else "latency_s"
    total = sum(getattr(l, key) for l in cost.layers) or 1.0
    ranked = sorted(cost.layers, key=lambda l: -getattr(l, key))[:top]
    return [{"name": l.name, "op": l.op, "share_pct": 100 * getattr(l, key) / total, "bound": l.bound,
             "latency_ms": l.latency_s * 1e3, "energy_mj": l.energy_j * 1e3} for l in ranked]


def _print(verdict: dict, over: dict) -> None:
    console = Console()
    units = {"latency_ms": "ms", "energy_mj": "mJ", "peak_memory_kb": "KB"}
    for k, limit in verdict["budgets"].items():
        a = verdict["actual"][k]
        mark = "[red]OVER[/]" if k in over else "[green]ok[/]"
        console.print(f"{mark} {k.replace('_', ' ')}: {a:.4g} {units[k]} (budget {limit:g} {units[k]})")
    if over:
        console.print("dominant layers:")
        for l in verdict["dominant_layers"]:
            console.print(f"  {l['name']} ({l['op']}): {l['share_pct']:.1f}%, bound by {l['bound']}")
    else:
        console.print(f"[green]PASS[/] {verdict['model']} on {verdict['target']}")
