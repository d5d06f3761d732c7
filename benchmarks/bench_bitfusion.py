"""Bit Fusion template: configs scored per second beside the systolic template, and how latency and
energy respond to bits.

1. Throughput, one run, both templates: ``codesign dse``'s sweep of each template's full ranges
   (targets/systolic.toml, targets/bitfusion.toml) on SqueezeNet and ResNet-50 (examples/), and
   the nested optimiser's ``HardwareGrid.network_metrics`` (what the joint search calls per
   candidate) cold (every layer shape simulated) and warm (the per-shape cache hit).  Best of
   ``--repeat`` runs; configs/s and layer-configs/s.
2. Bits response on the default 16x32 Bit Fusion array: latency and energy of uniform w/a bits
   relative to w8a8, and the share of array time spent in memory-bound layers.

Run:  python benchmarks/bench_bitfusion.py [--repeat 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codesign.cli.dse import sweep  # noqa: E402
from codesign.cli.simulate import load_layers  # noqa: E402
from codesign.frontends.onnx_frontend import load_onnx  # noqa: E402
from codesign.search.hw_opt import HardwareGrid  # noqa: E402
from hwmodels.bits import BitAssignment, LayerBits  # noqa: E402
from hwmodels.registry import get_cost_model  # noqa: E402
from hwmodels.targets import load_target  # noqa: E402
from hwmodels.template_kinds import kind_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"squeezenet": ROOT / "examples" / "squeezenet.onnx", "resnet50": ROOT / "examples" / "resnet50.onnx"}
BITS = [(8, 8), (8, 4), (4, 8), (4, 4), (2, 8), (2, 2), (16, 8), (16, 16)]


def best_time(fn, repeat: int):
    out, best = None, float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def throughput(repeat: int) -> list[dict]:
    rows = []
    for model, path in MODELS.items():
        layers = load_layers(path)
        wl = load_onnx(path)
        for name in ("systolic", "bitfusion"):
            t = load_target(name)
            kind = kind_of(t)
            key = kind.key(kind.default_bits(t))
            (values, obj, cycles, skipped), secs = best_time(lambda: sweep(layers, t, kind.template(t).ranges, key), repeat)
            n = len(cycles)
            ranges = kind.template(t).ranges.model_dump()
            bits = BitAssignment(kind.default_bits(t))
            cold, warm = float("inf"), float("inf")
            for _ in range(repeat):
                grid = HardwareGrid(ranges, None, kind=kind.name)
                t0 = time.perf_counter()
                grid.network_metrics(wl, bits, t, kind.clock_mhz(t))
                cold = min(cold, time.perf_counter() - t0)
                t0 = time.perf_counter()
                grid.network_metrics(wl, bits, t, kind.clock_mhz(t))
                warm = min(warm, time.perf_counter() - t0)
            rows.append({"model": model, "template": name, "layers": len(layers), "configs": n, "skipped": skipped,
                         "dse_s": secs, "dse_configs_per_s": n / secs, "dse_layer_configs_per_s": n * len(layers) / secs,
                         "grid_configs": len(grid), "nested_cold_s": cold, "nested_warm_s": warm,
                         "nested_cold_configs_per_s": len(grid) / cold, "nested_warm_configs_per_s": len(grid) / warm})
    return rows


def bits_response() -> list[dict]:
    t = load_target("bitfusion")
    model = get_cost_model("bitfusion")
    rows = []
    for name, path in MODELS.items():
        wl = load_onnx(path)
        base = model.estimate(wl, t, BitAssignment(LayerBits(8, 8)))
        for w, a in BITS:
            c = model.estimate(wl, t, BitAssignment(LayerBits(w, a)))
            array = [l for l in c.layers if l.bound != "off-array"]
            mem = sum(l.latency_s for l in array if l.bound != "compute")
            rows.append({"model": name, "bits": f"w{w}a{a}", "latency_ms": c.latency_s * 1e3, "energy_mj": c.energy_j * 1e3,
                         "latency_vs_w8a8": c.latency_s / base.latency_s, "energy_vs_w8a8": c.energy_j / base.energy_j,
                         "memory_bound_time_share": mem / c.latency_s})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    thr = throughput(args.repeat)
    print("throughput (best of %d)" % args.repeat)
    print(f"{'model':11s} {'template':9s} {'layers':>6s} {'configs':>7s} {'dse s':>7s} {'configs/s':>10s} "
          f"{'layer-cfg/s':>12s} {'nested cold/s':>14s} {'nested warm/s':>14s}")
    for r in thr:
        print(f"{r['model']:11s} {r['template']:9s} {r['layers']:6d} {r['configs']:7d} {r['dse_s']:7.3f} "
              f"{r['dse_configs_per_s']:10,.0f} {r['dse_layer_configs_per_s']:12,.0f} "
              f"{r['nested_cold_configs_per_s']:14,.0f} {r['nested_warm_configs_per_s']:14,.0f}")
    resp = bits_response()
    print("\nbits response, default 16x32 Bit Fusion array (relative to w8a8)")
    print(f"{'model':11s} {'bits':7s} {'latency ms':>10s} {'energy mJ':>10s} {'lat x':>6s} {'energy x':>8s} {'mem-bound time':>14s}")
    for r in resp:
        print(f"{r['model']:11s} {r['bits']:7s} {r['latency_ms']:10.3f} {r['energy_mj']:10.3f} {r['latency_vs_w8a8']:6.3f} "
              f"{r['energy_vs_w8a8']:8.3f} {r['memory_bound_time_share']:14.1%}")
    if args.json:
        args.json.write_text(json.dumps({"throughput": thr, "bits_response": resp}, indent=2))


if __name__ == "__main__":
    main()
