"""Roofline fidelity on the `host` target against onnxruntime on this machine.

For N random CNNs (benchmarks/netgen.py, seeded): onnxruntime latency (1 intra-op thread,
fastest run over interleaved rounds), the roofline's zero-shot prediction, and MACs alone; Spearman rank
correlation of each with the measurement.  Then `host` is calibrated on the first
`--train` networks (a seeded random split) and tested on the rest: Spearman and median absolute % error.

    python benchmarks/bench_roofline.py [--n 36] [--train 20] [--seed 7]
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).parent))
import netgen  # noqa: E402

from codesign.frontends.onnx_frontend import load_onnx  # noqa: E402
from hwmodels.targets import load_target  # noqa: E402
from hwmodels.calibration import calibrate  # noqa: E402
from hwmodels.ort_runner import measure_onnx_latency_ms  # noqa: E402
from hwmodels.roofline import RooflineModel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=36)
    ap.add_argument("--train", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="benchmarks/out/roofline")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    out = Path(args.out)
    paths = netgen.generate(args.n, args.seed, out)
    host = load_target("host")
    model = RooflineModel()
    workloads = [load_onnx(p) for p in paths]
    # interleaved rounds, fastest run kept: machine load that drifts during the run hits every
    # network alike instead of whichever were measured last
    fastest = [float("inf")] * len(paths)
    for r in range(args.rounds):
        for i, p in enumerate(paths):
            m = measure_onnx_latency_ms(p, threads=1, repeats=10, warmup=2, min_time_s=0.05)
            fastest[i] = min(fastest[i], m["min_ms"])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    rows = [(p, wl, meas, model.estimate(wl, host).latency_s * 1e3) for p, wl, meas in zip(paths, workloads, fastest)]
    order = np.random.default_rng(args.seed).permutation(len(rows))     # random train/test split
    rows = [rows[i] for i in order]
    (out / "measurements.csv").write_text("model,latency_ms\n" + "".join(f"{p.name},{m:.6f}\n" for p, _, m, _ in rows))
    meas = np.array([r[2] for r in rows])
    pred = np.array([r[3] for r in rows])
    macs = np.array([r[1].macs for r in rows], float)
    rho_pred = spearmanr(pred, meas).statistic
    rho_macs = spearmanr(macs, meas).statistic
    zero_err = np.median(np.abs(pred - meas) / meas) * 100
    tr, te = slice(0, args.train), slice(args.train, None)
    cal = calibrate(host, [r[1] for r in rows[tr]], meas[tr].tolist(), source=str(out / "measurements.csv"),
                    cost_model="roofline")   # this benchmark is about the roofline, whatever model host.toml names
    test_pred = np.array([model.estimate(r[1], cal.target).latency_s * 1e3 for r in rows[te]])
    rho_cal = spearmanr(test_pred, meas[te]).statistic
    rho_macs_te = spearmanr(macs[te], meas[te]).statistic
    err_cal = np.abs(test_pred - meas[te]) / meas[te] * 100
    print(f"\n`python benchmarks/bench_roofline.py --n {args.n} --train {args.train} --seed {args.seed} "
          f"--rounds {args.rounds}` — {dt.date.today()}\n")
    print("| | Spearman vs measured | median abs error |")
    print("|---|---|---|")
    print(f"| MACs alone, all {len(rows)} nets | {rho_macs:.3f} | — |")
    print(f"| roofline zero-shot (`host`), all {len(rows)} nets | {rho_pred:.3f} | {zero_err:.1f}% |")
    print(f"| MACs alone, {len(test_pred)} held-out nets | {rho_macs_te:.3f} | — |")
    print(f"| roofline calibrated on {args.train}, {len(test_pred)} held-out nets | {rho_cal:.3f} | {np.median(err_cal):.1f}% |")
    print(f"\ncalibration fit error (train) {cal.fit_error_pct:.1f}%; within ±10% on held-out: "
          f"{(err_cal <= 10).mean() * 100:.0f}%; params: " + ", ".join(f"{k}={v:.3g}" for k, v in cal.params.items()))


if __name__ == "__main__":
    main()
