"""Nested accelerator optimisation: the best template config for one network, exhaustively.

A template's model (systolic, Bit Fusion: ``hwmodels.template_kinds``) scores every
configuration of the ranges for a whole network in one vectorised call, so a search need not
sample the accelerator blindly: for each candidate network and bit map it takes the
configuration that minimises a weighted sum of log latency, log energy and log area (the weights
are what a trial samples, so different trials reach different parts of the hardware trade-off).
Configurations over the SRAM budget, or whose SRAMs cannot feed the array, are never chosen.

Per-layer results are cached by the layer's shape and its kind's bit key (the systolic word
width, Bit Fusion's (w, a)), not by network: the networks of one search space share most of their
layer shapes, so a surrogate search that scores thousands of networks simulates each distinct
layer once.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict

import numpy as np

from hwmodels.bits import BitAssignment
from hwmodels.errors import CodesignError
from hwmodels.systolic import SystolicLayers, layers_from_workload
from hwmodels.targets import SystolicRanges
from hwmodels.template_kinds import TemplateKind, get_kind, kind_for_fields
from hwmodels.workload import Workload

FIELDS = tuple(SystolicRanges.model_fields)       # the systolic template's fields (kept for callers)
SRAM_FIELDS = ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb")   # every template kind names its SRAMs so
_ROW_FIELDS = ("ifmap_h", "ifmap_w", "filt_h", "filt_w", "channels", "num_filters", "stride_h", "stride_w", "batch", "repeat")


class HardwareGrid:
    """All configurations of the ranges that meet the SRAM budget (built once per search), and a
    cache of every layer shape's cycles and energy on all of them at each bit key.

    ``kind`` (a name or ``TemplateKind``) defaults to the kind whose fields the ranges have."""

    def __init__(self, ranges: dict[str, list], max_sram_kb: float | None, cache_mb: float = 400.0,
                 kind: str | TemplateKind | None = None):
        self.kind = kind_for_fields(ranges) if kind is None else get_kind(kind) if isinstance(kind, str) else kind
        self.fields = self.kind.fields
        missing = [f for f in self.fields if f not in ranges]
        if missing:
            raise CodesignError(f"{self.kind.name} ranges lack {', '.join(missing)}")
        sram = [self.fields.index(f) for f in SRAM_FIELDS]
        combos = [c for c in itertools.product(*(ranges[f] for f in self.fields))
                  if max_sram_kb is None or sum(c[i] for i in sram) <= max_sram_kb]
        if not combos:
            raise CodesignError("no accelerator configuration in the ranges meets constraints.max_sram_kb")
        self.values = {f: np.array([c[i] for c in combos]) for i, f in enumerate(self.fields)}
        self._grid = self.kind.grid(self.values)
        self._layers: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._max_entries = max(64, int(cache_mb * 2**20 / (len(combos) * 16)))   # two float64 arrays each
        self._area: dict = {}
        self._fits: dict = {}

    def __len__(self) -> int:
        return len(self.values[self.fields[0]])

    def configs(self, word_bits: int):
        """The systolic ``ArrayConfigs`` at one word width (systolic grids only)."""
        return self._grid.configs(word_bits)

    def index(self, hw: dict) -> int | None:
        """Position of an explicit config in the grid (None if the ranges or SRAM budget exclude it)."""
        if not hasattr(self, "_index"):
            self._index = {tuple(self.config(i)[f] for f in self.fields): i for i in range(len(self))}
        return self._index.get(tuple(hw.get(f) for f in self.fields))

    def config(self, i: int) -> dict:
        out = {}
        for f in self.fields:
            x = self.values[f][i]
            out[f] = x.item() if hasattr(x, "item") else x
        return out

    def area(self, key, target) -> np.ndarray:
        if key not in self._area:
            self._area[key] = self._grid.area(key, target)
        return self._area[key]

    def fits(self, key, target=None) -> np.ndarray:
        """Configs whose SRAMs can feed the array when built for ``key`` (the widest bits)."""
        if key not in self._fits:
            self._fits[key] = self._grid.fits(key, target)
        return self._fits[key]

    def layer_costs(self, layers: SystolicLayers, keys: list, target) -> tuple[np.ndarray, np.ndarray]:
        """Cycles and energy (pJ) of each layer on every config, [n_layers, n_configs]; each
        distinct (shape, bit key) is simulated once, new ones in one vectorised call per key."""
        if getattr(layers, "_row_keys", None) is None:       # the same layers are scored many times
            layers._row_keys = [_row(layers, j) for j in range(len(layers))]
        keys = [(row, key) for row, key in zip(layers._row_keys, keys)]
        missing: dict = {}
        for j, key in enumerate(keys):
            if key not in self._layers:
                missing.setdefault(key[1], {}).setdefault(key[0], j)
        for bit_key, rows in missing.items():
            rows = list(rows)
            for start in range(0, len(rows), 8):      # small chunks: the temporaries stay in cache
                chunk = rows[start:start + 8]
                cycles, energy = self._grid.score(
                    SystolicLayers.from_rows([(f"l{i}", *row) for i, row in enumerate(chunk)]), bit_key, target)
                for i, row in enumerate(chunk):
                    self._layers[(row, bit_key)] = (cycles[:, i].astype(np.float64), energy[:, i])
        for key in keys:
            self._layers.move_to_end(key)
        out = [self._layers[k] for k in keys]
        while len(self._layers) > self._max_entries:
            self._layers.popitem(last=False)
        return np.stack([c for c, _ in out]), np.stack([e for _, e in out])

    def layer_keys(self, names: list[str], bits: BitAssignment) -> list:
        """Each layer's bit key under ``bits`` (what its cost depends on besides its shape)."""
        return [self.kind.key(bits.for_layer(n)) for n in names]

    def network_metrics(self, workload: Workload, bits: BitAssignment, target, clock_mhz: float) -> dict[str, np.ndarray]:
        """Latency (ms), energy (mJ) and area (mm^2) of the network on every config, plus ``ok``:
        the configs that can run it (SRAMs feed the array built for its widest bits)."""
        layers = layers_from_workload(workload)
        return self.layers_metrics(layers, self.layer_keys(layers.names, bits), target, clock_mhz)

    def layers_metrics(self, layers: SystolicLayers, keys: list, target, clock_mhz: float) -> dict[str, np.ndarray]:
        """``network_metrics`` for array layers already extracted, at one bit key per layer."""
        cycles, energy = self.layer_costs(layers, keys, target)
        widest = self.kind.widest(keys)
        latency_ms = cycles.sum(axis=0) / (clock_mhz * 1e3)
        # as the template's cost model reports it: dynamic energy plus static power x latency
        energy_mj = energy.sum(axis=0) * 1e-9 + target.energy.static_power_w * latency_ms
        return {"latency_ms": latency_ms, "energy_mj": energy_mj,
                "area_mm2": self.area(widest, target), "ok": self.fits(widest, target)}


def _row(layers: SystolicLayers, j: int) -> tuple:
    return tuple(int(getattr(layers, f)[j]) for f in _ROW_FIELDS)


def choose(metrics: dict[str, np.ndarray], weights: dict[str, float]) -> int:
    """Index of the config minimising sum_k weights[k] * log(metric_k) among those that can run."""
    score = sum(w * np.log(np.maximum(metrics[k], 1e-12)) for k, w in weights.items() if k in metrics)
    score = np.where(metrics["ok"], score, np.inf)
    if not np.isfinite(score).any():
        raise CodesignError("no accelerator configuration in the ranges can hold one fold of this network's array")
    return int(np.argmin(score))


def best_config(grid: HardwareGrid, workload: Workload, bits: BitAssignment, target, clock_mhz: float,
                weights: dict[str, float]) -> dict:
    """The config minimising sum_k weights[k] * log(metric_k) over latency, energy and area."""
    return grid.config(choose(grid.network_metrics(workload, bits, target, clock_mhz), weights))
