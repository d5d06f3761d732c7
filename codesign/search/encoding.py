"""How a candidate is written as optuna parameters: architecture, per-layer bits, accelerator.

One candidate = (architecture choice, weight/activation bits per conv/linear layer slot,
accelerator config).  With nested hardware the trial samples a latency/energy/area trade-off
and the evaluation finds the best config for it; with sampled hardware the trial picks each
template field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codesign.search.config import SearchConfig

HW_FIELDS = ("rows", "cols", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb", "dataflow", "dram_bandwidth_words")
TRADEOFF = ("latency_ms", "energy_mj", "area_mm2")      # what a nested-hardware trade-off weighs
SRAMS = ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb")


@dataclass
class Candidate:
    arch: dict[str, Any]
    bits: dict[str, tuple[int, int]]          # torch layer name -> (w_bits, a_bits)
    hw: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"arch": self.arch, "bits": {k: list(v) for k, v in self.bits.items()}, "hw": self.hw}

    @property
    def widest_bits(self) -> int:
        return max((max(b) for b in self.bits.values()), default=8)


class Encoding:
    """The search space of one study as optuna parameters, and the baseline candidate."""

    def __init__(self, cfg: SearchConfig, space, bit_slots: list[str], hw_ranges: dict[str, list],
                 nested_hw: bool, default_hw: dict):
        self.cfg, self.space, self.bit_slots = cfg, space, bit_slots
        self.hw_ranges, self.nested_hw, self._default_hw = hw_ranges, nested_hw, default_hw

    def suggest(self, trial, fixed: Candidate | None = None, search: tuple[str, ...] = ("arch", "bits", "hw")) -> Candidate:
        """Define-by-run choice of a candidate; parts not in ``search`` come from ``fixed``."""
        if "arch" in search:
            arch = {p: trial.suggest_categorical(f"arch.{p}", list(opts)) for p, opts in self.space.params.items()}
        else:
            arch = dict(fixed.arch)
        choices = sorted(self.cfg.quantization.bits)
        if "bits" in search:
            if self.cfg.quantization.per_layer:
                bits = {s: (trial.suggest_categorical(f"wbits.{s}", choices), trial.suggest_categorical(f"abits.{s}", choices))
                        for s in self.bit_slots}
            else:
                w, a = trial.suggest_categorical("wbits", choices), trial.suggest_categorical("abits", choices)
                bits = {s: (w, a) for s in self.bit_slots}
        else:
            bits = dict(fixed.bits)
        if "hw" in search and self.nested_hw:
            hw = {"weights": {k: trial.suggest_float(f"hw.w_{k}", 0.0, 1.0) for k in self.tradeoff}}
        elif "hw" in search and self.hw_ranges:
            hw = {k: trial.suggest_categorical(f"hw.{k}", list(v)) for k, v in self.hw_ranges.items()}
        elif fixed is not None:
            hw = dict(fixed.hw)
        else:
            hw = self.default_hw()
        return Candidate(arch, bits, hw)

    @property
    def tradeoff(self) -> list[str]:
        return [k for k in TRADEOFF if k in self.cfg.objectives]

    def initial_params(self, search: tuple[str, ...] = ("arch", "bits", "hw")) -> dict:
        """optuna parameters of the baseline candidate (largest arch, ~8-bit, the template's
        default hardware snapped into the ranges): both strategies start from it."""
        params = {}
        if "arch" in search:
            params.update({f"arch.{k}": v for k, v in self.space.largest().items()})
        if "bits" in search:
            w, a = next(iter(self.default_bits().values()), (8, 8))
            if self.cfg.quantization.per_layer:
                for slot in self.bit_slots:
                    params[f"wbits.{slot}"], params[f"abits.{slot}"] = w, a
            else:
                params["wbits"], params["abits"] = w, a
        if "hw" in search and self.nested_hw:
            params.update({f"hw.w_{k}": 1.0 for k in self.tradeoff})
        elif "hw" in search:
            params.update({f"hw.{k}": v for k, v in self.default_hw().items() if k in self.hw_ranges})
        return params

    def default_hw(self) -> dict:
        return dict(self._default_hw)

    def default_bits(self) -> dict[str, tuple[int, int]]:
        """The sequential baseline's starting bits: 8-bit where allowed, else the nearest choice."""
        b = min(self.cfg.quantization.bits, key=lambda x: (abs(x - 8), x))
        return {s: (b, b) for s in self.bit_slots}

    def baseline(self) -> Candidate:
        """Largest architecture, default bits, default hardware: where the sequential baseline starts."""
        return Candidate(self.space.largest(), self.default_bits(), self.default_hw())


def default_hw(target, hw_ranges: dict[str, list], max_sram_kb: float | None) -> dict:
    """The template's default accelerator snapped into the searched ranges and shrunk to the SRAM budget."""
    if target.systolic is None:
        return {}
    d = target.systolic.default
    hw = {k: getattr(d, k) for k in HW_FIELDS}
    for k, values in hw_ranges.items():     # snap into the searched ranges
        if hw[k] not in values:
            hw[k] = values[0] if isinstance(hw[k], str) else min(values, key=lambda v: (abs(v - hw[k]), v))
    while max_sram_kb is not None and sum(hw[k] for k in SRAMS) > max_sram_kb:
        # shrink the biggest SRAM that can shrink, so the starting point meets the SRAM budget
        options = [(hw[k], k) for k in SRAMS if any(v < hw[k] for v in hw_ranges.get(k, [getattr(d, k)]))]
        if not options:
            break
        _, k = max(options)
        hw[k] = max(v for v in hw_ranges.get(k, []) if v < hw[k])
    return hw
