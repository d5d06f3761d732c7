"""Latency, energy and area of a systolic array from the analytical simulation and a target.

latency = cycles / clock.  energy = MACs x mac_pj[precision of the word]
+ SRAM words touched x bytes x SRAM pJ/byte (array reads and writes, plus the DRAM fills
written into and drains read out of the SRAMs) + DRAM words x bytes x DRAM pJ/byte.
area = rows x cols x PE area (x (bits/8)^2: the multiplier dominates and grows with the
square of the operand width) + SRAM KB x mm^2/KB + fixed.
All functions broadcast over configurations, so a DSE scores thousands at once.
"""
from __future__ import annotations

import numpy as np

from hwmodels.bits import precision_name
from hwmodels.errors import CodesignError
from hwmodels.systolic import ArrayConfigs, SystolicResult

def _mac_pj(target, bits: np.ndarray) -> np.ndarray:
    out = np.empty(bits.shape, dtype=float)
    for b in np.unique(bits):
        p = precision_name(int(b))
        if p not in target.energy.mac_pj:
            raise CodesignError(f"target {target.name}: energy.mac_pj has no {p} entry for word_bits={b}; add it to the TOML")
        out[bits == b] = target.energy.mac_pj[p]
    return out


def energy_pj(result: SystolicResult, target) -> np.ndarray:
    """Energy per (config, layer) in pJ."""
    cfg = result.configs
    bits = cfg.word_bits[:, None]
    bytes_per_word = bits / 8.0
    sram_pj = target.memory[0].energy_pj_per_byte
    dram_pj = target.memory[-1].energy_pj_per_byte
    sram_words = result.sram_reads + result.sram_writes + result.dram_reads + result.dram_writes
    dram_words = result.dram_reads + result.dram_writes
    return (result.macs * _mac_pj(target, bits)
            + sram_words * bytes_per_word * sram_pj
            + dram_words * bytes_per_word * dram_pj)


def area_mm2(configs: ArrayConfigs, target) -> np.ndarray:
    """Area per config from the target's [area] table."""
    if target.area is None:
        raise CodesignError(f"target {target.name} has no [area] table; add pe_mm2_8bit, sram_mm2_per_kb, process_nm")
    a = target.area
    pe = configs.rows * configs.cols * a.pe_mm2_8bit * (configs.word_bits / 8.0) ** 2
    sram = (configs.ifmap_kb + configs.filter_kb + configs.ofmap_kb) * a.sram_mm2_per_kb
    return pe + sram + a.fixed_mm2


def clock_hz(target, configs: ArrayConfigs | None = None, clock_mhz=None) -> float | np.ndarray:
    mhz = clock_mhz if clock_mhz is not None else (
        target.systolic.default.clock_mhz if target.systolic is not None else target.clock_mhz)
    return np.asarray(mhz, dtype=float) * 1e6


def network_costs(result: SystolicResult, target, clock_mhz=None) -> dict[str, np.ndarray]:
    """Whole-network latency (s), energy (J), area (mm^2) per config: arrays of [n_configs]."""
    hz = clock_hz(target, result.configs, clock_mhz)
    cycles = result.total_cycles.sum(axis=1)
    return {
        "cycles": cycles,
        "latency_s": cycles / hz,
        "energy_j": energy_pj(result, target).sum(axis=1) * 1e-12,
        "area_mm2": area_mm2(result.configs, target),
    }
