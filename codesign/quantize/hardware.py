"""A template target's accelerator config for a bit map, searched with the search's own nested
optimiser (``codesign.search.hw_opt``: every config of the ranges scored in one vectorised call),
and written as a target file so ``codesign analyze --target DIR/accelerator.toml`` costs the QDQ
model on exactly that accelerator."""
from __future__ import annotations

import tomli_w

from codesign.files import write_text
from hwmodels.bits import word_bits

# how the objective weighs latency, energy and area when picking the config (log-sum weights)
WEIGHTS = {"energy": {"energy_mj": 1.0, "latency_ms": 0.05, "area_mm2": 0.05},
           "latency": {"latency_ms": 1.0, "energy_mj": 0.05, "area_mm2": 0.05},
           "size": {"energy_mj": 0.5, "latency_ms": 0.5, "area_mm2": 0.05}}


def searchable(target) -> bool:
    """A template whose config the nested optimiser can search (the systolic template's ranges)."""
    return getattr(target, "kind", "") == "template" and getattr(target, "systolic", None) is not None


def best_systolic(costing, bits: dict, objective: str) -> dict:
    from codesign.search.hw_opt import HardwareGrid, best_config

    tgt = costing.target
    ranges = tgt.systolic.ranges.model_dump()
    grid = HardwareGrid(ranges, None)
    return best_config(grid, costing.workload, costing.assignment(bits), tgt, tgt.systolic.default.clock_mhz,
                       WEIGHTS[objective])


def accelerator_dict(target, hw: dict, bits: dict) -> dict:
    """The template fixed at ``hw`` (as ``codesign.search.artifacts.write_accelerator`` writes it)."""
    data = target.model_dump(exclude_none=True)
    widest = max((word_bits(_lb(b)) for b in bits.values() if max(b) < 32), default=8)
    default = {**data["systolic"]["default"], **hw, "word_bits": widest}
    data["name"] = "accelerator"
    data["description"] = (f"{hw.get('rows')}x{hw.get('cols')} {hw.get('dataflow')} systolic array chosen by "
                           f"codesign quantize from {target.name}")
    data["systolic"] = {"default": default, "ranges": {k: [v] for k, v in hw.items()}}
    data["peak_gmacs"] = {p: default["rows"] * default["cols"] * default["clock_mhz"] / 1e3 for p in data["peak_gmacs"]}
    return data


def write_accelerator(path, data: dict):
    return write_text(path, "# written by `codesign quantize`; use it with --target\n" + tomli_w.dumps(data), "--out")


def _lb(b):
    from hwmodels.bits import LayerBits

    return LayerBits(int(b[0]), int(b[1]))
