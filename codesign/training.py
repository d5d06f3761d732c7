"""Plain supervised training and measured accuracy: what the supernet, QAT and the search share.

One ``TrainConfig`` (part of checkpoint keys), one training loop (AdamW, one-cycle schedule,
shift augmentation), one accuracy measurement on a held-out split.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from codesign.data import Split, Splits, batches, random_shift, resize

Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of supernet and standalone training (part of the checkpoint key)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    n_random: int = 2            # random sub-networks per step besides largest and smallest
    distill: float = 0.7         # weight of the in-place distillation loss (rest: labels)
    augment_shift: int = 1       # random pixel shift (augmentation for tiny images)
    seed: int = 0
    threads: int = 1             # 1 is fastest for small nets on a shared 2-core machine


@contextlib.contextmanager
def threads(n: int | None):
    """Run with ``n`` torch threads and restore the caller's setting afterwards."""
    prev = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def seeded_generator(cfg: TrainConfig) -> torch.Generator:
    torch.manual_seed(cfg.seed)
    return torch.Generator().manual_seed(cfg.seed)


def make_optimizer(params, cfg: TrainConfig, steps: int) -> tuple[torch.optim.Optimizer, Any]:
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, steps), pct_start=0.15)
    return opt, sched


def train_module(module: nn.Module, splits: Splits, cfg: TrainConfig = TrainConfig(),
                 log: Log | None = None) -> nn.Module:
    """Plain supervised training of one model (a standalone baseline, a fine-tune, or QAT)."""
    with threads(cfg.threads):
        return _train_module(module, splits, cfg, log)


def _train_module(module: nn.Module, splits: Splits, cfg: TrainConfig, log: Log | None) -> nn.Module:
    gen = seeded_generator(cfg)
    res = getattr(module, "input_resolution", None)
    steps = cfg.epochs * -(-len(splits.train) // cfg.batch_size)
    opt, sched = make_optimizer(module.parameters(), cfg, steps)
    for epoch in range(cfg.epochs):
        module.train()
        for xb, yb in batches(splits.train, cfg.batch_size, shuffle=True, gen=gen):
            xb = random_shift(xb, gen, cfg.augment_shift)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(module(resize(xb, res)), yb).backward()
            nn.utils.clip_grad_norm_(module.parameters(), 5.0)
            opt.step()
            sched.step()
        if log:
            log(f"epoch {epoch + 1}/{cfg.epochs}: val accuracy {accuracy(module, splits.val):.4f}")
    return module.eval()


@torch.no_grad()
def accuracy(module: nn.Module, split: Split, batch_size: int = 512) -> float:
    """Measured top-1 accuracy of ``module`` on ``split`` (resized to the module's input resolution)."""
    module.eval()
    res = getattr(module, "input_resolution", None)
    correct = 0
    for xb, yb in batches(split, batch_size):
        correct += int((module(resize(xb, res)).argmax(1) == yb).sum())
    return correct / max(1, len(split))
