"""How a candidate is written down: as optuna parameters (what a study stores) and as an integer
genome (what the surrogate's evolutionary search varies).

One candidate = (architecture choice, a (w, a) bit choice per bit group, accelerator).  Bit
groups come from ``bitgroups`` (network / stage / sensitivity / layer).  With nested hardware
the candidate carries a latency/energy/area trade-off and the evaluation finds the best config
for it; with sampled hardware it names each template field.  Parts not searched (a sequential
phase) come from a fixed candidate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codesign.search.config import SearchConfig
from hwmodels.targets import SystolicRanges

HW_FIELDS = tuple(SystolicRanges.model_fields)          # the systolic template's fields (see hw_fields)
TRADEOFF = ("latency_ms", "energy_mj", "area_mm2")      # what a nested-hardware trade-off weighs
TRADEOFF_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)           # genome values of one trade-off weight
SRAMS = ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb")
ALL = ("arch", "bits", "hw")


@dataclass
class Candidate:
    arch: dict[str, Any]
    bits: dict[str, tuple[int, int]]          # torch layer name -> (w_bits, a_bits)
    hw: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"arch": self.arch, "bits": {k: list(v) for k, v in self.bits.items()}, "hw": self.hw}

    @classmethod
    def from_json(cls, data: dict) -> "Candidate":
        return cls(dict(data["arch"]), {k: tuple(v) for k, v in data["bits"].items()}, dict(data["hw"]))


@dataclass(frozen=True)
class Gene:
    param: str          # the optuna parameter name
    options: tuple      # the values an integer gene indexes


class Encoding:
    """The search space of one study: optuna parameters, genomes, and the baseline candidate."""

    def __init__(self, cfg: SearchConfig, space, groups: dict[str, list[str]], hw_ranges: dict[str, list],
                 nested_hw: bool, default_hw: dict):
        self.cfg, self.space, self.groups = cfg, space, groups
        self.hw_ranges, self.nested_hw, self._default_hw = hw_ranges, nested_hw, default_hw
        self.bit_choices = tuple(sorted(cfg.quantization.bits))

    @property
    def slots(self) -> list[str]:
        return [s for slots in self.groups.values() for s in slots]

    @property
    def tradeoff(self) -> list[str]:
        return [k for k in TRADEOFF if k in self.cfg.objectives]

    # ----- genes ---------------------------------------------------------------------------------
    def genes(self, search: tuple[str, ...] = ALL) -> list[Gene]:
        out = []
        if "arch" in search:
            out += [Gene(f"arch.{p}", tuple(opts)) for p, opts in self.space.params.items()]
        if "bits" in search:
            for g in self.groups:
                out += [Gene(f"wbits.{g}", self.bit_choices), Gene(f"abits.{g}", self.bit_choices)]
        if "hw" in search and self.nested_hw:
            out += [Gene(f"hw.w_{k}", TRADEOFF_LEVELS) for k in self.tradeoff]
        elif "hw" in search:
            out += [Gene(f"hw.{k}", tuple(v)) for k, v in self.hw_ranges.items()]
        return out

    def from_params(self, params: dict[str, Any], fixed: Candidate | None, search: tuple[str, ...] = ALL) -> Candidate:
        """The candidate named by optuna parameters (parts not in ``search`` from ``fixed``)."""
        arch = {p: params[f"arch.{p}"] for p in self.space.params} if "arch" in search else dict(fixed.arch)
        if "bits" in search:
            bits = {s: (int(params[f"wbits.{g}"]), int(params[f"abits.{g}"]))
                    for g, slots in self.groups.items() for s in slots}
        else:
            bits = dict(fixed.bits)
        if "hw" in search and self.nested_hw:
            hw = {"weights": {k: float(params[f"hw.w_{k}"]) for k in self.tradeoff}}
        elif "hw" in search and self.hw_ranges:
            hw = {k: params[f"hw.{k}"] for k in self.hw_ranges}
        elif fixed is not None:
            hw = dict(fixed.hw)
        else:
            hw = self.default_hw()
        return Candidate(arch, bits, hw)

    def to_params(self, cand: Candidate, search: tuple[str, ...] = ALL) -> dict[str, Any]:
        """The optuna parameters of ``cand`` (what ``study.enqueue_trial`` takes)."""
        params: dict[str, Any] = {}
        if "arch" in search:
            params.update({f"arch.{p}": cand.arch[p] for p in self.space.params})
        if "bits" in search:
            for g, slots in self.groups.items():
                params[f"wbits.{g}"], params[f"abits.{g}"] = cand.bits[slots[0]]
        if "hw" in search and self.nested_hw:
            # a proposal carries its trade-off as "weights"; a measured candidate, resolved to a config, as "tradeoff"
            weights = cand.hw.get("weights") or cand.hw.get("tradeoff") or {}
            params.update({f"hw.w_{k}": float(weights.get(k, 1.0)) for k in self.tradeoff})
        elif "hw" in search and self.hw_ranges:
            params.update({f"hw.{k}": cand.hw[k] for k in self.hw_ranges})
        return params

    def decode(self, genome: np.ndarray, fixed: Candidate | None, search: tuple[str, ...] = ALL) -> Candidate:
        """An integer genome (one index per gene) -> the candidate."""
        params = {g.param: _py(g.options[int(i)]) for g, i in zip(self.genes(search), genome)}
        return self.from_params(params, fixed, search)

    def encode(self, cand: Candidate, search: tuple[str, ...] = ALL) -> np.ndarray:
        """The candidate -> its integer genome (nearest level for a trade-off weight)."""
        params = self.to_params(cand, search)
        out = []
        for g in self.genes(search):
            v = params[g.param]
            out.append(g.options.index(v) if v in g.options else
                       int(np.argmin([abs(float(o) - float(v)) for o in g.options])))
        return np.asarray(out, dtype=int)

    # ----- optuna --------------------------------------------------------------------------------
    def suggest(self, trial, fixed: Candidate | None = None, search: tuple[str, ...] = ALL) -> Candidate:
        """Define-by-run choice of a candidate (an enqueued trial returns its fixed parameters)."""
        params = {}
        for name, dist in self.distributions(search).items():
            params[name] = trial.suggest_float(name, dist.low, dist.high) if hasattr(dist, "low") else \
                trial.suggest_categorical(name, list(dist.choices))
        return self.from_params(params, fixed, search)

    def distributions(self, search: tuple[str, ...] = ALL) -> dict:
        """The optuna distribution of every parameter ``suggest`` asks for."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {g.param: FloatDistribution(0.0, 1.0) if g.param.startswith("hw.w_") else
                CategoricalDistribution(list(g.options)) for g in self.genes(search)}

    def initial_params(self, search: tuple[str, ...] = ALL) -> dict:
        """optuna parameters of the baseline candidate (largest arch, ~8-bit, the template's
        default hardware snapped into the ranges): every strategy starts from it."""
        base = self.baseline()
        if "hw" in search and self.nested_hw:
            base.hw = {"weights": {k: 1.0 for k in self.tradeoff}}
        return self.to_params(base, search)

    def corner_params(self, search: tuple[str, ...] = ALL) -> list[dict]:
        """The baseline and, where architectures are searched, the smallest network at the same bits
        and hardware: the two corners every strategy measures first."""
        out = [self.initial_params(search)]
        if "arch" in search:
            small = {**out[0], **{f"arch.{k}": v for k, v in self.space.smallest().items()}}
            if small != out[0]:
                out.append(small)
        return out

    def default_hw(self) -> dict:
        return dict(self._default_hw)

    def default_bits(self) -> dict[str, tuple[int, int]]:
        """The sequential baseline's starting bits: 8-bit where allowed, else the nearest choice."""
        b = default_width(self.bit_choices)
        return {s: (b, b) for s in self.slots}

    def baseline(self) -> Candidate:
        """Largest architecture, default bits, default hardware: where the sequential baseline starts."""
        return Candidate(self.space.largest(), self.default_bits(), self.default_hw())


def default_width(choices) -> int:
    """The baseline's bit-width: 8 where allowed, else the nearest choice (the narrower on a tie)."""
    return min(choices, key=lambda x: (abs(x - 8), x))


def hw_fields(target) -> tuple[str, ...]:
    """The template fields a search may set on this target (none for a fixed device)."""
    from hwmodels.template_kinds import kind_of

    kind = kind_of(target)
    return kind.fields if kind is not None else ()


def default_hw(target, hw_ranges: dict[str, list], max_sram_kb: float | None,
               max_area_mm2: float | None = None, word_bits: int = 8) -> dict:
    """The template's default accelerator snapped into the searched ranges, with its SRAMs shrunk to
    the SRAM budget and its array shrunk to the area budget (at ``word_bits``): the accelerator a
    strategy uses while it does not search hardware, so it must meet the hard hardware limits."""
    from hwmodels.bits import LayerBits
    from hwmodels.template_kinds import kind_of

    kind = kind_of(target)
    if kind is None:
        return {}
    d = kind.template(target).default
    hw = {k: getattr(d, k) for k in kind.fields}
    for k, values in hw_ranges.items():     # snap into the searched ranges
        if hw[k] not in values:
            hw[k] = values[0] if isinstance(hw[k], str) else min(values, key=lambda v: (abs(v - hw[k]), v))
    _shrink(hw, SRAMS, hw_ranges, d, lambda h: max_sram_kb is not None and sum(h[k] for k in SRAMS) > max_sram_kb)
    if max_area_mm2 is not None and kind.has_area(target):
        key = kind.key(LayerBits(word_bits, word_bits))
        area = lambda h: float(kind.point(target, h).area(key, target)[0])
        _shrink(hw, ("rows", "cols"), hw_ranges, d, lambda h: area(h) > max_area_mm2)
        _shrink(hw, SRAMS, hw_ranges, d, lambda h: area(h) > max_area_mm2)
    return hw


def _shrink(hw: dict, fields: tuple[str, ...], ranges: dict[str, list], default, too_big) -> None:
    """Step the largest of ``fields`` down to its next value in the ranges while ``too_big(hw)``."""
    while too_big(hw):
        options = [(hw[k], k) for k in fields if any(v < hw[k] for v in ranges.get(k, [getattr(default, k)]))]
        if not options:
            return
        _, k = max(options)
        hw[k] = max(v for v in ranges.get(k, []) if v < hw[k])


def _py(v):
    return v.item() if hasattr(v, "item") else v
