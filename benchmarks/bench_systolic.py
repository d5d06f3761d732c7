"""Analytical systolic model vs the real SCALE-Sim, side by side, plus DSE throughput.

1. ResNet-18's conv/fc layers (224x224 input, padded ifmaps as SCALE-Sim wants them): each
   distinct layer shape runs once through SCALE-Sim (scalesim 3.0.0, save_disk_space=True,
   CALC mode, 32x32 ws, 64 KB SRAMs) and through the analytical model; identical layers repeat
   (ResNet-18 has 21 array layers, 12 shapes).  Reports per-layer cycle agreement, DRAM read
   error, and the time ratio (SCALE-Sim seconds / model seconds, per layer and in total).
2. USER-bandwidth agreement on small layers (stalls), where the model is an approximation.
3. ``codesign dse`` throughput: the systolic template's full ranges on ResNet-50 (ONNX from
   onnx's backend test data), layer-configs per second.

Run:  python benchmarks/bench_systolic.py [--quick] [--jobs 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwmodels.scalesim_io import ScaleSimConfig, run_scalesim  # noqa: E402
from hwmodels.systolic import SystolicLayers, layers_from_workload, simulate  # noqa: E402

# (name, padded ifmap h, w, filter h, w, channels, filters, stride, count in ResNet-18)
RESNET18 = [
    ("conv1", 230, 230, 7, 7, 3, 64, 2, 1),
    ("l1_conv3x3", 58, 58, 3, 3, 64, 64, 1, 4),
    ("l2_conv3x3_s2", 58, 58, 3, 3, 64, 128, 2, 1),
    ("l2_down1x1_s2", 56, 56, 1, 1, 64, 128, 2, 1),
    ("l2_conv3x3", 30, 30, 3, 3, 128, 128, 1, 3),
    ("l3_conv3x3_s2", 30, 30, 3, 3, 128, 256, 2, 1),
    ("l3_down1x1_s2", 28, 28, 1, 1, 128, 256, 2, 1),
    ("l3_conv3x3", 16, 16, 3, 3, 256, 256, 1, 3),
    ("l4_conv3x3_s2", 16, 16, 3, 3, 256, 512, 2, 1),
    ("l4_down1x1_s2", 14, 14, 1, 1, 256, 512, 2, 1),
    ("l4_conv3x3", 9, 9, 3, 3, 512, 512, 1, 3),
    ("fc", 1, 512, 1, 512, 1, 1000, 1, 1),          # GEMM M=1, N=1000, K=512 in conv form
]
USER_LAYERS = [("c3x3", 16, 16, 3, 3, 8, 16, 1), ("c1x1", 8, 8, 1, 1, 64, 40, 1), ("c5x5", 30, 30, 5, 5, 3, 8, 1),
               ("gemm", 64, 48, 1, 48, 1, 12, 1)]


def _layers(rows):
    return SystolicLayers.from_rows([(r[0], *r[1:7], r[7], r[7]) for r in rows])


def _scalesim_one(args):
    row, cfg = args
    t0 = time.perf_counter()
    rep = run_scalesim(_layers([row]), cfg)[0]
    return rep, time.perf_counter() - t0


def resnet18_vs_scalesim(rows, cfg, jobs):
    layers = _layers(rows)
    configs = cfg.to_configs()
    simulate(layers, configs)                                   # warm-up (imports, caches)
    reps = 200
    t0 = time.perf_counter()
    for _ in range(reps):
        res = simulate(layers, configs)
    model_s = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        out = list(ex.map(_scalesim_one, [(r, cfg) for r in rows]))
    wall = time.perf_counter() - t0
    per_layer = []
    for j, (row, (rep, secs)) in enumerate(zip(rows, out)):
        per_layer.append({
            "layer": row[0], "count": row[8],
            "scalesim_cycles": int(rep["total_cycles"]), "model_cycles": int(res.total_cycles[0, j]),
            "scalesim_incl_prefetch": int(rep["total_cycles_incl_prefetch"]),
            "model_incl_prefetch": int(res.total_cycles_incl_prefetch[0, j]),
            "scalesim_dram_reads": int(rep["ifmap_dram_reads"] + rep["filter_dram_reads"]),
            "model_dram_reads": int(res.dram_reads[0, j]),
            "scalesim_s": secs,
        })
    counts = np.array([r[8] for r in rows])
    ss_total = sum(p["scalesim_cycles"] * p["count"] for p in per_layer)
    md_total = sum(p["model_cycles"] * p["count"] for p in per_layer)
    ss_secs = sum(p["scalesim_s"] * p["count"] for p in per_layer)     # time for the whole network
    return {
        "config": cfg.__dict__, "layers": per_layer, "network_layers": int(counts.sum()),
        "scalesim_total_cycles": ss_total, "model_total_cycles": md_total,
        "cycles_equal_layers": sum(p["scalesim_cycles"] == p["model_cycles"] for p in per_layer),
        "scalesim_seconds_network": ss_secs, "scalesim_wall_seconds_unique_shapes": wall,
        "model_seconds_unique_shapes": model_s,
        "model_seconds_network_est": model_s * counts.sum() / len(rows),
        "speedup": ss_secs / (model_s * counts.sum() / len(rows)),
    }


def user_mode_agreement(arrays=((8, 8), (16, 4)), kb=2, bws=(4, 16)):
    out = []
    layers = _layers([r + (1,) for r in USER_LAYERS])
    for (R, C) in arrays:
        for df in ("ws", "os", "is"):
            for bw in bws:
                cfg = ScaleSimConfig("u", R, C, kb, kb, kb, df, True, [bw], bw, bw)
                ref = run_scalesim(layers, cfg)
                res = simulate(layers, cfg.to_configs())
                for j, name in enumerate(layers.names):
                    out.append({"array": f"{R}x{C}", "dataflow": df, "bw": bw, "layer": name,
                                "scalesim_cycles": int(ref[j]["total_cycles"]), "model_cycles": int(res.total_cycles[0, j]),
                                "scalesim_stalls": int(ref[j]["stall_cycles"]), "model_stalls": int(res.stall_cycles[0, j])})
    err = np.array([abs(o["model_cycles"] - o["scalesim_cycles"]) / o["scalesim_cycles"] for o in out])
    nostall = [o for o in out if o["scalesim_stalls"] == 0]
    return {"cases": out, "median_abs_cycle_err_pct": float(np.median(err) * 100),
            "p90_abs_cycle_err_pct": float(np.percentile(err, 90) * 100), "max_abs_cycle_err_pct": float(err.max() * 100),
            "within_3pct": int((err <= 0.03).sum()), "n": len(out),
            "no_stall_cases": len(nostall), "no_stall_equal": sum(o["model_cycles"] == o["scalesim_cycles"] for o in nostall)}


def dse_throughput(repeats=3):
    import onnx

    from codesign.cli.dse import sweep
    from codesign.frontends.onnx_frontend import load_onnx
    from hwmodels.targets import load_target

    path = Path(onnx.__file__).parent / "backend/test/data/light/light_resnet50.onnx"
    layers = layers_from_workload(load_onnx(path))
    target = load_target("systolic")
    rng = target.systolic.ranges
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        configs, obj, _, skipped = sweep(layers, target, rng, 8)
        secs = time.perf_counter() - t0
        best = secs if best is None else min(best, secs)
    return {"model": path.name, "layers": len(layers), "configs": len(configs), "skipped": skipped, "seconds": best,
            "configs_per_s": len(configs) / best, "layer_configs_per_s": len(configs) * len(layers) / best}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="SCALE-Sim on the 4 smallest ResNet-18 shapes only")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = RESNET18 if not args.quick else [r for r in RESNET18 if r[0].startswith(("l4", "fc"))]
    cfg = ScaleSimConfig("bench", 32, 32, 64, 64, 64, "ws", False, [10])
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu_count": os.cpu_count()}
    report["dse"] = dse_throughput()
    print(f"dse ResNet-50: {report['dse']['configs']:,} configs x {report['dse']['layers']} layers in "
          f"{report['dse']['seconds']:.2f} s = {report['dse']['layer_configs_per_s']:,.0f} layer-configs/s", flush=True)
    report["user_mode"] = user_mode_agreement()
    u = report["user_mode"]
    print(f"USER mode: {u['within_3pct']}/{u['n']} within 3% of SCALE-Sim cycles, median |err| "
          f"{u['median_abs_cycle_err_pct']:.1f}%, p90 {u['p90_abs_cycle_err_pct']:.1f}%; "
          f"no-stall cases equal {u['no_stall_equal']}/{u['no_stall_cases']}", flush=True)
    report["resnet18"] = r = resnet18_vs_scalesim(rows, cfg, args.jobs)
    print(f"{'layer':16s} {'x':>2s} {'SCALE-Sim cyc':>14s} {'model cyc':>12s} {'incl.pref ss':>13s} {'model':>10s} "
          f"{'DRAM rd ss':>11s} {'model':>11s} {'ss s':>7s}")
    for p in r["layers"]:
        print(f"{p['layer']:16s} {p['count']:2d} {p['scalesim_cycles']:14,d} {p['model_cycles']:12,d} "
              f"{p['scalesim_incl_prefetch']:13,d} {p['model_incl_prefetch']:10,d} {p['scalesim_dram_reads']:11,d} "
              f"{p['model_dram_reads']:11,d} {p['scalesim_s']:7.1f}")
    print(f"network ({r['network_layers']} layers): SCALE-Sim {r['scalesim_total_cycles']:,} cycles, model "
          f"{r['model_total_cycles']:,}; equal on {r['cycles_equal_layers']}/{len(r['layers'])} shapes; "
          f"SCALE-Sim {r['scalesim_seconds_network']:.1f} s vs model {r['model_seconds_network_est'] * 1e3:.3f} ms "
          f"-> {r['speedup']:,.0f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
