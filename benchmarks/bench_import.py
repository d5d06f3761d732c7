"""Import + analyze time for each ONNX "light" model the onnx wheel ships (median of 5).

    python benchmarks/bench_import.py [--repeats 5] [--target host]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import onnx

from codesign.frontends.onnx_frontend import load_onnx
from hwmodels.targets import load_target
from hwmodels.roofline import RooflineModel

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--target", default="host")
    args = ap.parse_args()
    target = load_target(args.target)
    model = RooflineModel()
    print(f"| model | layers | GMACs | import ms (median of {args.repeats}) | analyze ms | total ms |")
    print("|---|---|---|---|---|---|")
    for path in sorted(LIGHT.glob("*.onnx")):
        imp, ana = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            wl = load_onnx(path)
            t1 = time.perf_counter()
            model.estimate(wl, target)
            t2 = time.perf_counter()
            imp.append(t1 - t0)
            ana.append(t2 - t1)
        mi, ma = statistics.median(imp) * 1e3, statistics.median(ana) * 1e3
        print(f"| {path.stem.removeprefix('light_')} | {len(wl)} | {wl.macs / 1e9:.3f} | {mi:.1f} | {ma:.1f} | {mi + ma:.1f} |")


if __name__ == "__main__":
    main()
