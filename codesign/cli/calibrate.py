"""`codesign calibrate`: fit a target to measured latencies and write a new target file."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from codesign.cli.common import TARGET_HELP
from codesign.files import write_text


def calibrate(
    target: Annotated[str, typer.Option("--target", "-t", help=f"the target to start from: {TARGET_HELP}")],
    measurements: Annotated[Path, typer.Option("--measurements", "-m", help="CSV with columns model,latency_ms (paths relative to the CSV)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the calibrated target .toml")],
    name: Annotated[str, typer.Option("--name", help="name of the new target (default: <target>-calibrated)")] = "",
) -> None:
    """Fit a target's throughput, bandwidth and overheads to ~20 measured latencies."""
    import tomli_w

    from codesign.frontends.onnx_frontend import load_onnx
    from hwmodels.calibration import calibrate as fit, read_measurements
    from hwmodels.targets import load_target

    tgt = load_target(target)
    samples = read_measurements(measurements)
    workloads = [load_onnx(s.model) for s in samples]
    result = fit(tgt, workloads, [s.latency_ms for s in samples], source=str(measurements))
    data = result.target.model_dump(exclude_none=True)
    data["name"] = name or f"{tgt.name}-calibrated"
    write_text(out, f"# calibrated from {tgt.name} by `codesign calibrate`\n" + tomli_w.dumps(data), "--out")
    console = Console()
    console.print(f"fitted {len(result.params)} parameters on {len(samples)} samples; "
                  f"median abs error {result.fit_error_pct:.1f}% -> {out}")
    for k, v in result.params.items():
        console.print(f"  {k} = {v:.4g}")
