"""Accelerator templates by kind: what a DSE or a search needs of each, in one place.

A template target carries one table (``[systolic]``, ``[bitfusion]``) whose name is also its cost
model's.  A ``TemplateKind`` says, for that kind: which config fields a search may set (and
their ranges' schema), what a layer's cost depends on besides its shape (its ``key``: the
systolic datapath word, or Bit Fusion's (w, a) pair), and how a grid of configurations is scored,
vectorised over configs: per-layer cycles and energy, area, and which configs can run at all.
The search (``codesign.search.hw_opt``), ``codesign dse`` and the exported accelerator file go
through this instead of asking "is it systolic?".
"""
from __future__ import annotations

from typing import Hashable

import numpy as np

from hwmodels.bits import VALID_BITS, LayerBits, precision_bits, word_bits
from hwmodels.errors import CodesignError
from hwmodels.systolic import SystolicLayers
from hwmodels.targets import BitFusionRanges, SystolicRanges, Target


class SystolicGrid:
    """Systolic configs (one entry per field value); the array is built at one word width per call."""

    def __init__(self, values: dict[str, np.ndarray]):
        self.values = values
        self._configs: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.values["rows"])

    def configs(self, wb: int):
        from hwmodels.systolic import ArrayConfigs

        if wb not in self._configs:
            v = self.values
            bw = np.asarray(v["dram_bandwidth_words"]).astype(np.int64)
            self._configs[wb] = ArrayConfigs(v["rows"], v["cols"], v["ifmap_sram_kb"], v["filter_sram_kb"],
                                             v["ofmap_sram_kb"], v["dataflow"], bw, bw, bw, True, wb)
        return self._configs[wb]

    def score(self, layers: SystolicLayers, key: int, target) -> tuple[np.ndarray, np.ndarray]:
        """Cycles and energy (pJ) of every layer on every config, [n_configs, n_layers], at word ``key``."""
        from hwmodels.systolic import simulate
        from hwmodels.systolic_cost import energy_pj

        res = simulate(layers, self.configs(key))
        return res.total_cycles.astype(np.float64), energy_pj(res, target)

    def area(self, widest: int, target) -> np.ndarray:
        from hwmodels.systolic_cost import area_mm2

        return area_mm2(self.configs(widest), target)

    def fits(self, widest: int, target) -> np.ndarray:
        return self.configs(widest).fold_fits()

    def check(self, widest: int, target) -> None:
        self.configs(widest).check_fold_fits()


class BitFusionGrid:
    """Bit Fusion configs; every layer runs at its own (w, a), the array is the same for all."""

    def __init__(self, values: dict[str, np.ndarray]):
        from hwmodels.bitfusion import FusionConfigs

        self.values = values
        self.configs = FusionConfigs.from_values(values)

    def __len__(self) -> int:
        return len(self.configs)

    def score(self, layers: SystolicLayers, key: tuple[int, int], target) -> tuple[np.ndarray, np.ndarray]:
        from hwmodels.bitfusion import simulate
        from hwmodels.bitfusion_cost import energy_pj

        n = len(layers)
        res = simulate(layers, self.configs, [key[0]] * n, [key[1]] * n, target.bitfusion.unit)
        return res.total_cycles, energy_pj(res, target)

    def area(self, widest, target) -> np.ndarray:
        from hwmodels.bitfusion_cost import area_mm2

        return area_mm2(self.configs, target)

    def fits(self, widest, target) -> np.ndarray:
        return self.configs.fold_fits(target.bitfusion.unit)

    def check(self, widest, target) -> None:
        self.configs.check_fold_fits(target.bitfusion.unit)


class TemplateKind:
    """One kind of accelerator template (subclassed per kind)."""

    name: str                  # the table in the target TOML, and the cost model's registered name
    ranges_model: type
    grid_class: type

    @property
    def fields(self) -> tuple[str, ...]:
        """The config fields a search may set."""
        return tuple(self.ranges_model.model_fields)

    def template(self, target: Target):
        table = getattr(target, self.name, None)
        if table is None:
            raise CodesignError(f"target {target.name!r} is not a {self.name} template (no [{self.name}] table)")
        return table

    def key(self, bits: LayerBits) -> Hashable:
        raise NotImplementedError

    def widest(self, keys) -> Hashable:
        raise NotImplementedError

    def grid(self, values: dict) -> SystolicGrid | BitFusionGrid:
        return self.grid_class({k: np.asarray(v) for k, v in values.items()})

    def point(self, target: Target, hw: dict):
        """A grid of one config: the template's default updated with ``hw``'s fields."""
        d = self.template(target).default.model_dump()
        d.update({k: v for k, v in hw.items() if k in self.fields})
        return self.grid({k: [d[k]] for k in self.fields})

    def clock_mhz(self, target: Target) -> float:
        return self.template(target).default.clock_mhz

    runnable_bits: tuple[int, ...] = VALID_BITS

    def has_area(self, target: Target) -> bool:
        """Whether the target's figures give this template an area."""
        return True

    def bits_fields(self, widest_bits: LayerBits) -> dict:
        """The default config's bit fields for an array that runs up to these bits."""
        raise NotImplementedError

    def peak_gmacs(self, target: Target, hw: dict) -> dict[str, float]:
        """Peak GMAC/s of the config ``hw`` at each of the target's precisions."""
        raise NotImplementedError

    def default_bits(self, target: Target) -> LayerBits:
        raise NotImplementedError

    def describe(self, hw: dict) -> str:
        raise NotImplementedError


class SystolicKind(TemplateKind):
    name, ranges_model, grid_class = "systolic", SystolicRanges, SystolicGrid

    def key(self, bits: LayerBits) -> int:
        return word_bits(bits)

    def widest(self, keys) -> int:
        return max(keys)

    def default_bits(self, target: Target) -> LayerBits:
        wb = self.template(target).default.word_bits
        return LayerBits(wb, wb)

    def describe(self, hw: dict) -> str:
        return f"{hw.get('rows')}x{hw.get('cols')} {hw.get('dataflow')} systolic array"

    def has_area(self, target: Target) -> bool:
        return target.area is not None

    def bits_fields(self, widest_bits: LayerBits) -> dict:
        return {"word_bits": word_bits(widest_bits)}

    def peak_gmacs(self, target: Target, hw: dict) -> dict[str, float]:
        d = {**self.template(target).default.model_dump(), **hw}
        return {p: d["rows"] * d["cols"] * d["clock_mhz"] / 1e3 for p in target.peak_gmacs}


class BitFusionKind(TemplateKind):
    name, ranges_model, grid_class = "bitfusion", BitFusionRanges, BitFusionGrid

    def key(self, bits: LayerBits) -> tuple[int, int]:
        return (bits.weight, bits.activation)

    def widest(self, keys) -> tuple[int, int]:
        keys = list(keys)
        return (max(k[0] for k in keys), max(k[1] for k in keys))

    def default_bits(self, target: Target) -> LayerBits:
        d = self.template(target).default
        return LayerBits(d.w_bits, d.a_bits)

    def describe(self, hw: dict) -> str:
        return f"{hw.get('rows')}x{hw.get('cols')} Bit Fusion array"

    runnable_bits = (2, 4, 8, 16)

    def bits_fields(self, widest_bits: LayerBits) -> dict:
        return {"w_bits": widest_bits.weight, "a_bits": widest_bits.activation}

    def peak_gmacs(self, target: Target, hw: dict) -> dict[str, float]:
        from hwmodels.bitfusion import fusion_factors

        bf = self.template(target)
        d = {**bf.default.model_dump(), **hw}
        out = {}
        for p in target.peak_gmacs:
            b = precision_bits(p)
            spatial, temporal = fusion_factors(b, b, bf.unit)
            out[p] = d["rows"] * d["cols"] * d["clock_mhz"] / 1e3 * float(spatial) / float(temporal)
        return out


KINDS: dict[str, TemplateKind] = {k.name: k for k in (SystolicKind(), BitFusionKind())}


def kind_of(target: Target) -> TemplateKind | None:
    """The template kind of a target, None for a fixed device."""
    name = target.template_kind
    return KINDS[name] if name else None


def get_kind(name: str) -> TemplateKind:
    if name not in KINDS:
        raise CodesignError(f"unknown template kind {name!r}; use one of {', '.join(KINDS)}")
    return KINDS[name]


def kind_for_fields(fields) -> TemplateKind:
    """The kind whose ranges have exactly these fields (what a caller that holds only ranges has)."""
    fields = set(fields)
    for kind in KINDS.values():
        if set(kind.fields) == fields:
            return kind
    known = "; ".join(k + ": " + ", ".join(v.fields) for k, v in KINDS.items())
    raise CodesignError(f"ranges with fields {', '.join(sorted(fields))} match no template kind ({known})")
