"""`codesign analyze MODEL.onnx --target T`: per-layer latency, energy and bounds."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from codesign.errors import CodesignError
from codesign.frontends.onnx_frontend import load_onnx, parse_input_shapes
from codesign.targets import load_target
from hwmodels.base import NetworkCost
from hwmodels.precision import parse_bits
from hwmodels.registry import get_cost_model, list_cost_models, resolve_name


def analyze(
    model: Path = typer.Argument(..., help="ONNX model file"),
    target: str = typer.Option("host", "--target", "-t", help="target name (see `codesign targets`) or path to a .toml"),
    cost_model: str = typer.Option("auto", "--cost-model", help=f"auto | {' | '.join(list_cost_models())}"),
    bits: Optional[str] = typer.Option(None, "--bits", help="uniform w8a8 / w4a8, or a per-layer .json/.toml map"),
    input_shape: Optional[list[str]] = typer.Option(None, "--input-shape", help="NAME=1x3x224x224 for dynamic inputs (repeatable)"),
    frontend: str = typer.Option("onnx", "--frontend", help="onnx (default) or tvm (import through TVM Relax)"),
    json_out: Optional[str] = typer.Option(None, "--json", help="write the result as JSON to PATH, or - for stdout"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write a roofline plot (PNG) with each layer as a point"),
    measure: bool = typer.Option(False, "--measure", help="also run the whole network with onnxruntime and print measured vs predicted"),
    top: int = typer.Option(20, "--top", help="layers shown in the table (slowest first); 0 = all"),
) -> None:
    """Estimate latency, energy and memory of MODEL on a target, layer by layer."""
    shapes = parse_input_shapes(input_shape)
    tgt = load_target(target)
    if frontend == "onnx":
        workload = load_onnx(model, shapes)
    elif frontend == "tvm":
        from codesign.frontends.tvm_frontend import load_onnx_via_tvm

        workload = load_onnx_via_tvm(model, shapes)
    else:
        raise CodesignError(f"--frontend {frontend!r}: use onnx or tvm")
    assignment = parse_bits(bits, [l.name for l in workload.layers()])
    name = resolve_name(cost_model, tgt)
    if name == "systolic" and tgt.systolic is None:
        raise CodesignError(f"--cost-model systolic needs a template target with a [systolic] table; {tgt.name!r} has none")
    result = get_cost_model(name).estimate(workload, tgt, assignment)
    payload = result.to_json()
    if measure:
        from hwmodels.ort_runner import measure_onnx_latency_ms

        if shapes:
            raise CodesignError("--measure runs the model as exported; it cannot yet feed --input-shape overrides (re-export with static shapes)")
        measured = measure_onnx_latency_ms(model)
        payload["measured_latency_ms"] = measured["median_ms"]
    if plot is not None:
        from codesign.report.roofline_plot import plot_roofline

        plot_roofline(result, tgt, plot)
    if json_out == "-":
        print(json.dumps(payload, indent=2))
        return
    if json_out:
        try:
            Path(json_out).write_text(json.dumps(payload, indent=2))
        except OSError as e:
            raise CodesignError(f"cannot write --json {json_out}: {e.strerror}") from None
    _print(result, payload, top)


def _print(result: NetworkCost, payload: dict, top: int) -> None:
    console = Console()
    layers = sorted(result.layers, key=lambda l: -l.latency_s)
    shown = layers if top <= 0 else layers[:top]
    table = Table(title=f"{result.model} on {result.target} ({result.cost_model})"
                        + ("" if top <= 0 or len(layers) <= top else f" — slowest {top} of {len(layers)} layers"))
    for col, just in (("layer", "left"), ("op", "left"), ("MMACs", "right"), ("weights KB", "right"),
                      ("acts KB", "right"), ("ms", "right"), ("mJ", "right"), ("bound", "left")):
        table.add_column(col, justify=just)
    for l in shown:
        table.add_row(l.name[:40], l.op, f"{l.macs / 1e6:.2f}", f"{l.weight_bytes / 1024:.1f}",
                      f"{l.act_bytes / 1024:.1f}", f"{l.latency_s * 1e3:.4f}", f"{l.energy_j * 1e3:.5f}", l.bound)
    console.print(table)
    console.print(f"latency [bold]{result.latency_s * 1e3:.3f} ms[/]   energy [bold]{result.energy_j * 1e3:.4f} mJ[/]   "
                  f"MACs {result.macs / 1e9:.4f} G   params {result.params / 1e6:.3f} M   "
                  f"peak memory {result.peak_memory_bytes / 2**20:.2f} MiB")
    if "measured_latency_ms" in payload:
        m = payload["measured_latency_ms"]
        console.print(f"measured (onnxruntime) {m:.3f} ms   predicted/measured {result.latency_s * 1e3 / m:.2f}x")
    if result.not_modelled:
        console.print(f"[yellow]not modelled (kept with bytes, zero MACs):[/] {', '.join(result.not_modelled)}")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
