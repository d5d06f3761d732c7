"""A bit-width parametrisation a search can handle: layers grouped, each group one (w, a) choice.

Per-layer bits give a search ~2 genes per conv/linear layer (46 for the digits space), far too
many for tens of measured evaluations.  HAWQ (Dong et al., ICCV 2019) orders layers by their
measured sensitivity and gives the sensitive ones more bits; here the layers are grouped:

- ``network``: one (w, a) for every layer;
- ``stage``: one per stage of the space (``stem``, ``stages.0``, ..., ``classifier``);
- ``sensitivity`` (default): layers sorted by measured sensitivity and cut into ``groups``
  groups whose sizes grow 1 : 2 : 4 ... (the few most sensitive layers alone in the first), so
  a search can keep the layers that matter wide and narrow the rest;
- ``layer``: one per layer (per-layer bits stay reachable).

Sensitivity is measured, never assumed: the validation-accuracy drop when one layer's weights
(or input activations) alone go to 2 bits, on the largest sub-network.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwmodels.errors import CodesignError

GRANULARITIES = ("network", "stage", "sensitivity", "layer")


@dataclass
class Sensitivity:
    """Accuracy drop (points) per layer slot when its weights / activations alone go to ``bits``."""

    weight: dict[str, float]
    activation: dict[str, float]
    bits: int
    evaluations: int           # measured accuracy evaluations it took (setup, shared by all strategies)

    def total(self, slot: str) -> float:
        return max(self.weight.get(slot, 0.0), 0.0) + max(self.activation.get(slot, 0.0), 0.0)


def measure_sensitivity(module, splits, slots: list[str], bits: int = 2, calib_images: int = 256) -> Sensitivity:
    """Drop in val accuracy when only one slot is quantized (weights, then activations) to ``bits``.

    Calibrated on training images and scored on the validation split, like every accuracy the
    search measures.  Slots the module does not have get the median drop.
    """
    from codesign.quant import FP, layer_names_for_bits, quantize_model
    from codesign.training import accuracy

    present = set(layer_names_for_bits(module))
    calib = splits.train.x[:calib_images]
    base = accuracy(module, splits.val)
    weight, act, n = {}, {}, 1
    for slot in slots:
        if slot not in present:
            continue
        weight[slot] = 100.0 * (base - accuracy(quantize_model(module, {slot: (bits, FP)}, calib), splits.val))
        act[slot] = 100.0 * (base - accuracy(quantize_model(module, {slot: (FP, bits)}, calib), splits.val))
        n += 2
    for table in (weight, act):
        fill = float(np.median(list(table.values()))) if table else 0.0
        for slot in slots:
            table.setdefault(slot, fill)
    return Sensitivity(weight, act, bits, n)


def stage_of(slot: str) -> str:
    """``stages.1.0.conv1.conv`` -> ``stages.1``; ``stem.conv`` -> ``stem``."""
    parts = slot.split(".")
    if len(parts) > 1 and parts[1].isdigit():
        return ".".join(parts[:2])
    return parts[0]


def group_slots(slots: list[str], granularity: str, n_groups: int = 4,
                sensitivity: Sensitivity | None = None) -> dict[str, list[str]]:
    """Group name -> the layer slots sharing one (w, a) choice, in a stable order."""
    if granularity not in GRANULARITIES:
        raise CodesignError(f"quantization.granularity {granularity!r}: use one of {', '.join(GRANULARITIES)}")
    if granularity == "network":
        return {"all": list(slots)}
    if granularity == "layer":
        return {s: [s] for s in slots}
    if granularity == "stage":
        groups: dict[str, list[str]] = {}
        for s in slots:
            groups.setdefault(stage_of(s), []).append(s)
        return groups
    if sensitivity is None:
        raise CodesignError("quantization.granularity = 'sensitivity' needs measured layer sensitivities")
    ranked = sorted(slots, key=lambda s: (-sensitivity.total(s), slots.index(s)))
    sizes = _doubling_sizes(len(ranked), max(1, min(n_groups, len(slots))))
    ends = np.cumsum(sizes)
    return {f"s{i}": ranked[end - size:end] for i, (size, end) in enumerate(zip(sizes, ends))}


def _doubling_sizes(n: int, k: int) -> list[int]:
    """Group sizes growing 1 : 2 : 4 ..., the most sensitive group smallest, each at least one layer."""
    share = np.array([2.0 ** i for i in range(k)])
    sizes = np.maximum(1, np.floor(n * share / share.sum())).astype(int)
    sizes[-1] += n - sizes.sum()
    while sizes[-1] < 1:                 # fewer layers than the shares can give: take from the widest
        i = int(np.argmax(sizes[:-1]))
        sizes[i] -= 1
        sizes[-1] += 1
    return [int(x) for x in sizes]
