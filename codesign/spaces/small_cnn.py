"""A small ResNet-style space for small inputs (8x8 digits-like images), with its supernet.

Choices per stage: depth (blocks), width multiplier of the stage's base channels, and the
kernel size of each block.  Sized so that the whole supernet trains on a 2-core CPU in minutes.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from codesign.spaces.base import Arch, ElasticNet, SearchSpace
from codesign.spaces.elastic import (BasicBlock, ConvBNAct, ElasticBatchNorm2d, ElasticConv2d, ElasticLinear,
                                     StaticNet, make_divisible)


class SmallCNNSpace(SearchSpace):
    """ResNet-style: stem, then stages of basic blocks; elastic depth, per-stage width, per-block kernel."""

    name = "small-cnn"
    has_supernet = True

    def __init__(self, stem_channels: int = 16, stage_channels: Sequence[int] = (16, 32, 64),
                 strides: Sequence[int] = (1, 2, 2), depths: Sequence[int] = (1, 2, 3),
                 widths: Sequence[float] = (0.5, 0.75, 1.0), kernels: Sequence[int] = (3, 5)):
        cfg = dict(stem_channels=stem_channels, stage_channels=list(stage_channels), strides=list(strides),
                   depths=list(depths), widths=list(widths), kernels=list(kernels))
        params: dict[str, tuple] = {}
        for s in range(len(stage_channels)):
            params[f"d{s}"] = tuple(depths)
            params[f"w{s}"] = tuple(widths)
            for b in range(max(depths)):
                params[f"k{s}_{b}"] = tuple(kernels)
        super().__init__(params, cfg)

    def active_params(self, arch: Arch) -> set[str]:
        act = set()
        for s in range(len(self.config["stage_channels"])):
            act |= {f"d{s}", f"w{s}"} | {f"k{s}_{b}" for b in range(arch[f"d{s}"])}
        return act

    def stage_width(self, arch: Arch, s: int) -> int:
        return make_divisible(self.config["stage_channels"][s] * arch[f"w{s}"], 4)

    def supernet(self, num_classes: int, in_channels: int, data_resolution: int) -> "SmallCNNSupernet":
        return SmallCNNSupernet(self, num_classes, in_channels, data_resolution)


class _ElasticBasicBlock(nn.Module):
    def __init__(self, in_max: int, out_max: int, kernels: Sequence[int], stride: int, project: bool):
        super().__init__()
        self.conv1 = ElasticConv2d(in_max, out_max, kernels, stride)
        self.bn1 = ElasticBatchNorm2d(out_max)
        self.conv2 = ElasticConv2d(out_max, out_max, kernels, 1)
        self.bn2 = ElasticBatchNorm2d(out_max)
        self.proj = ElasticConv2d(in_max, out_max, (1,), stride) if project else None
        self.proj_bn = ElasticBatchNorm2d(out_max) if project else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, out_c: int, k: int) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x, out_c, k)))
        y = self.bn2(self.conv2(y, out_c, k))
        s = self.proj_bn(self.proj(x, out_c, 1)) if self.proj is not None else x
        return self.relu(y + s)

    def static(self, in_c: int, out_c: int, k: int) -> BasicBlock:
        c1 = ConvBNAct(self.conv1.static(in_c, out_c, k), self.bn1.static(out_c), "relu")
        c2 = ConvBNAct(self.conv2.static(out_c, out_c, k), self.bn2.static(out_c), None)
        sc = (ConvBNAct(self.proj.static(in_c, out_c, 1), self.proj_bn.static(out_c), None)
              if self.proj is not None else None)
        return BasicBlock(c1, c2, sc)


class SmallCNNSupernet(ElasticNet):
    """Weight-sharing supernet of ``SmallCNNSpace``: the largest network, sliced per arch."""

    def __init__(self, space: SmallCNNSpace, num_classes: int, in_channels: int, data_resolution: int):
        super().__init__(space, data_resolution)
        cfg = space.config
        self.in_channels, self.num_classes = in_channels, num_classes
        self.stem = ElasticConv2d(in_channels, cfg["stem_channels"], (3,), 1)
        self.stem_bn = ElasticBatchNorm2d(cfg["stem_channels"])
        self.stages = nn.ModuleList()
        in_max = cfg["stem_channels"]
        for s, (c, stride) in enumerate(zip(cfg["stage_channels"], cfg["strides"])):
            out_max = make_divisible(c * max(cfg["widths"]), 4)
            blocks = nn.ModuleList(
                _ElasticBasicBlock(in_max if b == 0 else out_max, out_max, cfg["kernels"], stride if b == 0 else 1,
                                   project=b == 0) for b in range(max(cfg["depths"])))
            self.stages.append(blocks)
            in_max = out_max
        self.classifier = ElasticLinear(in_max, num_classes)
        self.relu = nn.ReLU()

    def forward_arch(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        x = self.relu(self.stem_bn(self.stem(x)))
        for s, blocks in enumerate(self.stages):
            c = self.space.stage_width(arch, s)
            for b in range(arch[f"d{s}"]):
                x = blocks[b](x, c, arch[f"k{s}_{b}"])
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    def static(self, arch: Arch) -> StaticNet:
        stem_c = self.space.config["stem_channels"]
        stem = ConvBNAct(self.stem.static(self.in_channels, stem_c, 3), self.stem_bn.static(stem_c), "relu")
        stages, in_c = [], stem_c
        for s, stage in enumerate(self.stages):
            c = self.space.stage_width(arch, s)
            blocks = []
            for b in range(arch[f"d{s}"]):
                blocks.append(stage[b].static(in_c, c, arch[f"k{s}_{b}"]))
                in_c = c
            stages.append(blocks)
        return StaticNet(stem, stages, None, self.classifier.static(in_c), self.data_resolution, arch)
