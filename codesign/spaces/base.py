"""The search-space contract the joint search calls: sample, encode, build, supernet.

An architecture (``arch``) is a plain JSON-able dict ``{param: value}``; every value is one of
the options declared in ``space.params``.  Spaces with a weight-sharing supernet return an
``ElasticNet`` whose ``extract(arch)`` gives a standalone ``nn.Module``.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn as nn

from codesign.data import resize
from hwmodels.errors import CodesignError
from codesign.spaces.elastic import recalibrate_bn, reset_parameters

Arch = dict[str, Any]


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class SearchSpace(ABC):
    """A named set of discrete choices and a way to turn one choice into a torch model."""

    name: str = "space"
    has_supernet: bool = False

    def __init__(self, params: Mapping[str, tuple], config: Mapping[str, Any] | None = None):
        self.params: dict[str, tuple] = {k: tuple(v) for k, v in params.items()}
        self.config: dict[str, Any] = dict(config or {})

    # ----- choices ---------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator | int | None = None) -> Arch:
        """Uniformly random architecture."""
        rng = as_rng(rng)
        return {k: _py(opts[int(rng.integers(len(opts)))]) for k, opts in self.params.items()}

    def largest(self) -> Arch:
        """Biggest option of every parameter (top of the sandwich rule)."""
        return {k: _py(_ordered(opts)[-1]) for k, opts in self.params.items()}

    def smallest(self) -> Arch:
        """Smallest option of every parameter (bottom of the sandwich rule)."""
        return {k: _py(_ordered(opts)[0]) for k, opts in self.params.items()}

    def active_params(self, arch: Arch) -> set[str]:
        """Params that change the network (e.g. kernel of a block beyond the stage depth does not)."""
        return set(self.params)

    def validate(self, arch: Mapping[str, Any]) -> Arch:
        """Check an arch against the declared choices; missing params take the largest option."""
        unknown = sorted(set(arch) - set(self.params))
        if unknown:
            raise CodesignError(f"space {self.name}: unknown parameter(s) {', '.join(unknown)} "
                                f"(known: {', '.join(self.params)})")
        out = self.largest()
        for k, v in arch.items():
            if v not in self.params[k]:
                raise CodesignError(f"space {self.name}: {k}={v!r} is not one of {list(self.params[k])}")
            out[k] = _py(v)
        return out

    def key(self, arch: Arch) -> str:
        """Canonical string of the network an arch denotes (inactive params dropped): dedupes candidates."""
        active = self.active_params(arch)
        return json.dumps({k: v for k, v in sorted(arch.items()) if k in active})

    def encode(self, arch: Arch) -> np.ndarray:
        """Fixed-length vector in [0, 1] (option index / (n-1)); inactive params encode as 0."""
        active = self.active_params(arch)
        vec = []
        for k, opts in self.params.items():
            if len(opts) < 2:
                continue
            ordered = _ordered(opts)
            vec.append(ordered.index(arch[k]) / (len(opts) - 1) if k in active else 0.0)
        return np.asarray(vec, dtype=np.float64)

    def resolution(self, arch: Arch) -> int | None:
        """Input side the arch expects; None means the dataset's own resolution."""
        r = arch.get("resolution")
        return int(r) if r is not None else None

    # ----- models ----------------------------------------------------------------------------------
    def supernet(self, num_classes: int, in_channels: int, data_resolution: int) -> "ElasticNet":
        raise CodesignError(f"space {self.name} has no weight-sharing supernet; train each candidate "
                            "on its own (codesign evaluate without --checkpoint)")

    def build(self, arch: Arch, num_classes: int, in_channels: int, data_resolution: int,
              seed: int = 0) -> nn.Module:
        """A freshly initialised standalone model of ``arch`` (for training from scratch)."""
        arch = self.validate(arch)
        torch.manual_seed(seed)
        net = self.supernet(num_classes, in_channels, data_resolution)
        return reset_parameters(net.extract(arch), seed)

    def input_shape(self, arch: Arch, in_channels: int, data_resolution: int) -> tuple[int, int, int, int]:
        r = self.resolution(arch) or data_resolution
        return (1, in_channels, r, r)

    def describe(self) -> str:
        n = int(np.prod([len(v) for v in self.params.values()], dtype=np.float64))
        return f"{self.name}: {len(self.params)} parameters, {n:.3g} raw combinations"


class ElasticNet(nn.Module, ABC):
    """A weight-sharing supernet: forward any arch of its space, extract any arch as a plain model."""

    def __init__(self, space: SearchSpace, data_resolution: int):
        super().__init__()
        self.space = space
        self.data_resolution = int(data_resolution)
        self.active: Arch = space.largest()

    def set_active(self, arch: Arch) -> None:
        self.active = self.space.validate(arch)

    def forward(self, x: torch.Tensor, arch: Arch | None = None) -> torch.Tensor:
        return self.forward_arch(x, self.active if arch is None else arch)

    @abstractmethod
    def forward_arch(self, x: torch.Tensor, arch: Arch) -> torch.Tensor: ...

    @abstractmethod
    def static(self, arch: Arch) -> nn.Module:
        """Copy the active weights of ``arch`` into a plain standalone module."""

    @torch.no_grad()
    def extract(self, arch: Arch, calib_x: torch.Tensor | None = None) -> nn.Module:
        """Standalone sub-network with shared weights; BatchNorm re-calibrated on ``calib_x`` if given."""
        arch = self.space.validate(arch)
        net = self.static(arch)
        if calib_x is not None:
            recalibrate_bn(net, resize(calib_x, net.input_resolution))
        return net.eval()


def _ordered(opts: tuple) -> list:
    """Options in increasing order when comparable (numbers), else in declared order."""
    try:
        return sorted(opts)
    except TypeError:
        return list(opts)


def _py(v: Any) -> Any:
    """numpy scalars -> Python scalars so that archs are JSON-able."""
    return v.item() if isinstance(v, np.generic) else v
