"""The nested accelerator optimiser picks the best configuration of the ranges for a network."""
import numpy as np

from codesign.frontends.onnx_frontend import load_onnx
from codesign.search.hw_opt import HardwareGrid, best_config
from codesign.targets import load_target
from conftest import LIGHT
from hwmodels.precision import BitAssignment, LayerBits
from hwmodels.systolic_model import SystolicCostModel

RANGES = {"rows": [8, 16, 32], "cols": [8, 32], "ifmap_sram_kb": [16, 64], "filter_sram_kb": [16, 64],
          "ofmap_sram_kb": [16, 32], "dataflow": ["ws", "os"], "dram_bandwidth_words": [4, 16]}


def _cost(wl, target, hw, bits):
    cfg = target.systolic.default.model_copy(update=hw)
    c = SystolicCostModel(cfg).estimate(wl, target, bits)
    return c.latency_s * 1e3, c.energy_j * 1e3, c.area_mm2


def test_single_objective_choices_are_the_brute_force_optima():
    target = load_target("systolic")
    wl = load_onnx(LIGHT / "light_squeezenet.onnx")
    bits = BitAssignment(LayerBits(8, 8))
    grid = HardwareGrid(RANGES, max_sram_kb=128)
    assert len(grid) == (3 * 2 * 2 * 2) * 6   # of 8 SRAM triples, 64+64+16 and 64+64+32 KB exceed 128
    every = [grid.config(i) for i in range(len(grid))]
    costs = [_cost(wl, target, hw, bits) for hw in every]
    for k, name in enumerate(("latency_ms", "energy_mj", "area_mm2")):
        chosen = best_config(grid, wl, bits, target, target.systolic.default.clock_mhz, {name: 1.0})
        assert sum(chosen[f] for f in ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb")) <= 128
        got = _cost(wl, target, chosen, bits)[k]
        assert np.isclose(got, min(c[k] for c in costs), rtol=1e-9), name
