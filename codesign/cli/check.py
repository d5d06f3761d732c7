"""`codesign check`: a CI gate for export pipelines.

Exit 0 when the model's predicted cost is within every given budget, 1 when over budget
(printing which layers dominate), 2 on bad input.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from codesign.cli.common import TARGET_HELP, BitsOpt, CostModelOpt, InputShapeOpt, JsonOpt, emit_json
from hwmodels.errors import CodesignError


def check(
    model: Annotated[Path, typer.Argument(help="ONNX model file")],
    target: Annotated[str, typer.Option("--target", "-t", help=TARGET_HELP)],
    max_latency_ms: Annotated[Optional[float], typer.Option("--max-latency-ms", help="latency budget")] = None,
    max_energy_mj: Annotated[Optional[float], typer.Option("--max-energy-mj", help="energy budget per inference")] = None,
    max_peak_memory_kb: Annotated[Optional[float], typer.Option("--max-peak-memory-kb", help="weights + peak activations")] = None,
    bits: BitsOpt = None,
    cost_model: CostModelOpt = "auto",
    input_shape: InputShapeOpt = None,
    json_out: JsonOpt = None,
    top: Annotated[int, typer.Option("--top", help="dominant layers listed when over budget")] = 5,
) -> None:
    """Exit 0 if MODEL meets every budget on TARGET, 1 if not, 2 on bad input."""
    from codesign.frontends.onnx_frontend import load_onnx, parse_input_shapes
    from codesign.frontends.qdq_reader import bits_json, costing_bits
    from hwmodels.registry import get_cost_model, resolve_name
    from hwmodels.targets import load_target

    budgets = {"latency_ms": max_latency_ms, "energy_mj": max_energy_mj, "peak_memory_kb": max_peak_memory_kb}
    if all(v is None for v in budgets.values()):
        raise CodesignError("give at least one budget: --max-latency-ms, --max-energy-mj or --max-peak-memory-kb")
    for name, v in budgets.items():
        if v is not None and v <= 0:
            raise CodesignError(f"--max-{name.replace('_', '-')} must be > 0, got {v}")
    tgt = load_target(target)
    workload = load_onnx(model, parse_input_shapes(input_shape))
    name = resolve_name(cost_model, tgt)
    assignment, bits_source, bits_notes = costing_bits(bits, workload)   # a QDQ model's own bits unless --bits
    cost = get_cost_model(name).estimate(workload, tgt, assignment)
    if max_energy_mj is not None and cost.energy_j is None:
        raise CodesignError(f"cost model {name!r} does not estimate energy; drop --max-energy-mj or choose another --cost-model")
    actual = {"latency_ms": cost.latency_s * 1e3, "energy_mj": None if cost.energy_j is None else cost.energy_j * 1e3,
              "peak_memory_kb": cost.peak_memory_bytes / 1024}
    over = {k: (actual[k], v) for k, v in budgets.items() if v is not None and actual[k] > v}
    verdict = {"model": str(model), "target": tgt.name, "cost_model": name, "pass": not over,
               "actual": actual, "budgets": {k: v for k, v in budgets.items() if v is not None},
               "over_budget": sorted(over)}
    verdict["dominant_layers"] = _dominant(cost, over, top)
    verdict["weights_read"] = workload.weights_read
    verdict["notes"] = list(workload.notes) + bits_notes
    verdict["bits"] = bits_json(assignment, bits_source, workload)
    if tgt.validation is not None:         # a gate should know when the estimate is extrapolated
        verdict["range_note"] = tgt.validation.outside(workload.macs, workload.weight_bytes)
    if not emit_json(verdict, json_out):
        _print(verdict, over)
    if over:
        raise typer.Exit(1)


def _dominant(cost, over: dict, top: int) -> list[dict]:
    key = "energy_j" if "energy_mj" in over and "latency_ms" not in over else "latency_s"
    value = lambda l: getattr(l, key) or 0.0
    total = sum(value(l) for l in cost.layers) or 1.0
    ranked = sorted(cost.layers, key=lambda l: -value(l))[:top]
    return [{"name": l.name, "op": l.op, "share_pct": 100 * value(l) / total, "bound": l.bound,
             "latency_ms": l.latency_s * 1e3, "energy_mj": None if l.energy_j is None else l.energy_j * 1e3}
            for l in ranked]


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
    if verdict.get("range_note"):
        console.print(f"[yellow]note:[/] {verdict['range_note']}")
    for note in verdict["notes"]:
        console.print(f"[yellow]note:[/] {note}")
