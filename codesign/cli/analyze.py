"""`codesign analyze MODEL.onnx --target T`: per-layer latency, energy and bounds."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from codesign.cli.common import BitsOpt, CostModelOpt, Frontend, InputShapeOpt, JsonOpt, TargetOpt, emit_json
from hwmodels.base import NetworkCost
from hwmodels.errors import CodesignError


def analyze(
    model: Annotated[Path, typer.Argument(help="ONNX model file")],
    target: TargetOpt = "host",
    cost_model: CostModelOpt = "auto",
    bits: BitsOpt = None,
    input_shape: InputShapeOpt = None,
    frontend: Annotated[Frontend, typer.Option("--frontend", help="import through the ONNX frontend or TVM Relax")] = Frontend.onnx,
    json_out: JsonOpt = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="write a roofline plot (PNG) with each layer as a point")] = None,
    measure: Annotated[bool, typer.Option("--measure", help="also run the whole network with onnxruntime on this machine (1 thread; lowest quiet round of 5) and print measured vs predicted")] = False,
    top: Annotated[int, typer.Option("--top", help="layers shown in the table (slowest first); 0 = all")] = 20,
    html_out: Annotated[Optional[Path], typer.Option("--html", help="write a self-contained HTML report: per-layer table and bars, roofline")] = None,
) -> None:
    """Estimate latency, energy and memory of MODEL on a target, layer by layer."""
    from codesign.frontends.onnx_frontend import load_onnx, parse_input_shapes
    from codesign.frontends.qdq_reader import bits_json, costing_bits
    from hwmodels.registry import get_cost_model, resolve_name
    from hwmodels.targets import load_target

    shapes = parse_input_shapes(input_shape)
    tgt = load_target(target)
    if frontend is Frontend.onnx:
        workload = load_onnx(model, shapes)
    else:
        from codesign.frontends.tvm_frontend import load_onnx_via_tvm

        workload = load_onnx_via_tvm(model, shapes)
    assignment, bits_source, bits_notes = costing_bits(bits, workload)   # a QDQ model's own bits unless --bits
    name = resolve_name(cost_model, tgt)
    if name == "systolic" and tgt.systolic is None:
        raise CodesignError(f"--cost-model systolic needs a template target with a [systolic] table; {tgt.name!r} has none")
    result = get_cost_model(name).estimate(workload, tgt, assignment)
    result.notes[:0] = workload.notes + bits_notes    # e.g. "weights not read: ..." for a shape-only model
    payload = result.to_json()
    payload["weights_read"] = workload.weights_read
    payload["bits"] = bits_json(assignment, bits_source, workload)
    stated = tgt.validation.stated_error(name) if tgt.validation is not None else ""
    beyond = ""
    if tgt.validation is not None:
        payload["validation"] = {"median_error_pct": tgt.validation.median_error_pct,
                                 "p90_error_pct": tgt.validation.p90_error_pct, "spearman": tgt.validation.spearman,
                                 "networks": tgt.validation.networks, "cost_model": tgt.validation.cost_model,
                                 "data": tgt.validation.data}
        beyond = tgt.validation.outside(workload.macs, workload.weight_bytes)
        payload["validation"]["in_range"] = not beyond
        if beyond:
            payload["validation"]["range_note"] = beyond
    if measure:
        payload["measured_latency_ms"] = _measure(model, workload, bool(shapes) or not workload.weights_read)
    if plot is not None:
        from codesign.report.roofline_plot import plot_roofline

        plot_roofline(result, tgt, plot)
    if html_out is not None:
        from codesign.report.model_report import write_model_report

        write_model_report(html_out, result, tgt, assignment, payload.get("validation"))
    if emit_json(payload, json_out):
        return
    _print(result, payload, top, stated, beyond)


def _measure(model: Path, workload, reshaped: bool) -> float:
    """The network run in onnxruntime on this machine: the lowest quiet round of 5 (fastest quarter of
    each round's runs, the estimator the measured cost model is judged by).  With --input-shape the
    network is rebuilt at those shapes from its Workload (constant weights: fp32 kernel times do not
    depend on them) and that is run; so is a model whose weights were not read."""
    from hwmodels.measured import MeasuredModel
    from hwmodels.ort_runner import measure_onnx_latency_ms
    from hwmodels.quiet import QuietGate

    if not reshaped:
        return measure_onnx_latency_ms(model, repeats=20, warmup=5, min_time_s=0.1, rounds=5, gate=QuietGate())["fast_ms"]
    us, _ = MeasuredModel(rounds=5).measure_latency_us(workload, 1)
    return us / 1e3


def _print(result: NetworkCost, payload: dict, top: int, stated: str = "", beyond: str = "") -> None:
    console = Console()
    layers = sorted(result.layers, key=lambda l: -l.latency_s)
    shown = layers if top <= 0 else layers[:top]
    table = Table(title=f"{result.model} on {result.target} ({result.cost_model})"
                        + ("" if top <= 0 or len(layers) <= top else f" — slowest {top} of {len(layers)} layers"))
    bits = payload.get("bits", {}).get("layers")      # the widths each layer ran at, when known
    for col, just in (("layer", "left"), ("op", "left"), *((("bits", "left"),) if bits else ()), ("MMACs", "right"),
                      ("weights KB", "right"), ("acts KB", "right"), ("ms", "right"), ("mJ", "right"), ("bound", "left")):
        table.add_column(col, justify=just)
    for l in shown:
        b = bits.get(l.name) if bits else None
        label = ([f"w{b['weight']}a{b['activation']}" if b else ""] if bits else [])
        table.add_row(l.name[:40], l.op, *label, f"{l.macs / 1e6:.2f}", f"{l.weight_bytes / 1024:.1f}",
                      f"{l.act_bytes / 1024:.1f}", f"{l.latency_s * 1e3:.4f}", _mj(l.energy_j, 5), l.bound)
    console.print(table)
    console.print(f"latency [bold]{result.latency_s * 1e3:.3f} ms[/]   energy [bold]{_mj(result.energy_j, 4)} mJ[/]   "
                  f"MACs {result.macs / 1e9:.4f} G   params {result.params / 1e6:.3f} M   "
                  f"peak memory {result.peak_memory_bytes / 2**20:.2f} MiB")
    if stated:
        console.print(f"  ({stated})")
    if beyond:
        console.print(f"  [yellow]{beyond}[/]")
    if "measured_latency_ms" in payload:
        m = payload["measured_latency_ms"]
        console.print(f"measured (onnxruntime) {m:.3f} ms   predicted/measured {result.latency_s * 1e3 / m:.2f}x")
    if result.not_modelled:
        console.print(f"[yellow]not modelled (kept with bytes, zero MACs):[/] {', '.join(result.not_modelled)}")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")


def _mj(energy_j: float | None, digits: int) -> str:
    return "n/a" if energy_j is None else f"{energy_j * 1e3:.{digits}f}"
