"""Bit Fusion template: configs scored per second beside the systolic template, and how latency and
energy respond to bits.

1. Throughput, one run, both templates: ``codesign dse``'s sweep of each template's full ranges
   (targets/systolic.toml, targets/bitfusion.toml) on SqueezeNet and ResNet-50 (examples/), and
   the nested optimiser's ``HardwareGrid.network_metrics`` (what the joint search calls per
   candidate) cold (every layer shape simulated) and warm (the per-shape cache hit).  Best of
   ``--repeat`` runs; configs/s and layer-configs/s.
2. Bits response on the default 16x32 Bit Fusion array: latency and energy of uniform w/a bits
   relative to w8a8, and the share of array time spent in memory-bound layers.
3. Agreement with the authors' simulator: per-layer cycles of CIFAR-10 (QNN), VGG-7 and LeNet-5
   (TWN) at the bits of their benchmarks.py, batch 16, 16x32 units, 64/32/16 KB, 192 bits/cycle,
   against their published output (github.com/hsharma35/bitfusion
   results/bitfusion-eyeriss-sim-sweep.csv: Cycles, Memory wait cycles), with the target's
   default (outputs requantized on chip) and with ``dram_psums`` (32-bit outputs through DRAM, as
   their simulator moves them).

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
from hwmodels.bitfusion import FusionConfigs, simulate  # noqa: E402
from hwmodels.bits import BitAssignment, LayerBits  # noqa: E402
from hwmodels.systolic import SystolicLayers  # noqa: E402
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


def _conv(name, hw, c, k, ksz, w, a, batch=16):
    p = hw + ksz - 1                    # SAME padding, stride 1
    return (name, p, p, ksz, ksz, c, k, 1, 1, batch, 1), w, a


def _fc(name, k, n, w, a, batch=16):
    return (name, batch, k, 1, k, 1, n, 1, 1, 1, 1), w, a


# the authors' networks (bitfusion/src/benchmarks/benchmarks.py; a layer's activation bits are its input
# tensor's) and their simulator's (Cycles, Memory wait cycles) at 192 bits/cycle
AUTHORS = {
    "CIFAR10": [(_conv("conv0", 32, 3, 128, 3, 8, 8), 717654, 586582), (_conv("conv1", 32, 128, 128, 3, 2, 2), 799062, 209238),
                (_conv("conv2", 16, 128, 256, 3, 2, 2), 402091, 107179), (_conv("conv3", 16, 256, 256, 3, 2, 2), 492204, 197292),
                (_conv("conv4", 8, 256, 512, 3, 2, 2), 255318, 107862), (_conv("conv5", 8, 512, 512, 3, 2, 2), 510636, 215724),
                (_fc("fc6", 8192, 1024, 2, 2), 99671, 83287), (_fc("fc7", 1024, 1024, 2, 2), 16555, 14507),
                (_fc("fc8", 1024, 10, 2, 2), 513, 449)],
    "VGG-7": [(_conv("conv1_a", 32, 3, 128, 3, 2, 2), 704001, 638465), (_conv("conv1_b", 32, 3, 128, 3, 2, 2), 704001, 638465),
              (_conv("conv2_a", 16, 128, 256, 3, 2, 2), 402091, 107179), (_conv("conv2_b", 16, 128, 256, 3, 2, 2), 402091, 107179),
              (_conv("conv3_a", 8, 256, 512, 3, 2, 2), 255318, 107862), (_conv("conv3_b", 8, 256, 512, 3, 2, 2), 255318, 107862),
              (_fc("fc1", 8192, 1024, 2, 2), 99671, 83287)],
    "LeNet-5": [(_conv("conv0", 32, 1, 32, 5, 2, 2), 179116, 162732), (_conv("conv1", 16, 32, 64, 5, 2, 2), 205635, 835),
                (_fc("fc1", 4096, 512, 2, 2), 25259, 21163), (_fc("fc2", 512, 10, 2, 2), 342, 310)],
}


def authors_agreement() -> list[dict]:
    t = load_target("bitfusion")
    out = []
    for dram_psums in (False, True):
        unit = t.bitfusion.unit.model_copy(update={"dram_psums": dram_psums})
        cfg = FusionConfigs.from_config(t.bitfusion.default)
        for net, layers in AUTHORS.items():
            rows = [x[0] for x in layers]
            res = simulate(SystolicLayers.from_rows([r for r, _, _ in rows]), cfg, [w for _, w, _ in rows],
                           [a for _, _, a in rows], unit)
            for j, ((row, w, a), cycles, wait) in enumerate(layers):
                out.append({"dram_psums": dram_psums, "network": net, "layer": row[0], "bits": f"w{w}a{a}",
                            "compute_ours": int(res.compute_cycles[0, j]), "compute_theirs": cycles - wait,
                            "cycles_ours": int(res.total_cycles[0, j]), "cycles_theirs": cycles})
    return out


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
    agree = authors_agreement()
    print("\nagreement with the authors' simulator (192 bits/cycle, batch 16)")
    exact = sum(r["compute_ours"] == r["compute_theirs"] for r in agree if not r["dram_psums"])
    print(f"compute cycles identical on {exact} of {len(agree) // 2} layers")
    for psums in (False, True):
        rows = [r for r in agree if r["dram_psums"] == psums]
        errs = sorted(abs(r["cycles_ours"] / r["cycles_theirs"] - 1) for r in rows)
        label = "dram_psums (their convention)" if psums else "default (outputs requantized on chip)"
        nets = {n: sum(r["cycles_ours"] for r in rows if r["network"] == n) /
                sum(r["cycles_theirs"] for r in rows if r["network"] == n) - 1 for n in AUTHORS}
        print(f"  {label}: total cycles per network " + ", ".join(f"{n} {e:+.1%}" for n, e in nets.items())
              + f"; per layer |error| median {errs[len(errs) // 2]:.1%}, max {errs[-1]:.1%}")
    if args.json:
        args.json.write_text(json.dumps({"throughput": thr, "bits_response": resp, "authors": agree}, indent=2))


if __name__ == "__main__":
    main()
