"""Issue 5 benchmark: is the supernet's accuracy signal real?

Measures, on scikit-learn's digits (nothing downloaded), on this machine's CPU:
  1. supernet training time per space;
  2. sub-networks extracted from the supernet vs the same architectures trained alone for the same
     number of epochs (gap in accuracy points, test split), plus a short fine-tune of the extracted one;
  3. uniform bit-widths (w2/w4/w8/w16, a2/a4/a8) with post-training fake-quant, and QAT at low bits;
  4. per-layer sensitivity (one layer at 2 bits, the rest float);
  5. Spearman rank correlation of zero-cost proxies (synflow, NASWOT, #params) and of an accuracy
     predictor (out-of-fold) with measured accuracy.

    python benchmarks/bench_supernet.py [--quick] [--json benchmarks/results/supernet.json]

Every accuracy printed is measured on held-out images; proxies and predictions are labelled estimates.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from codesign.data import load_splits
from codesign.proxies import AccuracyPredictor, proxy_scores, spearman
from codesign.quant import evaluate_accuracy, layer_sensitivity, qat_finetune, uniform_bits
from codesign.spaces import get_space
from codesign.supernet import extract, finetune, train_supernet
from codesign.training import TrainConfig, accuracy, train_module

SPACES = {
    "small-cnn": dict(config={}, epochs=20, n_random=2, lr=3e-3),
    "mobilenetv3": dict(config=dict(stem_channels=16, first_channels=16, stage_channels=(24, 40, 64),
                                    strides=(2, 2, 1), se=(False, True, True), acts=("relu", "hswish", "hswish"),
                                    head_channels=128, depths=(1, 2, 3), kernels=(3, 5, 7), expands=(3, 4, 6),
                                    widths=(0.75, 1.0), resolutions=(12, 16)),
                        epochs=12, n_random=1, lr=3e-3),
}
BITS = ["fp", "w16a16", "w8a8", "w4a8", "w2a8", "w8a4", "w8a2", "w4a4", "w2a2"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def subnet_archs(space, n: int, seed: int = 123) -> list[dict]:
    archs, keys = [space.largest(), space.smallest()], set()
    keys = {space.key(a) for a in archs}
    rng = np.random.default_rng(seed)
    while len(archs) < n:
        a = space.sample(rng)
        if space.key(a) not in keys:
            keys.add(space.key(a))
            archs.append(a)
    return archs


def bench_gap(name: str, spec: dict, splits, n_sub: int, quick: bool) -> tuple[dict, object, object]:
    """Supernet training, then extracted vs trained-alone accuracy for n_sub sub-networks."""
    space = get_space(name, **spec["config"])
    epochs = max(2, spec["epochs"] // 4) if quick else spec["epochs"]
    cfg = TrainConfig(epochs=epochs, n_random=spec["n_random"], lr=spec["lr"], seed=0)
    t0 = time.perf_counter()
    net = train_supernet(space, splits, cfg, log=lambda m: log(f"{name} supernet {m}"))
    train_s = time.perf_counter() - t0
    rows = []
    for i, arch in enumerate(subnet_archs(space, n_sub)):
        sub = extract(net, arch, splits)
        shared = accuracy(sub, splits.test)
        params = sum(p.numel() for p in sub.parameters())
        tuned = (accuracy(finetune(extract(net, arch, splits), splits, epochs=3, lr=5e-4), splits.test)
                 if i < 2 else None)  # the fine-tune option, shown on two sub-networks to save time
        t1 = time.perf_counter()
        alone_m = train_module(space.build(arch, splits.num_classes, splits.in_channels, splits.resolution, seed=0),
                               splits, TrainConfig(epochs=epochs, lr=spec["lr"], seed=0))
        alone = accuracy(alone_m, splits.test)
        rows.append(dict(arch=arch, label=["largest", "smallest"][i] if i < 2 else f"random-{i - 1}",
                         params=params, resolution=sub.input_resolution, extracted=shared, finetuned=tuned,
                         alone=alone, gap_points=100 * (alone - shared), alone_train_s=time.perf_counter() - t1))
        log(f"{name} {rows[-1]['label']}: extracted {shared:.4f}, fine-tuned {tuned}, alone {alone:.4f}")
    gaps = [r["gap_points"] for r in rows]
    return dict(space=name, config=space.config, train_config=cfg.__dict__, supernet_train_s=train_s,
                subnets=rows, mean_gap_points=float(np.mean(gaps)), max_abs_gap_points=float(np.max(np.abs(gaps))),
                spearman_extracted_vs_alone=spearman([r["extracted"] for r in rows], [r["alone"] for r in rows])), \
        space, net


def bench_quant(space, net, splits, quick: bool) -> dict:
    """Uniform bit-widths on three sub-networks, QAT at low bits, per-layer sensitivity of one."""
    out: dict = {"uniform": {}, "qat": {}, "sensitivity": {}}
    calib = splits.val.x[:256]
    for label, arch in [("largest", space.largest()), ("smallest", space.smallest()), ("random-1", space.sample(1))]:
        sub = extract(net, arch, splits)
        out["uniform"][label] = {b: evaluate_accuracy(sub, splits.test, None if b == "fp" else b, calib)
                                 for b in BITS}
        log(f"quant {label}: " + ", ".join(f"{b} {a:.3f}" for b, a in out["uniform"][label].items()))
    sub = extract(net, space.largest(), splits)
    for b in ("w2a8", "w4a4", "w2a4"):
        w, a = int(b[1]), int(b[3])
        q = qat_finetune(sub, uniform_bits(sub, w, a), splits, epochs=1 if quick else 3, lr=1e-3)
        out["qat"][b] = {"ptq": evaluate_accuracy(sub, splits.test, b, calib), "qat": accuracy(q, splits.test)}
        log(f"QAT {b}: PTQ {out['qat'][b]['ptq']:.4f} -> QAT {out['qat'][b]['qat']:.4f}")
    for kind in ("weight", "activation"):
        out["sensitivity"][kind] = layer_sensitivity(sub, splits, bits=2, quantize=kind)
    return out


def bench_proxies(space, net, splits, n: int, regime: str) -> dict:
    """Rank correlation of estimates with measured (supernet-extracted) accuracy over n sub-networks."""
    archs = subnet_archs(space, n, seed=7)
    measured = [accuracy(extract(net, a, splits), splits.test) for a in archs]
    scores = proxy_scores(space, archs, splits.train.x[:64], splits.num_classes)
    scores["params"] = [float(sum(p.numel() for p in space.build(a, splits.num_classes, splits.in_channels,
                                                                   splits.resolution).parameters())) for a in archs]
    rho = {k: spearman(v, measured) for k, v in scores.items()}
    k = 5
    folds = np.array_split(np.random.default_rng(0).permutation(n), k)
    for kind in ("ridge", "rf"):
        oof = np.zeros(n)
        for f in folds:
            train = [i for i in range(n) if i not in set(f)]
            pred = AccuracyPredictor(space, kind=kind).fit([archs[i] for i in train], [measured[i] for i in train])
            oof[f] = pred.predict([archs[i] for i in f])
        rho[f"predictor-{kind} (5-fold out-of-fold)"] = spearman(oof, measured)
    log(f"{regime}: spearman vs measured: " + ", ".join(f"{k} {v:+.3f}" for k, v in rho.items()))
    return dict(regime=regime, n=n, measured_min=min(measured), measured_max=max(measured),
                measured_std=float(np.std(measured)), spearman=rho)


def markdown(res: dict) -> str:
    lines = [f"Command: `{res['command']}`  ", f"Date: {res['date']}; machine: {res['machine']}; "
             f"total wall time {res['total_s']:.0f} s.", ""]
    for g in res["gap"]:
        lines += [f"### {g['space']}: extracted vs trained alone ({g['train_config']['epochs']} epochs each)", "",
                  f"Supernet training: {g['supernet_train_s']:.0f} s (sandwich rule, "
                  f"{g['train_config']['n_random']} random + largest + smallest per step, in-place distillation). "
                  f"Mean gap (alone - extracted): {g['mean_gap_points']:+.2f} points; max |gap| "
                  f"{g['max_abs_gap_points']:.2f}; Spearman(extracted, alone) = "
                  f"{g['spearman_extracted_vs_alone']:+.3f}.", "",
                  "| sub-network | params | res | extracted | extracted + 3 ep fine-tune | trained alone | gap (points) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in g["subnets"]:
            tuned = "-" if r["finetuned"] is None else f"{r['finetuned']:.4f}"
            lines.append(f"| {r['label']} | {r['params']:,} | {r['resolution']} | {r['extracted']:.4f} | "
                         f"{tuned} | {r['alone']:.4f} | {r['gap_points']:+.2f} |")
        lines.append("")
    q = res["quant"]
    lines += ["### small-cnn: uniform bit-widths (post-training fake-quant, test accuracy)", "",
              "| sub-network | " + " | ".join(BITS) + " |", "|---|" + "---:|" * len(BITS)]
    for label, accs in q["uniform"].items():
        lines.append(f"| {label} | " + " | ".join(f"{accs[b]:.4f}" for b in BITS) + " |")
    lines += ["", "QAT (largest sub-network, straight-through estimator):", "",
              "| bits | PTQ | QAT |", "|---|---:|---:|"]
    for b, v in q["qat"].items():
        lines.append(f"| {b} | {v['ptq']:.4f} | {v['qat']:.4f} |")
    lines += ["", "Per-layer sensitivity (largest sub-network; val-accuracy drop in points when only that layer "
              "goes to 2 bits):", "", "| layer | weights at 2 bits | input activation at 2 bits |", "|---|---:|---:|"]
    sens = q["sensitivity"]
    for layer in sens["weight"]:
        lines.append(f"| {layer} | {sens['weight'][layer]:.2f} | {sens['activation'][layer]:.2f} |")
    ps = res["proxies"]
    lines += ["", "### Rank correlation of estimates with measured accuracy", "",
              "Measured = test accuracy of each sub-network extracted from the supernet (BN re-calibrated). "
              "Proxies are computed at (seeded) initialisation; the predictor's figure is out-of-fold (5-fold).", "",
              "| estimate | " + " | ".join(f"{p['regime']} (n={p['n']}, acc {p['measured_min']:.3f}-"
                                          f"{p['measured_max']:.3f})" for p in ps) + " |",
              "|---|" + "---:|" * len(ps)]
    for k in ps[0]["spearman"]:
        lines.append(f"| {k} | " + " | ".join(f"{p['spearman'][k]:+.3f}" for p in ps) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few epochs (smoke run)")
    ap.add_argument("--spaces", default="small-cnn,mobilenetv3")
    ap.add_argument("--subnets", type=int, default=6)
    ap.add_argument("--proxy-archs", type=int, default=30)
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/supernet.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    splits = load_splits("digits", seed=0)
    res: dict = {"command": "python benchmarks/bench_supernet.py" + (" --quick" if args.quick else ""),
                 "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
                 "data": f"digits: {len(splits.train)} train / {len(splits.val)} val / {len(splits.test)} test",
                 "gap": []}
    small = None
    res["proxies"] = []
    for name in args.spaces.split(","):
        n_sub = args.subnets if name == "small-cnn" else max(5, args.subnets - 1)
        g, space, net = bench_gap(name, SPACES[name], splits, n_sub, args.quick)
        res["gap"].append(g)
        res["proxies"].append(bench_proxies(space, net, splits, args.proxy_archs,
                                            f"{name}, {g['train_config']['epochs']} ep"))
        if name == "small-cnn":
            small = (space, net)
            res["quant"] = bench_quant(space, net, splits, args.quick)
            # a short-training regime, where sub-networks spread more than at the digits ceiling
            short = TrainConfig(epochs=4, n_random=2, lr=3e-3, seed=0)
            net4 = train_supernet(space, splits, short)
            res["proxies"].append(bench_proxies(space, net4, splits, args.proxy_archs, "small-cnn, 4 ep"))
    res["total_s"] = time.perf_counter() - t0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=2, default=str))
    if small is not None:
        print(markdown(res))
    log(f"done in {res['total_s']:.0f} s; JSON in {args.json}")


if __name__ == "__main__":
    main()
