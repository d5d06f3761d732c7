"""The nested accelerator optimiser picks the best configuration of the ranges for a network."""
import numpy as np

from codesign.frontends.onnx_frontend import load_onnx
from codesign.search.hw_opt import HardwareGrid, best_config
from hwmodels.targets import load_target
from conftest import LIGHT
from hwmodels.bits import BitAssignment, LayerBits
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


def test_choices_at_32_bit_layers_are_the_optima_of_the_reported_metrics():
    """Float (32-bit) layers need 32-bit words: the optimiser must rank hardware with the same
    word width the reported metrics use (it once ranked at 16-bit words, so a trade-off between
    a faster array and its 4x larger 32-bit PEs came out wrong)."""
    target = load_target("systolic")
    wl = load_onnx(LIGHT / "light_squeezenet.onnx")
    convs = [l.name for l in wl.layers() if l.op == "Conv"]
    bits = BitAssignment(LayerBits(8, 8), {n: LayerBits(32, 32) for n in convs[::2]})
    grid = HardwareGrid(RANGES, max_sram_kb=128)
    costs = np.log([_cost(wl, target, grid.config(i), bits) for i in range(len(grid))])
    names = ("latency_ms", "energy_mj", "area_mm2")
    for weights in ({"latency_ms": 1.0}, {"latency_ms": 1.0, "area_mm2": 1.0}, {"energy_mj": 1.0, "area_mm2": 0.5},
                    {"latency_ms": 1.0, "energy_mj": 1.0, "area_mm2": 1.0}):
        w = np.array([weights.get(n, 0.0) for n in names])
        chosen = best_config(grid, wl, bits, target, target.systolic.default.clock_mhz, weights)
        got = np.log(_cost(wl, target, chosen, bits)) @ w
        assert np.isclose(got, (costs @ w).min(), rtol=1e-9), weights
