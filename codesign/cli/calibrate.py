"""`codesign calibrate`: fit a target to measured latencies and write a new target file."""
from __future__ import annotations

from pathlib import Path

import tomli_w
import typer
from rich.console import Console

from codesign.errors import CodesignError
from codesign.frontends.onnx_frontend import load_onnx
from codesign.targets import load_target
from hwmodels.calibration import calibrate as fit, read_measurements


def calibrate(
    target: str = typer.Option(..., "--target", "-t", help="target to start from (name or .toml)"),
    measurements: Path = typer.Option(..., "--measurements", "-m", help="CSV with columns model,latency_ms (paths relative to the CSV)"),
    out: Path = typer.Option(..., "--out", "-o", help="where to write the calibrated target .toml"),
    name: str = typer.Option("", "--name", help="name of the new target (default: <target>-calibrated)"),
) -> None:
    """Fit a target's throughput, bandwidth and overheads to ~20 measured latencies."""
    tgt = load_target(target)
    samples = read_measurements(measurements)
    workloads = [load_onnx(s.model) for s in samples]
    result = fit(tgt, workloads, [s.latency_ms for s in samples], source=str(measurements))
    data = result.target.model_dump(exclude_none=True)
    data["name"] = name or f"{tgt.name}-calibrated"
    try:
        out.write_text(f"# calibrated from {tgt.name} by `codesign calibrate`\n" + tomli_w.dumps(data))
    except OSError as e:
        raise CodesignError(f"cannot write --out {out}: {e.strerror}") from None
    console = Console()
    console.print(f"fitted {len(result.params)} parameters on {len(samples)} samples; "
                  f"median abs error {result.fit_error_pct:.1f}% -> {out}")
    for k, v in result.params.items():
        console.print(f"  {k} = {v:.4g}")
