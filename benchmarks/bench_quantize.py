"""Bring your own trained model (issue 13): `codesign quantize` on three networks trained here on
sklearn digits, against `systolic`, `bitfusion` and one device target.

    OMP_NUM_THREADS=1 python benchmarks/bench_quantize.py [--trials 40] [--out benchmarks/out/quantize]

Digits (1,797 8x8 images) is split once, stratified with seed 0: 45% trains the networks, 35% is
the DATA given to `codesign quantize` (which splits it into calibration and selection parts
itself, see each run's split.json), 20% is a test part quantize never sees.  Networks:

- resnet: a small ResNet-style CNN (stem, three residual blocks, one downsampling), BatchNorm
  folded by the export;
- mobilenet: a MobileNetV2-style CNN (inverted residuals: 1x1 expand, 3x3 depthwise, 1x1 project);
- transformer: the digit's 8 rows as 8 tokens of 8 features -> Linear(8, 64) + position
  embedding -> nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 128, batch_first=True), 2)
  -> mean over tokens -> Linear(64, 10); exported with torch's TorchScript exporter (opset 17).

For every network x target the command runs as a user runs it (a subprocess), then this script
re-measures in onnxruntime the written model.qdq.onnx and the float model on the selection part
and on the test part, and re-derives the chosen design's latency and energy with
`codesign analyze DIR/model.qdq.onnx --target DIR/accelerator.toml` (or the device target).
Uniform w8a8 is quantize's own baseline: the same writers and calibration, every quantizable layer
at 8 bits; on templates it is costed on the chosen design's accelerator (what the bits alone save)
and also on the accelerator config searched for it (both columns).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("systolic", "bitfusion", "raspberry-pi-4")


# ----- networks ----------------------------------------------------------------------------------

class Residual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


def resnet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         Residual(16, 16), Residual(16, 32, 2), Residual(32, 32),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4):
        super().__init__()
        mid = cin * expand
        self.body = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
                                  nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
                                  nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def mobilenet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
                         InvertedResidual(16, 16, 1), InvertedResidual(16, 24, 2), InvertedResidual(24, 24, 1),
                         InvertedResidual(24, 32, 1), nn.Conv2d(32, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU6(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


class RowTransformer(nn.Module):
    """Digits as 8 tokens (rows) of 8 features."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(8, 64)
        self.pos = nn.Parameter(torch.zeros(1, 8, 64))
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True), 2,
                                             enable_nested_tensor=False)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x) + self.pos).mean(dim=1))


NETWORKS = {"resnet": (resnet, "image"), "mobilenet": (mobilenet, "image"), "transformer": (RowTransformer, "rows")}


# ----- data and training ---------------------------------------------------------------------------

def split_digits(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, train_size=0.45, random_state=seed, stratify=y)
    quant, test = train_test_split(rest, train_size=35 / 55, random_state=seed, stratify=y[rest])
    return x, y, np.sort(train), np.sort(quant), np.sort(test)


def shaped(x: np.ndarray, kind: str) -> np.ndarray:
    return x[:, None] if kind == "image" else x          # (N, 1, 8, 8) images or (N, 8, 8) rows


def train(net: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * ((len(x) + 63) // 64))
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xs), generator=gen)
        for i in range(0, len(xs), 64):
            b = perm[i:i + 64]
            xb = xs[b]
            if xb.dim() == 4:    # one-pixel random shifts: the training set is small
                dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
                xb = torch.roll(xb, (dy, dx), dims=(2, 3))
            opt.zero_grad()
            nn.functional.cross_entropy(net(xb), ys[b]).backward()
            opt.step()
            sched.step()
    return net.eval()


def ort_top1(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return float((logits.argmax(1) == y).mean())


def codesign(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codesign", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})


# ----- one run -------------------------------------------------------------------------------------

def run_one(name: str, target: str, model: Path, data: Path, test_x, test_y, out: Path, trials: int, minutes: float,
            objective: str) -> dict:
    run_dir = out / f"{name}-{target}"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    t0 = time.time()
    p = codesign("quantize", str(model), "--data", str(data), "--target", target, "--out", str(run_dir),
                 "--trials", str(trials), "--minutes", str(minutes), "--objective", objective, "--seed", "0")
    seconds = time.time() - t0
    if p.returncode != 0:
        return {"network": name, "target": target, "error": (p.stderr.strip().splitlines() or ["?"])[-1], "rc": p.returncode}
    s = json.loads((run_dir / "quantize.json").read_text())
    split = json.loads((run_dir / "split.json").read_text())
    with np.load(data, allow_pickle=False) as f:
        dx, dy = f["x"], f["y"]
    sel = np.array(split["selection"])
    qdq = run_dir / "model.qdq.onnx"
    accel = run_dir / "accelerator.toml"
    a = codesign("analyze", str(qdq), "--target", str(accel if accel.exists() else target), "--json", "-")
    analyzed = json.loads(a.stdout) if a.returncode == 0 else {"error": a.stderr.strip()}
    bits = json.loads((run_dir / "bits.json").read_text())["layers"]
    hist: dict[str, int] = {}
    for b in bits.values():
        k = f"w{b['weight']}a{b['activation']}"
        hist[k] = hist.get(k, 0) + 1
    c, base = s["chosen"], s["baseline"]
    return {
        "network": name, "target": target, "cost_model": s["cost_model"], "layers": len(bits), "bits": hist,
        "writer": c["writer"], "measured_bit_maps": s["measured_bit_maps"], "seconds": round(seconds, 1),
        "float_sel": ort_top1(model, dx[sel], dy[sel]), "qdq_sel": ort_top1(qdq, dx[sel], dy[sel]),
        "w8a8_sel": base["accuracy"],
        "float_test": ort_top1(model, test_x, test_y), "qdq_test": ort_top1(qdq, test_x, test_y),
        "energy_mj": c["energy_mj"], "latency_ms": c["latency_ms"], "size_kb": c["size_kb"],
        "w8a8_energy_mj": base["energy_mj"], "w8a8_latency_ms": base["latency_ms"], "w8a8_size_kb": base["size_kb"],
        "energy_x": s["vs_baseline"]["energy_mj_ratio"], "latency_x": s["vs_baseline"]["latency_ms_ratio"],
        "size_x": s["vs_baseline"]["size_kb_ratio"],
        "analyze_energy_mj": analyzed.get("energy_mj"), "analyze_latency_ms": analyzed.get("latency_ms"),
        "hardware": c.get("hardware"),
        "own_hw_energy_x": (s.get("vs_baseline_own_accelerator") or {}).get("energy_mj_ratio"),
        "own_hw_latency_x": (s.get("vs_baseline_own_accelerator") or {}).get("latency_ms_ratio"),
        "baseline_own_hardware": (s.get("baseline_own_accelerator") or {}).get("hardware"),
    }


def table(results: list[dict]) -> str:
    head = ("| network | target | bits chosen (layers) | top-1 float / w8a8 / chosen (selection, ORT) | test float / chosen | "
            "energy vs w8a8 | latency vs w8a8 | size vs w8a8 | vs w8a8 on its own accelerator (energy, latency) | "
            "analyze reproduces | goal |")
    lines = [head, "|" + "---|" * 11]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['network']} | {r['target']} | failed: {r['error']} |" + " |" * 8)
            continue
        drop = r["float_sel"] - r["qdq_sel"]
        same = (r["analyze_energy_mj"] is not None and abs(r["analyze_energy_mj"] / r["energy_mj"] - 1) < 0.01
                and abs(r["analyze_latency_ms"] / r["latency_ms"] - 1) < 0.01)
        goal = drop <= 0.01 + 1e-9 and (r["energy_x"] or 0) >= 1.5 and (r["target"] != "bitfusion" or (r["latency_x"] or 0) >= 1.5)
        bits = ", ".join(f"{k}x{v}" for k, v in sorted(r["bits"].items()))
        own = (f"{r['own_hw_energy_x']:.2f}x, {r['own_hw_latency_x']:.2f}x" if r.get("own_hw_energy_x") else "-")
        lines.append(f"| {r['network']} | {r['target']} | {bits} | {r['float_sel']:.2%} / {r['w8a8_sel']:.2%} / "
                     f"{r['qdq_sel']:.2%} | {r['float_test']:.2%} / {r['qdq_test']:.2%} | {r['energy_x']:.2f}x | "
                     f"{r['latency_x']:.2f}x | {r['size_x']:.2f}x | {own} | {'yes' if same else 'NO'} | "
                     f"{'met' if goal else 'not met'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--objective", default="energy")
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "quantize")
    args = ap.parse_args()
    from codesign.frontends.torch_frontend import export_onnx
    from hwmodels.targets import list_targets

    args.out.mkdir(parents=True, exist_ok=True)
    x, y, tr, qu, te = split_digits()
    targets = [t for t in args.targets.split(",") if t]
    missing = [t for t in targets if t not in list_targets()]
    results: list[dict] = []
    trained: dict[str, dict] = {}
    for name in args.networks.split(","):
        factory, kind = NETWORKS[name]
        t0 = time.time()
        torch.manual_seed(0)                  # the initial weights too: every run trains the same network
        net = train(factory(), shaped(x[tr], kind), y[tr], args.epochs, seed=0)
        model = args.out / f"{name}.onnx"
        export_onnx(net, torch.from_numpy(shaped(x[:1], kind)), model, dynamic_batch=True, check=True, what=name)
        data = args.out / f"{name}-data.npz"
        np.savez(data, x=shaped(x[qu], kind), y=y[qu])
        trained[name] = {"train_seconds": round(time.time() - t0, 1), "params": sum(p.numel() for p in net.parameters())}
        print(f"{name}: trained in {trained[name]['train_seconds']} s, {trained[name]['params']:,} parameters", flush=True)
        for target in targets:
            if target in missing:
                results.append({"network": name, "target": target, "error": f"target {target!r} is not available"})
                continue
            r = run_one(name, target, model, data, shaped(x[te], kind), y[te], args.out, args.trials, args.minutes,
                        args.objective)
            results.append(r)
            print(json.dumps(r), flush=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "OMP_NUM_THREADS=1 python benchmarks/bench_quantize.py " + " ".join(sys.argv[1:])
    (args.out / "results.json").write_text(json.dumps({"date": stamp, "command": command, "networks": trained,
                                                       "results": results}, indent=2, default=float))
    print(f"\n{command}\n{stamp}\n")
    print(table(results))


if __name__ == "__main__":
    main()
