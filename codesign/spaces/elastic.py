"""Elastic (weight-sharing) layers and the plain layers that sub-networks are extracted into.

An elastic layer holds the weights of its largest version; a smaller version uses the first
channels and the centre of the kernel (through a learned kernel transform, as in Once-for-All),
so every sub-network shares one set of weights.  ``static(...)`` copies the active slice into
ordinary ``nn.Conv2d`` / ``nn.BatchNorm2d`` / ``nn.Linear`` modules: an extracted sub-network is
a standalone torch model that exports to ONNX and knows nothing of the supernet.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = {"relu": nn.ReLU, "hswish": nn.Hardswish}


def make_divisible(v: float, divisor: int = 4, min_value: int | None = None) -> int:
    """Round channel counts to a multiple of ``divisor`` (hardware-friendly), never below 90 %."""
    min_value = min_value or divisor
    new = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ElasticConv2d(nn.Module):
    """Conv2d whose in/out channels and kernel size are chosen per forward call."""

    def __init__(self, in_max: int, out_max: int, kernels: Sequence[int] = (3,), stride: int = 1,
                 depthwise: bool = False, bias: bool = False):
        super().__init__()
        self.kernels = tuple(sorted(set(kernels), reverse=True))
        self.kmax = self.kernels[0]
        self.stride, self.depthwise = stride, depthwise
        self.weight = nn.Parameter(torch.empty(out_max, 1 if depthwise else in_max, self.kmax, self.kmax))
        self.bias = nn.Parameter(torch.zeros(out_max)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        # OFA kernel transform: each smaller kernel is a learned linear map of the larger one's centre.
        self.ktrans = nn.ParameterDict({str(k): nn.Parameter(torch.eye(k * k)) for k in self.kernels[1:]})

    def active_weight(self, in_c: int, out_c: int, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        w = self.weight[:in_c] if self.depthwise else self.weight[:out_c, :in_c]
        cur = self.kmax
        for k2 in self.kernels[1:]:
            if k2 < k:
                break
            o = (cur - k2) // 2
            w = w[:, :, o:o + k2, o:o + k2]
            shape = w.shape
            w = (w.reshape(-1, k2 * k2) @ self.ktrans[str(k2)]).reshape(shape)
            cur = k2
        n_out = in_c if self.depthwise else out_c
        return w, (self.bias[:n_out] if self.bias is not None else None)

    def forward(self, x: torch.Tensor, out_c: int | None = None, k: int | None = None) -> torch.Tensor:
        in_c, k = x.shape[1], k or self.kmax
        w, b = self.active_weight(in_c, out_c or self.weight.shape[0], k)
        return F.conv2d(x, w, b, self.stride, k // 2, 1, in_c if self.depthwise else 1)

    def static(self, in_c: int, out_c: int, k: int | None = None) -> nn.Conv2d:
        k = k or self.kmax
        w, b = self.active_weight(in_c, out_c, k)
        n_out = in_c if self.depthwise else out_c
        conv = nn.Conv2d(in_c, n_out, k, self.stride, k // 2, groups=in_c if self.depthwise else 1,
                         bias=b is not None)
        with torch.no_grad():
            conv.weight.copy_(w)
            if b is not None:
                conv.bias.copy_(b)
        return conv


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first C channels; statistics are re-calibrated per sub-network on extraction."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training, self.momentum, self.eps)

    def static(self, c: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(c, eps=self.eps, momentum=self.momentum)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn, name).copy_(getattr(self, name)[:c])
        return bn


class ElasticLinear(nn.Linear):
    """Linear layer over the first ``in_features`` inputs (the classifier after an elastic width)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight[:, : x.shape[1]], self.bias)

    def static(self, in_f: int) -> nn.Linear:
        lin = nn.Linear(in_f, self.out_features)
        with torch.no_grad():
            lin.weight.copy_(self.weight[:, :in_f])
            lin.bias.copy_(self.bias)
        return lin


# ----- plain modules that extracted sub-networks are made of --------------------------------------

class ConvBNAct(nn.Module):
    """conv -> batchnorm -> activation, with stable names (``.conv``) for per-layer bit maps."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, act: str | None):
        super().__init__()
        self.conv, self.bn = conv, bn
        self.act = ACTIVATIONS[act]() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """MobileNetV3 squeeze-and-excitation: channel gates from global context."""

    def __init__(self, fc1: nn.Conv2d, fc2: nn.Conv2d):
        super().__init__()
        self.fc1, self.act, self.fc2, self.gate = fc1, nn.ReLU(), fc2, nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class MBBlock(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise, optional SE, 1x1 project, residual if shapes match."""

    def __init__(self, expand: ConvBNAct | None, dw: ConvBNAct, se: SqueezeExcite | None, project: ConvBNAct,
                 residual: bool):
        super().__init__()
        self.expand, self.dw, self.se, self.project, self.residual = expand, dw, se, project, residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.dw(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class BasicBlock(nn.Module):
    """ResNet basic block: two kxk convs plus an identity or 1x1 projection shortcut."""

    def __init__(self, conv1: ConvBNAct, conv2: ConvBNAct, shortcut: ConvBNAct | None):
        super().__init__()
        self.conv1, self.conv2, self.shortcut, self.act = conv1, conv2, shortcut, nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.shortcut(x) if self.shortcut is not None else x
        return self.act(self.conv2(self.conv1(x)) + s)


class StaticNet(nn.Module):
    """An extracted sub-network: stem, optional fixed first block, stages of blocks, head, pooled classifier.

    Layer names are stable across sub-networks (``stages.<stage>.<block>...``): a layer keeps its
    name whatever the depth of earlier stages, so a per-layer bit map means the same layer in every
    architecture.  ``input_resolution`` is the image side the network expects (evaluation resizes to it).
    """

    def __init__(self, stem: nn.Module, stages: list[list[nn.Module]], head: nn.Module | None, classifier: nn.Linear,
                 input_resolution: int, arch: dict, first: nn.Module | None = None):
        super().__init__()
        self.stem = stem
        self.first = first if first is not None else nn.Identity()
        self.stages = nn.ModuleList(nn.Sequential(*blocks) for blocks in stages)
        self.head = head if head is not None else nn.Identity()
        self.classifier = classifier
        self.input_resolution = int(input_resolution)
        self.arch = dict(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        x = self.head(x)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def reset_parameters(module: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise every layer (used to train an extracted architecture from scratch)."""
    torch.manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()
        elif isinstance(m, nn.Linear):
            m.reset_parameters()
    return module


@torch.no_grad()
def recalibrate_bn(module: nn.Module, x: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """Recompute BatchNorm statistics of a sub-network on training images (weights are shared, stats are not)."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or x is None or len(x) == 0:
        return module
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    was_training = module.training
    module.train()
    for i in range(0, len(x), batch_size):
        module(x[i:i + batch_size])
    for m, mom in saved:
        m.momentum = mom
    module.train(was_training)
    return module
