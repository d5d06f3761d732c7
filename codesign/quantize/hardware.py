"""A template target's accelerator config for a bit map, searched with the search's own nested
optimiser (``codesign.search.hw_opt``: every config of the template's ranges scored in one
vectorised call, systolic or Bit Fusion alike through ``hwmodels.template_kinds``), and written as
a target file so ``codesign analyze --target DIR/accelerator.toml`` costs the QDQ model on
exactly that accelerator (the same file ``codesign search`` writes for its chosen design)."""
from __future__ import annotations

import tomli_w

from codesign.files import write_text
from hwmodels.bits import LayerBits

# how the objective weighs latency, energy and area when picking the config (log-sum weights)
WEIGHTS = {"energy": {"energy_mj": 1.0, "latency_ms": 0.05, "area_mm2": 0.05},
           "latency": {"latency_ms": 1.0, "energy_mj": 0.05, "area_mm2": 0.05},
           "size": {"energy_mj": 0.5, "latency_ms": 0.5, "area_mm2": 0.05}}


def searchable(target) -> bool:
    """A template target (systolic, bitfusion): its config is searched for the chosen bits."""
    from hwmodels.template_kinds import kind_of

    return kind_of(target) is not None


def best_config(costing, bits: dict, objective: str) -> dict:
    from codesign.search.hw_opt import HardwareGrid, best_config as pick
    from hwmodels.template_kinds import kind_of

    tgt = costing.target
    kind = kind_of(tgt)
    table = kind.template(tgt)
    grid = HardwareGrid(table.ranges.model_dump(), None, kind=kind)
    return pick(grid, costing.workload, costing.assignment(bits), tgt, kind.clock_mhz(tgt), WEIGHTS[objective])


def accelerator_dict(target, hw: dict, bits: dict) -> dict:
    """The template fixed at ``hw``, built for the widest bits the map runs (as
    ``codesign.search.artifacts.write_accelerator`` writes it for a search's design)."""
    from hwmodels.template_kinds import kind_of

    kind = kind_of(target)
    hw = {k: v for k, v in hw.items() if k in kind.fields}
    data = target.model_dump(exclude_none=True)
    quantized = [b for b in bits.values() if max(b) < 32] or [(8, 8)]
    widest = LayerBits(max(b[0] for b in quantized), max(b[1] for b in quantized))
    default = {**data[kind.name]["default"], **hw, **kind.bits_fields(widest)}
    data["name"] = "accelerator"
    data["description"] = f"{kind.describe(hw)} chosen by codesign quantize from {target.name}"
    data[kind.name] = {**data[kind.name], "default": default, "ranges": {k: [v] for k, v in hw.items()}}
    data["peak_gmacs"] = kind.peak_gmacs(target, default)
    return data


def write_accelerator(path, data: dict):
    return write_text(path, "# written by `codesign quantize`; use it with --target\n" + tomli_w.dumps(data), "--out")
