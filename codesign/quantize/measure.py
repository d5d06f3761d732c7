"""One measured candidate: a bit map written as a QDQ model and its top-1 in onnxruntime.

Measurements are cached by bit map: the sensitivity pass, the guided seeds and the sampler
often propose the same map, and each measurement is the expensive, counted step.
"""
from __future__ import annotations

from dataclasses import dataclass

from codesign.quantize.accuracy import top1
from codesign.quantize.dataset import QuantData
from codesign.quantize.model import FloatModel
from codesign.quantize.writer import QDQWriter

Bits = dict[str, tuple[int, int]]


@dataclass
class Measured:
    accuracy: float
    writer: str


class Measurer:
    def __init__(self, model: FloatModel, writer: QDQWriter, data: QuantData):
        self.model, self.writer, self.data = model, writer, data
        self._cache: dict[tuple, Measured] = {}
        self.count = 0

    def measure(self, bits: Bits) -> Measured:
        key = key_of(bits)
        if key not in self._cache:
            model_bytes, writer = self.writer.write(bits)
            acc = top1(model_bytes, self.data.select_x, self.data.select_y, self.model.fixed_batch,
                       f"QDQ candidate {label(bits)}")
            self._cache[key] = Measured(acc, writer)
            self.count += 1
        return self._cache[key]


    def writers(self) -> dict[tuple, str]:
        """Which writer made each map measured in this process (a resumed run's earlier maps are absent)."""
        return {k: m.writer for k, m in self._cache.items()}


def key_of(bits: Bits) -> tuple:
    return tuple(sorted((n, int(w), int(a)) for n, (w, a) in bits.items()))


def uniform(layers: list[str], w: int, a: int) -> Bits:
    return {n: (w, a) for n in layers}


def label(bits: Bits) -> str:
    pairs = sorted({f"w{w}a{a}" for w, a in bits.values()})
    return pairs[0] if len(pairs) == 1 else "mixed " + "/".join(pairs)
