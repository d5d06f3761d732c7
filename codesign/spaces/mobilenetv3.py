"""Elastic MobileNetV3-style space (Once-for-All style) and its weight-sharing supernet.

Choices: input resolution, a global width multiplier, per-stage depth, and per-block kernel
size and expand ratio.  The defaults follow OFA-MobileNetV3 (depth 2-4, kernel 3/5/7, expand
3/4/6) with channel counts and a stride-1 stem sized for small images; pass smaller choices for
CPU-sized experiments.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from codesign.spaces.base import Arch, ElasticNet, SearchSpace
from codesign.spaces.elastic import (ACTIVATIONS, ConvBNAct, ElasticBatchNorm2d, ElasticConv2d, ElasticLinear,
                                     MBBlock, SqueezeExcite, StaticNet, make_divisible)


class MobileNetV3Space(SearchSpace):
    """OFA-style elastic MobileNetV3: resolution x width x depth x kernel x expand."""

    name = "mobilenetv3"
    has_supernet = True

    def __init__(self, stem_channels: int = 16, first_channels: int = 16,
                 stage_channels: Sequence[int] = (24, 40, 80, 96), strides: Sequence[int] = (2, 2, 2, 1),
                 se: Sequence[bool] = (False, True, False, True),
                 acts: Sequence[str] = ("relu", "relu", "hswish", "hswish"), head_channels: int = 256,
                 depths: Sequence[int] = (2, 3, 4), kernels: Sequence[int] = (3, 5, 7),
                 expands: Sequence[int] = (3, 4, 6), widths: Sequence[float] = (0.75, 1.0),
                 resolutions: Sequence[int] = (16, 24, 32), stem_stride: int = 1):
        n = len(stage_channels)
        if not (len(strides) == len(se) == len(acts) == n):
            raise ValueError("stage_channels, strides, se and acts must have the same length")
        cfg = dict(stem_channels=stem_channels, first_channels=first_channels, stage_channels=list(stage_channels),
                   strides=list(strides), se=[bool(v) for v in se], acts=list(acts), head_channels=head_channels,
                   depths=list(depths), kernels=list(kernels), expands=list(expands), widths=list(widths),
                   resolutions=list(resolutions), stem_stride=stem_stride)
        params: dict[str, tuple] = {"resolution": tuple(resolutions), "width": tuple(widths)}
        for s in range(n):
            params[f"d{s}"] = tuple(depths)
            for b in range(max(depths)):
                params[f"k{s}_{b}"] = tuple(kernels)
                params[f"e{s}_{b}"] = tuple(expands)
        super().__init__(params, cfg)

    def active_params(self, arch: Arch) -> set[str]:
        act = {"resolution", "width"}
        for s in range(len(self.config["stage_channels"])):
            act.add(f"d{s}")
            for b in range(arch[f"d{s}"]):
                act |= {f"k{s}_{b}", f"e{s}_{b}"}
        return act

    def channels(self, base: int, width: float) -> int:
        return make_divisible(base * width, 8)

    def supernet(self, num_classes: int, in_channels: int, data_resolution: int) -> "MobileNetV3Supernet":
        return MobileNetV3Supernet(self, num_classes, in_channels, data_resolution)


class _ElasticMBBlock(nn.Module):
    """Inverted residual with elastic expand ratio, kernel and output width."""

    def __init__(self, in_max: int, out_max: int, kernels: Sequence[int], expands: Sequence[int], stride: int,
                 se: bool, act: str, residual: bool):
        super().__init__()
        self.expands, self.act_name, self.residual = tuple(expands), act, residual
        self.mid_max = make_divisible(in_max * max(expands), 8)
        if max(expands) > 1:
            self.expand = ElasticConv2d(in_max, self.mid_max, (1,))
            self.expand_bn = ElasticBatchNorm2d(self.mid_max)
        else:
            self.expand = self.expand_bn = None
        self.dw = ElasticConv2d(self.mid_max, self.mid_max, kernels, stride, depthwise=True)
        self.dw_bn = ElasticBatchNorm2d(self.mid_max)
        if se:
            self.se_max = make_divisible(self.mid_max // 4, 8)
            self.se1 = ElasticConv2d(self.mid_max, self.se_max, (1,), bias=True)
            self.se2 = ElasticConv2d(self.se_max, self.mid_max, (1,), bias=True)
        else:
            self.se1 = self.se2 = None
        self.project = ElasticConv2d(self.mid_max, out_max, (1,))
        self.project_bn = ElasticBatchNorm2d(out_max)
        self.act = ACTIVATIONS[act]()

    def _mid(self, in_c: int, e: int) -> int:
        return in_c if self.expand is None else min(self.mid_max, make_divisible(in_c * e, 8))

    def _se_c(self, mid: int) -> int:
        return min(self.se_max, make_divisible(mid // 4, 8))

    def forward(self, x: torch.Tensor, out_c: int, k: int, e: int) -> torch.Tensor:
        mid = self._mid(x.shape[1], e)
        y = self.act(self.expand_bn(self.expand(x, mid, 1))) if self.expand is not None else x
        y = self.act(self.dw_bn(self.dw(y, None, k)))
        if self.se1 is not None:
            s = F.relu(self.se1(F.adaptive_avg_pool2d(y, 1), self._se_c(mid), 1))
            y = y * F.hardsigmoid(self.se2(s, mid, 1))
        y = self.project_bn(self.project(y, out_c, 1))
        return x + y if self.residual else y

    def static(self, in_c: int, out_c: int, k: int, e: int) -> MBBlock:
        mid = self._mid(in_c, e)
        expand = (ConvBNAct(self.expand.static(in_c, mid, 1), self.expand_bn.static(mid), self.act_name)
                  if self.expand is not None else None)
        dw = ConvBNAct(self.dw.static(mid, mid, k), self.dw_bn.static(mid), self.act_name)
        se = None
        if self.se1 is not None:
            c = self._se_c(mid)
            se = SqueezeExcite(self.se1.static(mid, c, 1), self.se2.static(c, mid, 1))
        project = ConvBNAct(self.project.static(mid, out_c, 1), self.project_bn.static(out_c), None)
        return MBBlock(expand, dw, se, project, self.residual)


class MobileNetV3Supernet(ElasticNet):
    """The largest MobileNetV3 of the space; any arch runs on a slice of its weights."""

    def __init__(self, space: MobileNetV3Space, num_classes: int, in_channels: int, data_resolution: int):
        super().__init__(space, data_resolution)
        cfg = space.config
        wmax = max(cfg["widths"])
        self.in_channels, self.num_classes = in_channels, num_classes
        stem_max = space.channels(cfg["stem_channels"], wmax)
        self.stem = ElasticConv2d(in_channels, stem_max, (3,), cfg["stem_stride"])
        self.stem_bn = ElasticBatchNorm2d(stem_max)
        first_max = space.channels(cfg["first_channels"], wmax)
        self.first = _ElasticMBBlock(stem_max, first_max, (3,), (1,), 1, False, "relu",
                                     residual=cfg["stem_channels"] == cfg["first_channels"])
        self.stages = nn.ModuleList()
        in_base, in_max = cfg["first_channels"], first_max
        for s, base in enumerate(cfg["stage_channels"]):
            out_max = space.channels(base, wmax)
            blocks = nn.ModuleList()
            for b in range(max(cfg["depths"])):
                first = b == 0
                blocks.append(_ElasticMBBlock(
                    in_max if first else out_max, out_max, cfg["kernels"], cfg["expands"],
                    cfg["strides"][s] if first else 1, cfg["se"][s], cfg["acts"][s],
                    residual=not first or (cfg["strides"][s] == 1 and in_base == base)))
            self.stages.append(blocks)
            in_base, in_max = base, out_max
        head_max = space.channels(cfg["head_channels"], wmax)
        self.head = ElasticConv2d(in_max, head_max, (1,))
        self.head_bn = ElasticBatchNorm2d(head_max)
        self.head_act = nn.Hardswish()
        self.stem_act = nn.Hardswish()
        self.classifier = ElasticLinear(head_max, num_classes)

    def _widths(self, arch: Arch) -> tuple[int, int, list[int], int]:
        cfg, w, sp = self.space.config, arch["width"], self.space
        return (sp.channels(cfg["stem_channels"], w), sp.channels(cfg["first_channels"], w),
                [sp.channels(c, w) for c in cfg["stage_channels"]], sp.channels(cfg["head_channels"], w))

    def forward_arch(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        stem_c, first_c, stage_c, head_c = self._widths(arch)
        x = self.stem_act(self.stem_bn(self.stem(x, stem_c, 3)))
        x = self.first(x, first_c, 3, 1)
        for s, blocks in enumerate(self.stages):
            for b in range(arch[f"d{s}"]):
                x = blocks[b](x, stage_c[s], arch[f"k{s}_{b}"], arch[f"e{s}_{b}"])
        x = self.head_act(self.head_bn(self.head(x, head_c, 1)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def static(self, arch: Arch) -> StaticNet:
        stem_c, first_c, stage_c, head_c = self._widths(arch)
        stem = ConvBNAct(self.stem.static(self.in_channels, stem_c, 3), self.stem_bn.static(stem_c), "hswish")
        first = self.first.static(stem_c, first_c, 3, 1)
        stages: list[list[nn.Module]] = []
        in_c = first_c
        for s, stage in enumerate(self.stages):
            blocks = []
            for b in range(arch[f"d{s}"]):
                blocks.append(stage[b].static(in_c, stage_c[s], arch[f"k{s}_{b}"], arch[f"e{s}_{b}"]))
                in_c = stage_c[s]
            stages.append(blocks)
        head = ConvBNAct(self.head.static(in_c, head_c, 1), self.head_bn.static(head_c), "hswish")
        return StaticNet(stem, stages, head, self.classifier.static(head_c), arch["resolution"], arch, first=first)
