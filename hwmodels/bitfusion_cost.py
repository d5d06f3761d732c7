"""Energy and area of a Bit Fusion array from its simulation and the target's [bitfusion] tables.

energy = busy cycles x fusion units x dynamic pJ per unit-cycle (the authors' core energy: all
16 BitBricks of a unit switch every cycle, so fewer bits save energy by finishing sooner)
+ SRAM bits x pJ/bit of each buffer's bank size + DRAM bits x the main memory's pJ/bit.
area = fusion units x unit area + banks x bank area (WBUF one bank per unit, IBUF one per row,
OBUF one per column, as the authors bank them).  SRAM figures come from the CACTI table in the
target, interpolated log-log in bank size.  All functions broadcast over configurations.
"""
from __future__ import annotations

import numpy as np

from hwmodels.bitfusion import FusionConfigs, FusionResult
from hwmodels.errors import CodesignError

BANKS = {"filter_sram_kb": lambda c: c.rows * c.cols, "ifmap_sram_kb": lambda c: c.rows,
         "ofmap_sram_kb": lambda c: c.cols}


def template(target):
    if target.bitfusion is None:
        raise CodesignError(f"target {target.name!r} is not a Bit Fusion template (no [bitfusion] table)")
    return target.bitfusion


def _loglog(x, xs, ys) -> np.ndarray:
    """Interpolate ys(xs) at x in log-log space, extending the end segments beyond the table."""
    lx, lxs, lys = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(xs)), np.log(np.asarray(ys))
    inner = np.interp(lx, lxs, lys)
    lo = lys[0] + (lx - lxs[0]) * (lys[1] - lys[0]) / (lxs[1] - lxs[0])
    hi = lys[-1] + (lx - lxs[-1]) * (lys[-1] - lys[-2]) / (lxs[-1] - lxs[-2])
    return np.exp(np.where(lx < lxs[0], lo, np.where(lx > lxs[-1], hi, inner)))


def bank_bytes(configs: FusionConfigs, field: str) -> np.ndarray:
    return getattr(configs, field) * 1024 / BANKS[field](configs)


def sram_pj_per_bit(configs: FusionConfigs, target, field: str, write: bool = False) -> np.ndarray:
    """Energy per bit read (or written) in one buffer, per config."""
    s = template(target).sram
    per_access = s.write_nj_per_access if write else s.read_nj_per_access
    return _loglog(bank_bytes(configs, field), s.bank_bytes, per_access) * 1e3 / s.access_bits


def energy_parts_pj(result: FusionResult, target) -> dict[str, np.ndarray]:
    """core / sram / dram energy per (config, layer) in pJ."""
    bf = template(target)
    cfg = result.configs
    units = (cfg.rows * cfg.cols)[:, None]
    core = result.compute_cycles * units * bf.unit.dynamic_pj_per_cycle
    sram = 0.0
    for field, rd, wr in (("filter_sram_kb", result.wbuf_read_bits, result.wbuf_write_bits),
                          ("ifmap_sram_kb", result.ibuf_read_bits, result.ibuf_write_bits),
                          ("ofmap_sram_kb", result.obuf_read_bits, result.obuf_write_bits)):
        sram = sram + rd * sram_pj_per_bit(cfg, target, field)[:, None] \
            + wr * sram_pj_per_bit(cfg, target, field, write=True)[:, None]
    dram = result.dram_bits * target.main_memory.energy_pj_per_byte / 8
    return {"core": core, "sram": sram, "dram": dram}


def energy_pj(result: FusionResult, target) -> np.ndarray:
    """Energy per (config, layer) in pJ."""
    parts = energy_parts_pj(result, target)
    return parts["core"] + parts["sram"] + parts["dram"]


def area_mm2(configs: FusionConfigs, target) -> np.ndarray:
    """Area per config: fusion units plus SRAM banks."""
    bf = template(target)
    s = bf.sram
    area = configs.rows * configs.cols * bf.unit.area_um2 * 1e-6
    for field, banks in BANKS.items():
        area = area + banks(configs) * _loglog(bank_bytes(configs, field), s.bank_bytes, s.bank_area_mm2)
    return area
