"""The loop-tiled FPGA engine: depthwise time independent of K up to the unrolled window, dense time ~ K^2."""
import torch
from torch import nn

from codesign.frontends.torch_frontend import load_torch
from hwmodels.targets import load_target
from hwmodels.tiled import TiledModel, compute_cycles
from hwmodels.fusion import fuse
from hwmodels.row_stationary import ACCELERATOR_FUSION


def _layers(module, shape=(1, 16, 16, 16)):
    return fuse(load_torch(module, torch.randn(*shape)), ACCELERATOR_FUSION).layers()


def test_cycles_follow_the_tiling():
    eng = load_target("fpga-zc706").tiled
    dw3, = _layers(nn.Conv2d(16, 16, 3, padding=1, groups=16))
    dw5, = _layers(nn.Conv2d(16, 16, 5, padding=2, groups=16))
    assert compute_cycles(dw3, eng) == compute_cycles(dw5, eng) == (16 // eng.td) * 16 * 16
    c3, = _layers(nn.Conv2d(16, 16, 3, padding=1))
    c1, = _layers(nn.Conv2d(16, 16, 1))
    assert compute_cycles(c3, eng) == 9 * compute_cycles(c1, eng)
    g2, = _layers(nn.Conv2d(16, 16, 1, groups=2))
    assert compute_cycles(g2, eng) == compute_cycles(c1, eng) / 2


def test_estimate_adds_layers_and_overheads():
    t = load_target("fpga-zc706")
    net = nn.Sequential(nn.Conv2d(16, 32, 1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1, groups=32))
    cost = TiledModel().estimate(load_torch(net, torch.randn(1, 16, 16, 16)), t)
    assert len(cost.layers) == 2                      # the ReLU is applied in the output pipeline
    eng = t.tiled
    for l in cost.layers:
        assert l.latency_s * t.clock_mhz * 1e6 >= eng.layer_overhead_cycles
    assert {l.bound for l in cost.layers} <= {"compute", t.main_memory.name, "overhead"}
