"""Nested accelerator optimisation: the best template config for one network, exhaustively.

The systolic model scores every configuration of the ranges for a whole network in one
vectorised call, so a search need not sample the accelerator blindly: for each candidate
network and bit map it takes the configuration that minimises a weighted sum of log latency,
log energy and log area (the weights are what the trial samples, so different trials reach
different parts of the hardware trade-off).  Configurations over the SRAM budget, or whose
SRAMs cannot hold one fold of the array, are never chosen.
"""
from __future__ import annotations

import itertools

import numpy as np

from hwmodels.errors import CodesignError
from hwmodels.workload import Workload
from hwmodels.bits import BitAssignment, word_bits
from hwmodels.systolic import ArrayConfigs, layers_from_workload, simulate
from hwmodels.systolic_cost import area_mm2, energy_pj

FIELDS = ("rows", "cols", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb", "dataflow", "dram_bandwidth_words")


class HardwareGrid:
    """All configurations of the ranges that meet the SRAM budget (built once per search)."""

    def __init__(self, ranges: dict[str, list], max_sram_kb: float | None):
        combos = [c for c in itertools.product(*(ranges[f] for f in FIELDS))
                  if max_sram_kb is None or c[2] + c[3] + c[4] <= max_sram_kb]
        if not combos:
            raise CodesignError("no accelerator configuration in the ranges meets constraints.max_sram_kb")
        self.values = {f: np.array([c[i] for c in combos]) for i, f in enumerate(FIELDS)}
        self._sims: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}   # (network, width) -> per-layer arrays

    def per_layer(self, workload: Workload, layers, word_bits: int, target) -> tuple[np.ndarray, np.ndarray]:
        """Cycles and energy (pJ) of every layer on every config at one word width, cached:
        trials revisit networks with other bit maps and trade-offs."""
        key = (workload.name, word_bits)
        if key not in self._sims:
            if len(self._sims) >= 24:
                self._sims.pop(next(iter(self._sims)))
            res = simulate(layers, self.configs(word_bits))
            self._sims[key] = (res.total_cycles.astype(float), energy_pj(res, target))
        return self._sims[key]

    def __len__(self) -> int:
        return len(self.values["rows"])

    def configs(self, word_bits: int) -> ArrayConfigs:
        v = self.values
        bw = v["dram_bandwidth_words"].astype(np.int64)
        return ArrayConfigs(v["rows"], v["cols"], v["ifmap_sram_kb"], v["filter_sram_kb"], v["ofmap_sram_kb"],
                            v["dataflow"], bw, bw, bw, True, word_bits)

    def config(self, i: int) -> dict:
        out = {}
        for f in FIELDS:
            x = self.values[f][i]
            out[f] = x.item() if hasattr(x, "item") else x
        return out


def best_config(grid: HardwareGrid, workload: Workload, bits: BitAssignment, target, clock_mhz: float,
                weights: dict[str, float]) -> dict:
    """The config minimising sum_k weights[k] * log(metric_k) over latency, energy and area."""
    layers = layers_from_workload(workload)
    word = {l.name: word_bits(bits.for_layer(l.name)) for l in workload.layers()}
    widths = sorted({word[n] for n in layers.names}) or [8]
    widest = max(widths)
    ok = grid.configs(widest).fold_fits()
    cycles = np.zeros(len(grid))
    energy = np.zeros(len(grid))
    for wb in widths:
        layer_cycles, layer_energy = grid.per_layer(workload, layers, wb, target)
        mask = np.array([word[n] == wb for n in layers.names])
        cycles += layer_cycles[:, mask].sum(axis=1)
        energy += layer_energy[:, mask].sum(axis=1)
    metrics = {"latency_ms": cycles / (clock_mhz * 1e3), "energy_mj": energy * 1e-9,
               "area_mm2": area_mm2(grid.configs(widest), target)}
    score = sum(w * np.log(np.maximum(metrics[k], 1e-12)) for k, w in weights.items() if k in metrics)
    score = np.where(ok, score, np.inf)
    if not np.isfinite(score).any():
        raise CodesignError("no accelerator configuration in the ranges can hold one fold of this network's array")
    return grid.config(int(np.argmin(score)))
