"""A NAS-Bench-201-like cell space: the family of networks with cells, pooling and skip connections.

NAS-Bench-201 (Dong & Yang, ICLR 2020) builds a network from a stem, three stages of ``n`` cells
(``c``, 2c, 4c channels) with a residual reduction block between stages, and a classifier.  A
cell is a DAG of 4 nodes; each of the 6 edges i -> j (i < j) carries one operation from
``OPS`` and a node is the sum of its incoming edges.  The cell, shared by every position of
the network, is the architecture: 5^6 = 15,625 of them.  The device models are fitted on
other families and checked on this one, so that a model that only memorised the FBNet space
shows.

``sample(rng)`` draws an architecture (a tuple of 6 op names, edge order 1<-0, 2<-0, 2<-1,
3<-0, 3<-1, 3<-2), ``arch_str`` writes it in NAS-Bench-201's notation, ``build(arch)``
returns the torch module, ``export(arch, path)`` the ONNX file.
"""
from __future__ import annotations

import numpy as np

from hwmodels.errors import CodesignError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))      # (to, from)


def sample(rng: np.random.Generator | int | None = None) -> tuple[str, ...]:
    """A random cell whose output depends on its input (not every edge into node 3 is 'none')."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    while True:
        arch = tuple(OPS[int(i)] for i in rng.integers(len(OPS), size=len(EDGES)))
        if _connected(arch):
            return arch


def _connected(arch) -> bool:
    live = {0}
    for (to, frm), op in zip(EDGES, arch):
        if op != "none" and frm in live:
            live.add(to)
    return 3 in live


def arch_str(arch) -> str:
    """NAS-Bench-201's notation, e.g. ``|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...|``."""
    parts, node = [], []
    for (to, frm), op in zip(EDGES, arch):
        node.append(f"{op}~{frm}")
        if frm == to - 1:
            parts.append("|" + "|".join(node) + "|")
            node = []
    return "+".join(parts)


def _check(arch) -> tuple[str, ...]:
    arch = tuple(arch)
    if len(arch) != len(EDGES) or any(op not in OPS for op in arch):
        raise CodesignError(f"a cell is {len(EDGES)} ops from {', '.join(OPS)}; got {arch!r}")
    return arch


def build(arch, channels: int = 16, cells_per_stage: int = 5, classes: int = 10):
    """The torch module (NAS-Bench-201's TinyNetwork layout) for one cell."""
    import torch
    from torch import nn

    arch = _check(arch)

    class ReLUConvBN(nn.Sequential):
        def __init__(self, c_in, c_out, k, stride):
            super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out))

    class Zero(nn.Module):
        def forward(self, x):
            return x.mul(0.0)

    def edge(op, c):
        return {"none": Zero, "skip_connect": nn.Identity,
                "nor_conv_1x1": lambda: ReLUConvBN(c, c, 1, 1), "nor_conv_3x3": lambda: ReLUConvBN(c, c, 3, 1),
                "avg_pool_3x3": lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False)}[op]()

    class Cell(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.ops = nn.ModuleList(edge(op, c) for op in arch)

        def forward(self, x):
            nodes = [x]
            for j in (1, 2, 3):
                terms = [self.ops[i](nodes[frm]) for i, (to, frm) in enumerate(EDGES)
                         if to == j and arch[i] != "none"]
                nodes.append(sum(terms[1:], terms[0]) if terms else nodes[0].mul(0.0))
            return nodes[3]

    class Reduction(nn.Module):
        """NAS-Bench-201's ResNet basic block with stride 2 between stages."""

        def __init__(self, c_in, c_out):
            super().__init__()
            self.a = ReLUConvBN(c_in, c_out, 3, 2)
            self.b = ReLUConvBN(c_out, c_out, 3, 1)
            self.down = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

        def forward(self, x):
            return self.b(self.a(x)) + self.down(x)

    layers = [nn.Sequential(nn.Conv2d(3, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))]
    c = channels
    for stage in range(3):
        if stage:
            layers.append(Reduction(c, 2 * c))
            c *= 2
        layers += [Cell(c) for _ in range(cells_per_stage)]
    layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    net = nn.Sequential(*layers)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
    return net.eval()


def export(arch, path, channels: int = 16, cells_per_stage: int = 5, resolution: int = 32):
    import torch

    from codesign.frontends.torch_frontend import export_onnx

    net = build(arch, channels, cells_per_stage)
    return export_onnx(net, torch.randn(1, 3, resolution, resolution), path)
