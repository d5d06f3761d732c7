"""Train a weight-sharing supernet once; extract, evaluate and fine-tune any sub-network.

Training uses the sandwich rule (largest + smallest + N random sub-networks every step) with
in-place distillation (the largest network's soft predictions teach the others), as in
BigNAS / OFA.  Checkpoints are keyed by a hash of the space config, the training config and
the data, so an unchanged request reuses the saved supernet instead of retraining.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from codesign.data import Splits, batches, random_shift, resize
from codesign.training import Log, TrainConfig, make_optimizer, seeded_generator, threads, train_module
from codesign.spaces import ElasticNet, SearchSpace, get_space
from codesign.spaces.base import Arch
from hwmodels.errors import CodesignError


def train_supernet(space: SearchSpace, splits: Splits, cfg: TrainConfig = TrainConfig(),
                   log: Log | None = None) -> ElasticNet:
    """Sandwich-rule training with in-place distillation; returns the supernet in eval mode."""
    with threads(cfg.threads):
        return _train_supernet(space, splits, cfg, log)


def _train_supernet(space: SearchSpace, splits: Splits, cfg: TrainConfig, log: Log | None) -> ElasticNet:
    gen = seeded_generator(cfg)
    rng = np.random.default_rng(cfg.seed)
    net = space.supernet(splits.num_classes, splits.in_channels, splits.resolution)
    steps = cfg.epochs * -(-len(splits.train) // cfg.batch_size)
    opt, sched = make_optimizer(net.parameters(), cfg, steps)
    largest, smallest = space.largest(), space.smallest()
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        net.train()
        total, n = 0.0, 0
        for xb, yb in batches(splits.train, cfg.batch_size, shuffle=True, gen=gen):
            xb = random_shift(xb, gen, cfg.augment_shift)
            opt.zero_grad(set_to_none=True)
            logits = net(resize(xb, space.resolution(largest)), largest)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            soft = F.softmax(logits.detach(), dim=1)
            for arch in [smallest] + [space.sample(rng) for _ in range(cfg.n_random)]:
                out = net(resize(xb, space.resolution(arch)), arch)
                kd = F.kl_div(F.log_softmax(out, dim=1), soft, reduction="batchmean")
                ((1 - cfg.distill) * F.cross_entropy(out, yb) + cfg.distill * kd).backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            total, n = total + loss.detach().item() * len(yb), n + len(yb)
        if log:
            log(f"epoch {epoch + 1}/{cfg.epochs}: largest-net train loss {total / n:.4f} "
                f"({time.perf_counter() - t0:.0f}s)")
    return net.eval()


def extract(supernet: ElasticNet, arch: Arch, splits: Splits, calib_images: int = 512) -> nn.Module:
    """Standalone sub-network with shared weights and BatchNorm statistics re-calibrated on training images."""
    return supernet.extract(arch, splits.train.x[:calib_images])


def finetune(module: nn.Module, splits: Splits, epochs: int = 5, lr: float = 5e-4, seed: int = 0,
             log: Log | None = None) -> nn.Module:
    """Short fine-tune of an extracted sub-network (lower learning rate than training from scratch)."""
    return train_module(module, splits, TrainConfig(epochs=epochs, lr=lr, seed=seed), log)


class SubnetEvaluator:
    """What a search calls: measured accuracy of (arch, bit map) from one trained supernet.

    Extracted sub-networks (BatchNorm re-calibrated) are cached by architecture.  Select on
    ``part="val"`` during a search and report ``part="test"`` for the chosen designs.
    """

    def __init__(self, supernet: ElasticNet, splits: Splits, calib_images: int = 512, cache_size: int = 64):
        self.supernet, self.splits, self.calib_images, self.cache_size = supernet, splits, calib_images, cache_size
        self._cache: dict[str, nn.Module] = {}

    def module(self, arch: Arch) -> nn.Module:
        key = self.supernet.space.key(self.supernet.space.validate(arch))
        if key not in self._cache:
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = extract(self.supernet, arch, self.splits, self.calib_images)
        return self._cache[key]

    def accuracy(self, arch: Arch, bits: str | dict | None = None, part: str = "val", split=None) -> float:
        """Measured accuracy on ``part`` (val or test; ``split``: a subset of it); quantized if ``bits``
        (calibrated on training images for val, on val images for test)."""
        from codesign.quant import evaluate_accuracy

        split = split if split is not None else {"val": self.splits.val, "test": self.splits.test}[part]
        calib = self.splits.val.x[:256] if part == "test" else self.splits.train.x[:256]
        return evaluate_accuracy(self.module(arch), split, bits, calib)


# ----- checkpoints ---------------------------------------------------------------------------------

def checkpoint_key(space: SearchSpace, cfg: TrainConfig, splits: Splits) -> str:
    """Hash of what determines the trained weights: space config, training config and data."""
    blob = json.dumps({"space": space.name, "config": space.config, "train": asdict(cfg),
                       "data": splits.fingerprint}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_checkpoint(path: str | Path, supernet: ElasticNet, cfg: TrainConfig, splits: Splits,
                    extra: dict | None = None) -> Path:
    """Weights plus everything needed to rebuild the supernet (space name and config, data shape).
    Saved under a temporary name and renamed into place: a process killed while saving leaves no
    half-written checkpoint for ``train_or_load`` to trust (it would refuse it on every resume)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    space = supernet.space
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"format": "codesign-supernet-1", "space": space.name, "space_config": space.config,
                    "train_config": asdict(cfg), "num_classes": splits.num_classes, "in_channels": splits.in_channels,
                    "data_resolution": splits.resolution, "data": splits.name, "data_fingerprint": splits.fingerprint,
                    "key": checkpoint_key(space, cfg, splits), "state_dict": supernet.state_dict(),
                    "extra": extra or {}}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> tuple[ElasticNet, dict]:
    """Rebuild a supernet from ``save_checkpoint``'s file; returns (supernet, metadata)."""
    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CodesignError(f"checkpoint {path} not found (train one with codesign train-supernet)") from None
    except Exception as exc:
        raise CodesignError(f"{path}: not a readable codesign checkpoint ({type(exc).__name__})") from None
    if not isinstance(ck, dict) or ck.get("format") != "codesign-supernet-1":
        raise CodesignError(f"{path}: not a codesign supernet checkpoint")
    space = get_space(ck["space"], **ck["space_config"])
    net = space.supernet(ck["num_classes"], ck["in_channels"], ck["data_resolution"])
    net.load_state_dict(ck["state_dict"])
    meta = {k: v for k, v in ck.items() if k != "state_dict"}
    return net.eval(), meta


def train_or_load(space: SearchSpace, splits: Splits, cfg: TrainConfig, cache_dir: str | Path,
                  log: Log | None = None) -> tuple[ElasticNet, Path, bool]:
    """Reuse ``cache_dir/<space>-<key>.pt`` if it exists, else train and save; returns (net, path, reused)."""
    path = Path(cache_dir) / f"{space.name}-{checkpoint_key(space, cfg, splits)}.pt"
    if path.exists():
        net, _ = load_checkpoint(path)
        return net, path, True
    net = train_supernet(space, splits, cfg, log)
    save_checkpoint(path, net, cfg, splits)
    return net, path, False
