"""Per-layer fake quantization: evaluate any (network, bit map) on held-out data, measure sensitivity, QAT.

A bit map is ``{layer_name: (w_bits, a_bits)}`` over the model's Conv2d / Linear layers
(``layer_names_for_bits``); bits are in {2, 4, 8, 16, 32} and 32 means floating point.
Weights: per-output-channel symmetric integers, clipping range searched for least squared
error.  Activations (each layer's input): per-tensor asymmetric integers, range calibrated on
held-out images (least squared error over clipping ratios).  Training through the quantizers
uses the straight-through estimator.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from codesign.data import Split, Splits, resize
from hwmodels import bits as hwbits
from hwmodels.errors import CodesignError

VALID_BITS = hwbits.VALID_BITS
FP = hwbits.FLOAT_BITS
BitMap = dict[str, tuple[int, int]]
_CLIP_RATIOS = torch.linspace(0.3, 1.0, 15)


# ----- bit maps ------------------------------------------------------------------------------------

def layer_names_for_bits(module: nn.Module) -> list[str]:
    """Names of the layers a bit map may assign (Conv2d and Linear), in execution-definition order."""
    return [n for n, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and n]


def uniform_bits(module: nn.Module, w_bits: int, a_bits: int) -> BitMap:
    """The same (w_bits, a_bits) for every layer."""
    return {n: (int(w_bits), int(a_bits)) for n in layer_names_for_bits(module)}


def parse_bits(spec: str | Mapping | Path, module: nn.Module) -> BitMap:
    """``fp``, ``w8a8``/``w4a8``... for all layers, a dict, or a .json/.toml map (``hwmodels.bits.parse_bits``)."""
    names = layer_names_for_bits(module)
    assignment = hwbits.parse_bits(spec, names, where="bit map")
    return to_bit_map(assignment, names)


def to_bit_map(assignment: hwbits.BitAssignment, names: Iterable[str]) -> BitMap:
    """A ``BitAssignment`` over ``names`` as {layer: (w_bits, a_bits)}."""
    return {n: (assignment.for_layer(n).weight, assignment.for_layer(n).activation) for n in names}


def parse_bit_pair(v: object, where: str) -> tuple[int, int]:
    """One (w_bits, a_bits) from "w8a8", "fp" or [8, 8] (``hwmodels.bits.parse_bit_pair``)."""
    b = hwbits.parse_bit_pair(v, where)
    return b.weight, b.activation


def sample_bit_map(module: nn.Module, rng, choices: Iterable[int] = VALID_BITS,
                   act_choices: Iterable[int] | None = None) -> BitMap:
    """A random per-layer bit map over ``choices`` (the quantization half of a search candidate)."""
    import numpy as np

    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    w_opts = sorted(set(int(b) for b in choices))
    a_opts = sorted(set(int(b) for b in (act_choices or w_opts)))
    return {n: (int(rng.choice(w_opts)), int(rng.choice(a_opts))) for n in layer_names_for_bits(module)}


def check_supported(bit_map: Mapping[str, tuple[int, int]], supported: Iterable[int], target: str = "target") -> None:
    """Raise naming the first layer whose weight or activation bit-width the target cannot run."""
    ok = set(int(b) for b in supported)
    for layer, (w, a) in bit_map.items():
        for kind, b in (("weight", w), ("activation", a)):
            if b not in ok:
                where = "all layers" if layer == "*" else f"layer {layer}"
                raise CodesignError(f"{where}: {kind} bit-width {b} is not supported by {target} "
                                    f"(supported: {', '.join(map(str, sorted(ok)))})")


# ----- quantizers ----------------------------------------------------------------------------------

def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward q, backward identity (straight-through estimator)."""
    return x + (q - x).detach()


def quantize_weight(w: torch.Tensor, bits: int, search: bool = True) -> torch.Tensor:
    """Per-output-channel symmetric fake quantization; clip ratio chosen per channel for least error."""
    if bits >= FP:
        return w
    qmax = 2 ** (bits - 1) - 1
    flat = w.detach().reshape(w.shape[0], -1)
    amax = flat.abs().amax(1).clamp_min(1e-8)
    if search:
        best_err, best = None, amax
        for r in _CLIP_RATIOS:
            s = (amax * r / qmax)[:, None]
            err = ((torch.clamp(torch.round(flat / s), -qmax, qmax) * s - flat) ** 2).sum(1)
            if best_err is None:
                best_err, best = err, amax * r
            else:
                better = err < best_err
                best_err, best = torch.where(better, err, best_err), torch.where(better, amax * r, best)
        amax = best
    scale = (amax / qmax).reshape(-1, *([1] * (w.dim() - 1)))
    return _ste(w, torch.clamp(torch.round(w / scale), -qmax, qmax) * scale)


def _act_qparams(sample: torch.Tensor, bits: int) -> tuple[float, float]:
    """(scale, zero_point) of an asymmetric per-tensor quantizer with the least squared error on ``sample``."""
    lo, hi = float(sample.min().clamp(max=0)), float(sample.max().clamp(min=0))
    levels = 2 ** bits - 1
    best = None
    for r in _CLIP_RATIOS.tolist():
        l, h = lo * r, hi * r
        scale = max((h - l) / levels, 1e-8)
        zp = round(-l / scale)
        q = (torch.clamp(torch.round(sample / scale) + zp, 0, levels) - zp) * scale
        err = float(((q - sample) ** 2).mean())
        if best is None or err < best[0]:
            best = (err, scale, float(zp))
    return best[1], best[2]


class FakeQuantLayer(nn.Module):
    """Wraps a Conv2d/Linear: fake-quantizes its input activation and its weights."""

    def __init__(self, layer: nn.Module, w_bits: int, a_bits: int):
        super().__init__()
        self.layer, self.w_bits, self.a_bits = layer, int(w_bits), int(a_bits)
        self.register_buffer("a_scale", torch.tensor(0.0))
        self.register_buffer("a_zero_point", torch.tensor(0.0))
        self.calibrating = False
        self._samples: list[torch.Tensor] = []

    def calibrate(self) -> None:
        if self.a_bits < FP and self._samples:
            scale, zp = _act_qparams(torch.cat(self._samples), self.a_bits)
            self.a_scale.fill_(scale)
            self.a_zero_point.fill_(zp)
        self._samples = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            flat = x.detach().flatten()
            self._samples.append(flat[:: max(1, flat.numel() // 20000)])  # deterministic subsample
        elif self.a_bits < FP and float(self.a_scale) > 0:
            levels, s, zp = 2 ** self.a_bits - 1, self.a_scale, self.a_zero_point
            x = _ste(x, (torch.clamp(torch.round(x / s) + zp, 0, levels) - zp) * s)
        w = quantize_weight(self.layer.weight, self.w_bits)
        if isinstance(self.layer, nn.Conv2d):
            lay = self.layer
            return F.conv2d(x, w, lay.bias, lay.stride, lay.padding, lay.dilation, lay.groups)
        return F.linear(x, w, self.layer.bias)


def quantize_model(module: nn.Module, bit_map: Mapping[str, tuple[int, int]], calib_x: torch.Tensor,
                   batch_size: int = 256) -> nn.Module:
    """A fake-quantized copy of ``module`` with activation ranges calibrated on ``calib_x`` (held-out images)."""
    q = copy.deepcopy(module).eval()
    names = set(layer_names_for_bits(q))
    unknown = sorted(set(bit_map) - names)
    if unknown:
        raise CodesignError(f"bit map names layer(s) not in the model: {', '.join(unknown[:5])}")
    wrappers = []
    for name, (w, a) in bit_map.items():
        parse_bit_pair([int(w), int(a)], name)
        if w >= FP and a >= FP:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = q.get_submodule(parent_name) if parent_name else q
        wrapper = FakeQuantLayer(getattr(parent, child), w, a)
        setattr(parent, child, wrapper)
        wrappers.append(wrapper)
    if any(wr.a_bits < FP for wr in wrappers):
        res = getattr(module, "input_resolution", None)
        for wr in wrappers:
            wr.calibrating = True
        with torch.no_grad():
            for i in range(0, len(calib_x), batch_size):
                q(resize(calib_x[i:i + batch_size], res))
        for wr in wrappers:
            wr.calibrating = False
            wr.calibrate()
    return q


def evaluate_accuracy(module: nn.Module, data: Split | Splits, bits: str | Mapping | None = None,
                      calib_x: torch.Tensor | None = None) -> float:
    """Measured accuracy; with ``bits`` the model is fake-quantized, activations calibrated on ``calib_x``.

    ``data`` is one ``Split``, or ``Splits`` (then: test part measured, val part calibrates).
    """
    from codesign.training import accuracy

    if isinstance(data, Splits):
        calib_x = data.val.x[:256] if calib_x is None else calib_x
        data = data.test
    if bits is None:
        return accuracy(module, data)
    bit_map = parse_bits(bits, module) if not _is_bitmap(bits) else dict(bits)
    if calib_x is None and any(a < FP for _, a in bit_map.values()):
        raise CodesignError("activation quantization needs calibration images (calib_x)")
    return accuracy(quantize_model(module, bit_map, calib_x if calib_x is not None else torch.empty(0)), data)


def _is_bitmap(bits) -> bool:
    return isinstance(bits, Mapping) and all(isinstance(v, tuple) for v in bits.values())


def layer_sensitivity(module: nn.Module, splits: Splits, bits: int = 2, quantize: str = "weight",
                      calib_images: int = 256) -> dict[str, float]:
    """Accuracy drop (points of val accuracy) when only one layer goes to ``bits``, the rest floating point.

    ``quantize`` is ``weight``, ``activation`` or ``both``.  Larger drop = more sensitive layer.
    """
    from codesign.training import accuracy

    base = accuracy(module, splits.val)
    calib = splits.val.x[:calib_images]
    out = {}
    for name in layer_names_for_bits(module):
        w = bits if quantize in ("weight", "both") else FP
        a = bits if quantize in ("activation", "both") else FP
        out[name] = 100.0 * (base - accuracy(quantize_model(module, {name: (w, a)}, calib), splits.val))
    return out


def qat_finetune(module: nn.Module, bit_map: Mapping[str, tuple[int, int]], splits: Splits, epochs: int = 3,
                 lr: float = 5e-4, seed: int = 0) -> nn.Module:
    """Short quantization-aware fine-tune (straight-through estimator); returns the fake-quantized model."""
    from codesign.training import TrainConfig, train_module

    q = quantize_model(module, bit_map, splits.val.x[:256])
    q.input_resolution = getattr(module, "input_resolution", None)
    train_module(q, splits, TrainConfig(epochs=epochs, lr=lr, seed=seed, augment_shift=0))
    return q.eval()


def quant_params(qmodel: nn.Module) -> dict[str, dict[str, float | int]]:
    """Bits and activation scale/zero-point per quantized layer (what a QDQ exporter needs)."""
    out = {}
    for name, m in qmodel.named_modules():
        if isinstance(m, FakeQuantLayer):
            out[name] = {"w_bits": m.w_bits, "a_bits": m.a_bits, "a_scale": float(m.a_scale),
                         "a_zero_point": float(m.a_zero_point)}
    return out


def supported_bits(target_name_or_path: str) -> list[int]:
    """Bit-widths a target runs natively, from its ``peak_gmacs`` precisions (``hwmodels.bits.native_bits``)."""
    from hwmodels.targets import load_target

    return hwbits.native_bits(load_target(target_name_or_path).precisions)
