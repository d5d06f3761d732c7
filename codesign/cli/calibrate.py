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
    held_out: Annotated[int, typer.Option("--held-out", help="measurements (a seeded random pick) kept out of the fit "
                                          "and used for the new file's [validation] table")] = 0,
    prior: Annotated[float, typer.Option("--prior", help="weight of the pull toward the starting target's figures")] = 0.05,
) -> None:
    """Fit a target's free parameters (which ones follow from its cost model) to ~20 measured latencies."""
    import tomli_w

    from codesign.frontends.onnx_frontend import load_onnx
    from hwmodels.calibration import calibrate as fit, read_measurements
    from hwmodels.targets import load_target

    import numpy as np

    from hwmodels.calibration import held_out_validation
    from hwmodels.errors import CodesignError

    tgt = load_target(target)
    samples = read_measurements(measurements)
    workloads = [load_onnx(s.model) for s in samples]
    latencies = [s.latency_ms for s in samples]
    if held_out < 0 or held_out >= len(samples):
        raise CodesignError(f"--held-out {held_out}: keep between 0 and {len(samples) - 1} of the {len(samples)} measurements out of the fit")
    order = np.random.default_rng(0).permutation(len(samples))
    test, train = order[:held_out], order[held_out:]
    result = fit(tgt, [workloads[i] for i in train], [latencies[i] for i in train], source=str(measurements), prior_weight=prior)
    data = result.target.model_dump(exclude_none=True)
    if held_out:
        data["validation"] = held_out_validation(result.target, [workloads[i] for i in test], [latencies[i] for i in test],
                                                 str(measurements), len(train))
    data["name"] = name or f"{tgt.name}-calibrated"
    write_text(out, f"# calibrated from {tgt.name} by `codesign calibrate`\n" + tomli_w.dumps(data), "--out")
    console = Console()
    console.print(f"fitted {len(result.params)} parameters ({result.target.cost_model or 'roofline'} model) on "
                  f"{len(train)} samples; median abs error {result.fit_error_pct:.1f}% -> {out}")
    if held_out:
        v = data["validation"]
        console.print(f"held out {held_out}: Spearman {v['spearman']:.3f}, median error {v['median_error_pct']:.1f}%, "
                      f"p90 {v['p90_error_pct']:.1f}% (written as the file's [validation])")
    for k, v in result.params.items():
        console.print(f"  {k} = {v:.4g}")
