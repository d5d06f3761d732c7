"""Seeded generator of random CNNs exported to ONNX (benchmark networks).

``generate(n, seed, out_dir)`` builds ``n`` random torch networks -- random depth, width,
kernel size, stride and block mix (plain conv, depthwise-separable, inverted residual,
basic residual, pooling, linear head) at a few input resolutions -- and exports each to
``out_dir/net_<seed>_<i>.onnx`` (opset 17, one self-contained file, BatchNorm kept as a
node so that runtimes may fold it).  The same (n, seed) gives the same architectures
and the same files; weights are drawn from a torch generator seeded per network.

Self-contained on purpose (torch + onnx only): the roofline and measured-kernel
benchmarks both use it.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

WIDTHS = (8, 12, 16, 24, 32, 40, 48, 64, 96, 128)
RESOLUTIONS = (32, 48, 64, 96, 112)
KERNELS = (1, 3, 5, 7)
BLOCKS = ("conv", "dwsep", "mbconv", "basic", "pool")
ACTS = ("relu", "relu6", "none", "sigmoid", "hardswish")


def _act(name: str):
    from torch import nn
    return {"relu": nn.ReLU(), "relu6": nn.ReLU6(), "sigmoid": nn.Sigmoid(),
            "hardswish": nn.Hardswish(), "none": nn.Identity()}[name]


def sample_spec(rng: random.Random) -> dict:
    """One random architecture as plain data (JSON-serialisable)."""
    res = rng.choice(RESOLUTIONS)
    stem_w = rng.choice(WIDTHS[:7])
    spec = {"resolution": res, "stem": {"k": rng.choice((3, 3, 5, 7)), "stride": rng.choice((1, 2, 2)),
                                        "width": stem_w, "act": rng.choice(("relu", "relu6", "hardswish"))},
            "blocks": [], "head": []}
    size = res // spec["stem"]["stride"]
    width = stem_w
    depth = rng.randint(2, 9)
    for _ in range(depth):
        kind = rng.choice(BLOCKS)
        stride = 2 if (size >= 8 and rng.random() < 0.3) else 1
        out = rng.choice(WIDTHS)
        k = rng.choice(KERNELS[1:]) if kind in ("dwsep", "mbconv") else rng.choice(KERNELS)
        if kind == "pool":
            if size < 4:
                continue
            spec["blocks"].append({"type": "pool", "mode": rng.choice(("max", "avg")), "k": rng.choice((2, 3)), "stride": 2})
            size = (size + 1) // 2 if True else size
            continue
        blk = {"type": kind, "k": k, "stride": stride, "out": out, "act": rng.choice(ACTS)}
        if kind == "mbconv":
            blk["expand"] = rng.choice((1, 2, 3, 4, 6))
        if kind == "basic":
            blk["out"] = width if stride == 1 and rng.random() < 0.7 else out
            blk["act"] = rng.choice(("relu", "relu6"))
        spec["blocks"].append(blk)
        width = blk["out"]
        size = (size + stride - 1) // stride
    nfc = rng.choice((0, 1, 1, 2))
    for _ in range(nfc):
        spec["head"].append({"out": rng.choice((32, 64, 128, 256)), "act": rng.choice(("relu", "none"))})
    spec["classes"] = rng.choice((10, 100, 1000))
    return spec


def build(spec: dict):
    """The torch module for ``spec``."""
    import torch
    from torch import nn

    class ConvBN(nn.Sequential):
        def __init__(self, cin, cout, k, stride, groups=1, act="relu"):
            super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                             nn.BatchNorm2d(cout), _act(act))

    class Residual(nn.Module):
        def __init__(self, body, shortcut, post):
            super().__init__()
            self.body, self.shortcut, self.post = body, shortcut, post

        def forward(self, x):
            return self.post(self.body(x) + self.shortcut(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            st = spec["stem"]
            layers = [ConvBN(3, st["width"], st["k"], st["stride"], act=st["act"])]
            cin = st["width"]
            for b in spec["blocks"]:
                t = b["type"]
                if t == "pool":
                    layers.append(nn.MaxPool2d(b["k"], b["stride"], padding=b["k"] // 2 if b["k"] == 3 else 0, ceil_mode=False)
                                  if b["mode"] == "max" else nn.AvgPool2d(2, 2))
                    continue
                cout, k, s = b["out"], b["k"], b["stride"]
                if t == "conv":
                    layers.append(ConvBN(cin, cout, k, s, act=b["act"]))
                elif t == "dwsep":
                    layers.append(nn.Sequential(ConvBN(cin, cin, k, s, groups=cin, act=b["act"]),
                                                ConvBN(cin, cout, 1, 1, act=b["act"])))
                elif t == "mbconv":
                    hid = cin * b["expand"]
                    body = []
                    if b["expand"] != 1:
                        body.append(ConvBN(cin, hid, 1, 1, act=b["act"]))
                    body += [ConvBN(hid, hid, k, s, groups=hid, act=b["act"]), ConvBN(hid, cout, 1, 1, act="none")]
                    body = nn.Sequential(*body)
                    layers.append(Residual(body, nn.Identity(), nn.Identity()) if s == 1 and cin == cout else body)
                elif t == "basic":
                    body = nn.Sequential(ConvBN(cin, cout, k, s, act=b["act"]), ConvBN(cout, cout, k, 1, act="none"))
                    short = nn.Identity() if s == 1 and cin == cout else ConvBN(cin, cout, 1, s, act="none")
                    layers.append(Residual(body, short, _act(b["act"])))
                cin = cout
            self.features = nn.Sequential(*layers)
            head = []
            for h in spec["head"]:
                head += [nn.Linear(cin, h["out"]), _act(h["act"])]
                cin = h["out"]
            head.append(nn.Linear(cin, spec["classes"]))
            self.head = nn.Sequential(*head)

        def forward(self, x):
            x = self.features(x)
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
            return self.head(x)

    return Net()


def export(spec: dict, path: Path, weight_seed: int = 0) -> Path:
    import torch

    torch.manual_seed(weight_seed)
    net = build(spec).eval()
    with torch.no_grad():  # non-trivial BN statistics so that folding is exercised for real
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    res = spec["resolution"]
    x = torch.randn(1, 3, res, res)
    with torch.no_grad():
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"], do_constant_folding=True,
                          training=torch.onnx.TrainingMode.EVAL)
    return path


def generate(n: int, seed: int, out_dir: str | Path) -> list[Path]:
    """Build and export ``n`` random networks; returns their ONNX paths (same seed -> same nets).

    A sidecar ``net_<seed>_<i>.json`` holds each architecture spec.  Existing files with a
    matching spec are reused.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        spec = sample_spec(rng)
        path = out_dir / f"net_{seed}_{i:03d}.onnx"
        side = path.with_suffix(".json")
        text = json.dumps(spec, sort_keys=True)
        if not (path.exists() and side.exists() and side.read_text() == text):
            export(spec, path, weight_seed=seed * 100003 + i)
            side.write_text(text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    import sys
    out = generate(int(sys.argv[1]) if len(sys.argv) > 1 else 5, int(sys.argv[2]) if len(sys.argv) > 2 else 0,
                   sys.argv[3] if len(sys.argv) > 3 else "/tmp/netgen")
    print("\n".join(map(str, out)))
