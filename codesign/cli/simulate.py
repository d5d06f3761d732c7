"""``codesign simulate``: SCALE-Sim's per-layer COMPUTE_REPORT, analytically, in milliseconds."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from codesign.cli.common import TARGET_HELP, Dataflow, InputShapeOpt, JsonOpt, emit_json
from hwmodels.errors import CodesignError


def load_layers(model_or_topology: Path, input_shape: list[str] | None = None):
    """ONNX model -> its conv/matmul layers; anything else is read as a SCALE-Sim topology CSV."""
    from hwmodels.scalesim_io import read_topology
    from hwmodels.systolic import layers_from_workload

    if not model_or_topology.exists():
        raise CodesignError(f"model/topology file not found: {model_or_topology}")
    if model_or_topology.suffix.lower() == ".onnx":
        from codesign.frontends.onnx_frontend import load_onnx, parse_input_shapes

        workload = load_onnx(model_or_topology, parse_input_shapes(input_shape))
        layers = layers_from_workload(workload)
        layers.notes[:0] = workload.notes    # e.g. "weights not read: ..." for a shape-only model
        return layers
    return read_topology(model_or_topology)


def resolve_configs(target: str | None, config: Path | None, dataflow: Dataflow | None = None):
    """(ArrayConfigs of one config, clock MHz or None, description) from --target or --config."""
    from hwmodels.scalesim_io import read_cfg
    from hwmodels.systolic import config_from_systolic

    if (target is None) == (config is None):
        raise CodesignError("give exactly one of --target NAME_OR_TOML (a systolic template) or --config SCALESIM.cfg")
    if config is not None:
        if not config.is_file():
            raise CodesignError(f"config file not found: {config}")
        sc = read_cfg(config)
        if dataflow:
            sc.dataflow = dataflow.value
        mode = "USER" if sc.user_bandwidth else "CALC"
        configs = sc.to_configs()
        configs.check_fold_fits()
        return configs, None, f"{config} ({sc.rows}x{sc.cols} {sc.dataflow}, InterfaceBandwidth {mode})"
    from hwmodels.targets import load_target

    t = load_target(target)
    if t.systolic is None:
        raise CodesignError(f"target {t.name} is not a systolic template; use --target systolic or a .toml with [systolic]")
    cfg = t.systolic.default
    if dataflow:
        cfg = cfg.model_copy(update={"dataflow": dataflow.value})
    desc = f"{t.name} ({cfg.rows}x{cfg.cols} {cfg.dataflow}, {cfg.dram_bandwidth_words:g} words/cycle DRAM)"
    configs = config_from_systolic(cfg)
    configs.check_fold_fits()
    return configs, cfg.clock_mhz, desc


def simulate(
    model_or_topology: Annotated[Path, typer.Argument(help="ONNX model or SCALE-Sim topology CSV (conv or GEMM form)")],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help=f"a systolic template: {TARGET_HELP}")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="SCALE-Sim .cfg file")] = None,
    json_path: JsonOpt = None,
    dataflow: Annotated[Optional[Dataflow], typer.Option("--dataflow", help="override the dataflow")] = None,
    input_shape: InputShapeOpt = None,
) -> None:
    """Per-layer cycles, utilization and SRAM/DRAM traffic of a systolic array (SCALE-Sim's COMPUTE_REPORT)."""
    from hwmodels.systolic import STALL_NOTE, simulate as run_model

    layers = load_layers(model_or_topology, input_shape)
    configs, clock_mhz, desc = resolve_configs(target, config, dataflow)
    t0 = time.perf_counter()
    res = run_model(layers, configs)
    elapsed = time.perf_counter() - t0
    rows = res.layer_dicts(0)
    report = {"layers": rows, "total_cycles": int(res.total_cycles[0].sum()),
              "total_cycles_incl_prefetch": int(res.total_cycles_incl_prefetch[0].sum()),
              "config": configs.describe(0), "source": str(model_or_topology), "notes": list(layers.notes)}
    if clock_mhz:
        report["latency_ms"] = report["total_cycles"] / (clock_mhz * 1e3)
    if configs.user_bw[0]:
        report["notes"].append(STALL_NOTE)
    if emit_json(report, json_path):
        return
    console = Console()
    table = Table(title=f"{model_or_topology.name} on {desc}")
    for col in ("layer", "cycles (incl. prefetch)", "cycles", "stalls", "overall util %", "mapping eff %",
                "compute util %", "SRAM rd", "SRAM wr", "DRAM rd", "DRAM wr"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for r in rows:
        table.add_row(r["name"], f"{r['total_cycles_incl_prefetch']:,}", f"{r['total_cycles']:,}", f"{r['stall_cycles']:,}",
                      f"{r['overall_util_pct']:.2f}", f"{r['mapping_efficiency_pct']:.2f}", f"{r['compute_util_pct']:.2f}",
                      f"{r['sram_reads']:,}", f"{r['sram_writes']:,}", f"{r['dram_reads']:,}", f"{r['dram_writes']:,}")
    console.print(table)
    line = f"total cycles {report['total_cycles']:,}"
    if clock_mhz:
        line += f" = {report['latency_ms']:.3f} ms at {clock_mhz:g} MHz"
    console.print(f"{line}; {len(rows)} layers modelled in {elapsed * 1e3:.2f} ms")
    for note in report["notes"]:
        console.print(f"[dim]note: {note}[/dim]")
    if json_path:
        console.print(f"JSON written to {json_path}")
