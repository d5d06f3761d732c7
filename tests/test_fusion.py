"""Runtime kernels: what each runtime preset fuses, on real exported networks."""
import torch
from torch import nn

from codesign.frontends.torch_frontend import load_torch
from hwmodels.fusion import RUNTIMES, fuse


class Block(nn.Module):
    """conv-BN-ReLU, a grouped 1x1 with a channel shuffle, a depthwise conv and a residual add."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.g = nn.Conv2d(8, 8, 1, groups=2, bias=False)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)

    def forward(self, x):
        y = self.c1(x)
        y = self.g(y)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        return torch.relu(self.dw(y) + x)


def _kernels(runtime):
    wl = load_torch(Block(), torch.randn(1, 8, 8, 8))
    return wl, fuse(wl, RUNTIMES[runtime]).layers()


def test_tflite_fuses_activations_splits_grouped_convs_and_keeps_add():
    wl, ks = _kernels("tflite")
    ops = [k.op for k in ks]
    assert not any(op in ("Reshape", "BatchNormalization") for op in ops)      # views free, BN folded
    assert ops.count("Transpose") == 1                                           # the shuffle is one copy
    assert ops.count("Split") == 1 and ops.count("Concat") == 1                 # grouped conv split...
    groups = [k for k in ks if k.attrs.get("group_of")]
    assert len(groups) == 2 and all(k.op_class == "pointwise_conv" for k in groups)   # ...into 2 convs
    assert sum(k.macs for k in ks) == wl.macs                                   # no MAC lost or added
    assert any(k.op == "Add+Relu" for k in ks)                                   # ADD is its own kernel (with its activation)
    assert any(k.op.startswith("Conv") and k.op.endswith("Relu") for k in ks)


def test_onnxruntime_fuses_the_residual_add_and_runs_grouped_convs_natively():
    _, ks = _kernels("onnxruntime")
    ops = [k.op for k in ks]
    assert "Add" not in ops and "Conv+Add+Relu" in ops                 # FusedConv with a sum post-op
    grouped = [k for k in ks if k.op_class == "grouped_conv"]
    assert len(grouped) == 1 and "Split" not in ops
    fused = next(k for k in ks if k.op == "Conv+Add+Relu")
    assert fused.input_bytes > fused.output_bytes          # it reads the residual as well as its input


def test_no_fusion_runs_every_node():
    _, ks = _kernels("none")
    assert sum(k.op == "Relu" for k in ks) == 2
