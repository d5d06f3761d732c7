"""The FBNet search space in HW-NAS-Bench's CIFAR-100 setting: any row of its tables as a network.

HW-NAS-Bench (Li et al., ICLR 2021, arXiv 2103.10584) and HELP (Lee et al., NeurIPS 2021) publish
latencies of FBNet-space networks on many devices.  ``build_network(ops)`` rebuilds the torch
module of one row (22 op names, e.g. ``"k3_e6 skip ..."``) exactly as HW-NAS-Bench's
``FBNet_Infer`` defines it, so a row becomes ONNX -> Workload and the tables become calibration
and validation data for our device models.

HW-NAS-Bench did not measure whole FBNet networks: it measured every distinct block alone and a
network's figure is the sum of its blocks' entries (stem, 22 searchable blocks, header, pooling,
classifier; ``hw_nas_bench_api.fbnet_get_metrics``, and the maintainers' answer in issue #2 of
GATECH-EIC/HW-NAS-Bench).  ``lut_blocks(ops)`` returns those blocks as standalone modules, so a
model can be checked against the table under the protocol that produced it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from hwmodels.errors import CodesignError

OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
LAYERS_PER_STAGE = (1, 4, 4, 4, 4, 4, 1)
STAGE_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
STAGE_STRIDES = (1, 1, 2, 2, 1, 2, 1)     # CIFAR setting (ImageNet: 1, 2, 2, 2, 1, 2, 1)
STEM_CHANNELS = 16
HEADER_CHANNELS = 1504
RESOLUTION = 32
CLASSES = 100
N_LAYERS = sum(LAYERS_PER_STAGE)


@dataclass(frozen=True)
class LayerSlot:
    """Where one searchable layer sits: its input channels, output channels, stride, input size."""

    index: int
    c_in: int
    c_out: int
    stride: int
    size: int


@dataclass(frozen=True)
class BlockOp:
    kernel: int
    expand: int
    groups: int


def layer_slots() -> tuple[LayerSlot, ...]:
    out, c_in, size = [], STEM_CHANNELS, RESOLUTION
    for n, c_out, stride in zip(LAYERS_PER_STAGE, STAGE_CHANNELS, STAGE_STRIDES):
        for i in range(n):
            s = stride if i == 0 else 1
            out.append(LayerSlot(len(out), c_in, c_out, s, size))
            size //= s
            c_in = c_out
    return tuple(out)


def parse_op(name: str) -> BlockOp | None:
    """``k5_e3`` -> BlockOp(5, 3, 1); ``k3_e1_g2`` -> groups 2; ``skip`` -> None."""
    if name not in OPS:
        raise CodesignError(f"FBNet op {name!r} is not one of {', '.join(OPS)}")
    if name == "skip":
        return None
    k, e, *g = name.split("_")
    return BlockOp(int(k[1:]), int(e[1:]), int(g[0][1:]) if g else 1)


def parse_ops(ops) -> tuple[str, ...]:
    """A row's ops as names: a space-separated string, a list of names, or a list of indices."""
    items = ops.split() if isinstance(ops, str) else list(ops)
    names = tuple(OPS[int(o)] if not isinstance(o, str) or o.isdigit() else o for o in items)
    if len(names) != N_LAYERS:
        raise CodesignError(f"an FBNet architecture has {N_LAYERS} layers; got {len(names)}")
    for n in names:
        parse_op(n)
    return names


def _modules():
    """torch modules, defined lazily so that importing this file does not import torch."""
    import torch
    from torch import nn

    class ConvNorm(nn.Sequential):
        """conv -> BatchNorm -> ReLU (stem, header, and a skip layer that changes shape)."""

        def __init__(self, c_in, c_out, kernel=1, stride=1, padding=0):
            super().__init__(nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
                             nn.BatchNorm2d(c_out), nn.ReLU())

    class ChannelShuffle(nn.Module):
        def __init__(self, groups):
            super().__init__()
            self.groups = groups

        def forward(self, x):
            n, c, h, w = x.shape
            g = self.groups
            return x.view(n, g, c // g, h, w).permute(0, 2, 1, 3, 4).contiguous().view(n, c, h, w)

    class ConvBlock(nn.Module):
        """Inverted residual: 1x1 (groups g) -> [shuffle] -> KxK depthwise -> 1x1 (groups g) [+ x]."""

        def __init__(self, c_in, c_out, op: BlockOp, stride):
            super().__init__()
            hid = c_in * op.expand
            self.residual = c_in == c_out and stride == 1
            self.conv1 = nn.Conv2d(c_in, hid, 1, groups=op.groups, bias=False)
            self.bn1 = nn.BatchNorm2d(hid)
            self.shuffle = ChannelShuffle(op.groups) if op.groups > 1 else None
            pad = math.ceil((op.kernel - stride) / 2)
            self.conv2 = nn.Conv2d(hid, hid, op.kernel, stride, pad, groups=hid, bias=False)
            self.bn2 = nn.BatchNorm2d(hid)
            self.conv3 = nn.Conv2d(hid, c_out, 1, groups=op.groups, bias=False)
            self.bn3 = nn.BatchNorm2d(c_out)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            if self.shuffle is not None:
                y = self.shuffle(y)
            y = torch.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return y + x if self.residual else y

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.header = ConvNorm(STAGE_CHANNELS[-1], HEADER_CHANNELS)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(HEADER_CHANNELS, CLASSES)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.header(x)), 1))

    return ConvNorm, ConvBlock, Head


def block_module(slot: LayerSlot, op_name: str):
    """The torch module of one searchable layer (``nn.Identity`` for a shape-preserving skip)."""
    from torch import nn

    ConvNorm, ConvBlock, _ = _modules()
    op = parse_op(op_name)
    if op is not None:
        return ConvBlock(slot.c_in, slot.c_out, op, slot.stride)
    if slot.c_in == slot.c_out and slot.stride == 1:
        return nn.Identity()
    return ConvNorm(slot.c_in, slot.c_out, 1, slot.stride)


def build_network(ops):
    """The torch module of one FBNet architecture (input 1x3x32x32, 100 classes)."""
    from torch import nn

    ConvNorm, _, Head = _modules()
    names = parse_ops(ops)
    layers = [ConvNorm(3, STEM_CHANNELS, 3, 1, 1)]
    layers += [block_module(slot, name) for slot, name in zip(layer_slots(), names)]
    layers.append(Head())
    return _init(nn.Sequential(*layers))


def _init(net):
    """Deterministic weights and non-trivial BatchNorm statistics (folding is then exercised for real)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.1)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
    return net.eval()


def export_network(ops, path):
    """Export one architecture to ONNX (opset 17, BatchNorm folded as onnxruntime/TFLite would)."""
    import torch

    from codesign.frontends.torch_frontend import export_onnx

    return export_onnx(build_network(ops), torch.randn(1, 3, RESOLUTION, RESOLUTION), path)


def network_workload(ops, name: str | None = None):
    """Row -> torch module -> ONNX -> Workload."""
    import tempfile
    from pathlib import Path

    from codesign.frontends.onnx_frontend import load_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = export_network(ops, Path(tmp) / "fbnet.onnx")
        return load_onnx(path, name=name or "fbnet")


# --- HW-NAS-Bench's lookup-table protocol ------------------------------------------------------

@dataclass(frozen=True)
class LutEntry:
    """One entry of HW-NAS-Bench's FBNet lookup table: a block measured on its own."""

    key: str                     # the table's key, e.g. "ConvBlock_H32_W32_Cin16_Cout16_exp1_kernel3_stride1_group1"
    kind: str                    # ConvNorm | ConvBlock | Skip | AvgP | FC
    input_shape: tuple[int, ...]


def lut_entries(ops) -> list[LutEntry]:
    """The table entries whose sum is a network's figure, in order (``fbnet_get_metrics``)."""
    names = parse_ops(ops)
    r = RESOLUTION
    out = [LutEntry(f"ConvNorm_H{r}_W{r}_Cin3_Cout{STEM_CHANNELS}_kernel3_stride1_group1", "ConvNorm", (1, 3, r, r))]
    for slot, name in zip(layer_slots(), names):
        op = parse_op(name)
        hw = f"H{slot.size}_W{slot.size}_Cin{slot.c_in}_Cout{slot.c_out}"
        shape = (1, slot.c_in, slot.size, slot.size)
        if op is None:
            out.append(LutEntry(f"Skip_{hw}_stride{slot.stride}", "Skip", shape))
        else:
            out.append(LutEntry(f"ConvBlock_{hw}_exp{op.expand}_kernel{op.kernel}_stride{slot.stride}_group{op.groups}",
                                "ConvBlock", shape))
    last = layer_slots()[-1]
    s = last.size // last.stride
    c = STAGE_CHANNELS[-1]
    out.append(LutEntry(f"ConvNorm_H{s}_W{s}_Cin{c}_Cout{HEADER_CHANNELS}_kernel1_stride1_group1", "ConvNorm", (1, c, s, s)))
    out.append(LutEntry(f"AvgP_H{s}_W{s}_Cin{HEADER_CHANNELS}_Cout{HEADER_CHANNELS}_kernel{s}_stride1", "AvgP",
                        (1, HEADER_CHANNELS, s, s)))
    out.append(LutEntry(f"FC_Cin{HEADER_CHANNELS}_Cout{CLASSES}", "FC", (1, HEADER_CHANNELS)))
    return out


def entry_module(entry: LutEntry):
    """The standalone torch module HW-NAS-Bench measured for one table entry."""
    from torch import nn

    ConvNorm, _, _ = _modules()
    if entry.kind == "ConvNorm":
        c = entry.input_shape[1]
        k = 3 if c == 3 else 1
        cout = STEM_CHANNELS if c == 3 else HEADER_CHANNELS
        return _init(ConvNorm(c, cout, k, 1, k // 2))
    if entry.kind == "AvgP":
        return nn.AdaptiveAvgPool2d(1).eval()
    if entry.kind == "FC":
        return _init(nn.Linear(HEADER_CHANNELS, CLASSES))
    slot = _slot_of(entry)
    name = _op_of(entry)
    return _init(block_module(slot, name))


def _slot_of(entry: LutEntry) -> LayerSlot:
    for slot in layer_slots():
        if (1, slot.c_in, slot.size, slot.size) == entry.input_shape and f"Cout{slot.c_out}_" in entry.key \
                and f"stride{slot.stride}" in entry.key:
            return slot
    raise CodesignError(f"no FBNet layer matches table entry {entry.key}")


def _op_of(entry: LutEntry) -> str:
    if entry.kind == "Skip":
        return "skip"
    f = dict(re.findall(r"_(exp|kernel|group)(\d+)", entry.key))
    return f"k{f['kernel']}_e{f['exp']}" + ("_g2" if f["group"] == "2" else "")


@lru_cache(maxsize=None)
def entry_workload(entry: LutEntry):
    """One table entry as a Workload (an empty one for an identity skip: nothing runs)."""
    import tempfile
    from pathlib import Path

    import torch

    from codesign.frontends.onnx_frontend import load_onnx
    from codesign.frontends.torch_frontend import export_onnx
    from hwmodels.workload import Workload

    module = entry_module(entry)
    if isinstance(module, torch.nn.Identity):
        return Workload(entry.key)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(module, torch.randn(*entry.input_shape), Path(tmp) / "entry.onnx")
        return load_onnx(path, name=entry.key)


def lut_workloads(ops) -> list:
    """A row as HW-NAS-Bench measured it: one Workload per table entry (cached by entry)."""
    return [entry_workload(e) for e in lut_entries(ops)]
