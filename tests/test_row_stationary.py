"""The row-stationary mapping model: folding, replication, utilisation, traffic, and why depthwise maps poorly."""
import numpy as np
import pytest
import torch
from torch import nn

from codesign.frontends.torch_frontend import load_torch
from hwmodels.row_stationary import Problem, RowStationaryModel, hw_key, mappings
from hwmodels.targets import load_target


@pytest.fixture(scope="module")
def eyeriss():
    return load_target("eyeriss")


def _best(pb, t):
    rs = t.row_stationary
    c = mappings(pb, hw_key(rs))
    cyc = np.maximum(c[:, 0], np.maximum(c[:, 1] / rs.glb_words_per_cycle, c[:, 2] / rs.dram_words_per_cycle))
    return c[int(np.argmin(cyc))]


@pytest.mark.parametrize("pb", [
    Problem(256, 384, 1, 3, 3, 13, 13, 15, 15, 1),      # AlexNet CONV3
    Problem(96, 256, 1, 5, 5, 27, 27, 31, 31, 1),       # AlexNet CONV2 (groups merged)
    Problem(24, 144, 1, 1, 1, 32, 32, 32, 32, 1),       # a pointwise expansion
    Problem(1, 1, 144, 3, 3, 32, 32, 34, 34, 1),        # a depthwise 3x3
])
def test_mapping_is_physical(pb, eyeriss):
    for comp, glb, dram, util, passes in mappings(pb, hw_key(eyeriss.row_stationary)):
        assert comp >= pb.macs / 168 - 1e-6             # never more than one MAC per PE per cycle
        assert 0 < util <= 1 + 1e-9
        assert dram >= pb.g * pb.m * pb.c * pb.r * pb.s  # every weight is read from DRAM once at least
        assert glb >= dram - pb.g * pb.c * pb.h * pb.w - 1e-6


def _cycles(cand, t):
    rs = t.row_stationary
    return max(cand[0], cand[1] / rs.glb_words_per_cycle, cand[2] / rs.dram_words_per_cycle)


def test_dense_conv_fills_the_array_and_depthwise_does_not(eyeriss):
    dense_pb = Problem(256, 384, 1, 3, 3, 13, 13, 15, 15, 1)
    dw_pb = Problem(1, 1, 144, 3, 3, 32, 32, 34, 34, 1)
    dense, depthwise = _best(dense_pb, eyeriss), _best(dw_pb, eyeriss)
    assert dense[3] > 0.9         # 3 filter rows x 13 output rows, replicated 4x over channels: 156 of 168 PEs
    assert depthwise[3] < dense[3] - 0.2   # one plane at a time: R x (strips of E) PEs at most
    # no channel accumulation and no filter reuse: each MAC needs ~10x the buffer traffic...
    assert depthwise[1] / dw_pb.macs > 5 * dense[1] / dense_pb.macs
    # ...so the layer is bandwidth-bound and takes several times longer per MAC
    assert _cycles(depthwise, eyeriss) / dw_pb.macs > 2.5 * _cycles(dense, eyeriss) / dense_pb.macs


def test_strips_fold_wide_outputs(eyeriss):
    """E = 55 output rows do not fit 14 columns: the set is folded into strips, and no mapping beats MACs / PEs."""
    pb = Problem(3, 96, 1, 11, 11, 55, 55, 227, 227, 4)      # AlexNet CONV1
    best = _best(pb, eyeriss)
    assert best[0] >= pb.macs / 168 and best[4] > 1


def test_network_estimate_bounds_and_layout_ops(eyeriss):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(16, 32, 3, padding=1)
            self.dw = nn.Conv2d(32, 32, 3, padding=1, groups=32)
            self.pool = nn.AvgPool2d(2)

        def forward(self, x):
            y = torch.relu(self.a(x))
            y = y.view(1, 2, 16, 16, 16).transpose(1, 2).reshape(1, 32, 16, 16)   # a channel shuffle
            return self.pool(self.dw(y) + y)

    cost = RowStationaryModel().estimate(load_torch(Net(), torch.randn(1, 16, 16, 16)), eyeriss)
    by_op = {l.op: l for l in cost.layers}
    assert by_op["Transpose"].bound == "free" and by_op["Transpose"].latency_s == 0     # a write-order remap
    assert "Relu" not in by_op                                                           # applied as psums drain
    assert any(op.endswith("+Add") for op in by_op)                                      # residual preloads psums
    assert by_op["AveragePool"].latency_s > 0
    names = {m.name for m in eyeriss.memory} | {"compute", "overhead", "free"}
    assert {l.bound for l in cost.layers} <= names
    assert cost.latency_s == pytest.approx(sum(l.latency_s for l in cost.layers) + eyeriss.overheads.per_network_us * 1e-6)
    assert cost.energy_j > 0


def test_sequential_groups_are_slower_than_parallel(eyeriss):
    seq = hw_key(eyeriss.row_stationary)
    par = seq[:-1] + (True,)
    pb = Problem(12, 12, 2, 1, 1, 32, 32, 32, 32, 1)            # a grouped 1x1
    assert mappings(pb, seq)[:, 0].min() >= mappings(pb, par)[:, 0].min()
