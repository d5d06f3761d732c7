"""Per-layer sensitivity: from the uniform reference width, one layer at a time has its weights
(then its input activations) lowered to each narrower width, and the drop in onnxruntime top-1 on
the selection part is measured (HAWQ/HAQ-style ranking, but measured, not estimated).

The pass stops at the run's deadline (``--minutes``); what it did not reach is ``None`` (that layer
is then never lowered by the guided phase) and a ``--resume`` measures it first.
"""
from __future__ import annotations

import time
from typing import Callable

from codesign.quantize.measure import Measurer, uniform


def reference_width(choices: list[int]) -> int:
    """The width layers start from: 8 when offered (what deployment uses), else the widest choice."""
    return 8 if 8 in choices else max(choices)


def complete(sens: dict | None) -> bool:
    return sens is not None and all(v is not None for l in sens["layers"].values() for k in l.values() for v in k.values())


def layer_sensitivity(measurer: Measurer, layers: list[str], choices: list[int],
                      progress: Callable[[int, int], None] | None = None, deadline: float | None = None,
                      previous: dict | None = None) -> dict:
    """{"reference": bits, "reference_accuracy": acc, "layers": {layer: {"weight": {b: drop}, "activation": {b: drop}}}}."""
    ref = reference_width(choices)
    base = uniform(layers, ref, ref)
    ref_acc = measurer.measure(base).accuracy
    lower = sorted(b for b in choices if b < ref)
    total, done = len(layers) * len(lower) * 2, 0
    out: dict[str, dict] = {}
    for layer in layers:
        before = (previous or {}).get("layers", {}).get(layer, {})
        out[layer] = {"weight": {}, "activation": {}}
        for b in lower:
            for kind, pair in (("weight", (b, ref)), ("activation", (ref, b))):
                known = before.get(kind, {}).get(str(b))
                if known is None and (deadline is None or time.monotonic() < deadline):
                    bits = dict(base)
                    bits[layer] = pair
                    known = ref_acc - measurer.measure(bits).accuracy
                out[layer][kind][str(b)] = known
                done += 1
                if progress:
                    progress(done, total)
    return {"reference": ref, "reference_accuracy": ref_acc, "layers": out}
