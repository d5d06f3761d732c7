"""The measured-kernel cost model: fusion mapping, exact hits, regression, determinism, TVM path."""
import warnings

import pytest
import torch

from hwmodels.errors import CodesignError
from codesign.frontends.onnx_frontend import load_onnx
from codesign.frontends.torch_frontend import export_onnx
from hwmodels.targets import load_target
from hwmodels import measured as measured_mod
from hwmodels.kernel_predictor import KernelPredictor
from hwmodels.kernel_sampling import blocks_from_workloads, random_blocks
from hwmodels.kernel_store import KernelStore
from hwmodels.measured import MeasuredModel, run_profile
from hwmodels.ort_profiler import compile_workload
from hwmodels.ort_runner import measure_onnx_latency_ms
from hwmodels.bits import BitAssignment, LayerBits
from nets import MobileNetV2Small

pytestmark = pytest.mark.slow   # profiles kernels with onnxruntime and TVM

warnings.filterwarnings("ignore", message=".*NchwcTransformer.*")


class Residual(torch.nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.a = torch.nn.Sequential(torch.nn.Conv2d(c, c, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(c), torch.nn.ReLU())
        self.b = torch.nn.Sequential(torch.nn.Conv2d(c, c, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(self.b(self.a(x)) + x)


class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU())
        self.res = Residual(16)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(self.res(self.stem(x)))
        return self.fc(x.mean((2, 3)))


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    d = tmp_path_factory.mktemp("nets")
    torch.manual_seed(0)
    small = export_onnx(SmallNet().eval(), torch.randn(1, 3, 32, 32), d / "small.onnx")
    mbv2 = export_onnx(MobileNetV2Small().eval(), torch.randn(1, 3, 32, 32), d / "mbv2.onnx")
    return {"small": small, "mbv2": mbv2}


@pytest.fixture(scope="module")
def store(tmp_path_factory, nets):
    """Kernels of SmallNet (exact hits) plus random samples (regression data); not MobileNetV2."""
    s = KernelStore(tmp_path_factory.mktemp("cache") / "k.sqlite")
    blocks = blocks_from_workloads([load_onnx(nets["small"])]) + random_blocks(40, seed=3)
    summary = run_profile(s, blocks, repeats=8, warmup=2)
    assert summary["failed"] == 0 and not summary["interrupted"]
    yield s
    s.close()


def test_fusion_is_onnxruntimes_and_maps_back(nets):
    wl = load_onnx(nets["small"])
    cg = compile_workload(wl)
    ops = [k.op.split(":")[1] for k in cg.kernels]
    assert not cg.standins
    # Conv+Relu fuse; the residual Add+Relu fuse into the second conv; 3 convs -> 3 conv kernels
    assert ops.count("Conv") == 3, ops
    covered = [n for names in cg.layers_of.values() for n in names]
    assert sorted(covered) == sorted(l.name for l in wl.layers() if l.name in covered)
    assert len(covered) == len(set(covered))                       # each layer in one kernel
    conv_layers = [l.name for l in wl.layers() if l.op == "Conv"]
    assert set(conv_layers) <= set(covered)
    adds = [l.name for l in wl.layers() if l.op == "Add"]
    owner = {n: k for k, names in cg.layers_of.items() for n in names}
    k_add = next(k for k in cg.kernels if k.name == owner[adds[0]])
    assert k_add.features["has_sum"] == 1 and k_add.features["macs"] > 0


def test_empty_store_raises_codesign_error(tmp_path, nets):
    with pytest.raises(CodesignError, match="codesign profile"):
        MeasuredModel(cache=tmp_path / "empty.sqlite").estimate(load_onnx(nets["small"]), load_target("host"))


def test_exact_hits_and_structure(store, nets):
    wl = load_onnx(nets["small"])
    cost = MeasuredModel(store=store).estimate(wl, load_target("host"))
    assert cost.cost_model == "measured" and cost.target == "host"
    assert [l.name for l in cost.layers] == [l.name for l in wl.layers()]
    note = next(n for n in cost.notes if "exact hits" in n)
    kernels, exact = int(note.split(" runtime kernels")[0].split()[-1]), int(note.split(" exact hits")[0].split()[-1])
    assert exact == kernels            # every kernel of a profiled network is an exact hit
    assert sum(l.latency_s for l in cost.layers) > 0
    assert all(l.latency_s >= 0 for l in cost.layers)
    conv = [l for l in cost.layers if l.op == "Conv"]
    assert all(l.extra["source"] in ("exact", "fused") for l in conv)
    assert any(l.extra["source"] == "fused" for l in cost.layers)   # BN/Relu fused away
    assert cost.macs == wl.macs


def test_unseen_network_is_predicted_within_3x(store, nets):
    wl = load_onnx(nets["mbv2"])
    cost = MeasuredModel(store=store).estimate(wl, load_target("host"))
    assert any("predicted by the per-class regressors" in n for n in cost.notes)
    meas = measure_onnx_latency_ms(nets["mbv2"], repeats=20, warmup=5)["median_ms"]
    pred = cost.latency_s * 1e3
    assert meas / 3 < pred < meas * 3, (pred, meas)


def test_predictions_are_deterministic(store, nets):
    wl = load_onnx(nets["mbv2"])
    tgt = load_target("host")
    a = MeasuredModel(store=store).estimate(wl, tgt)
    measured_mod._PREDICTORS.clear()                 # retrain from the same store
    b = MeasuredModel(store=store).estimate(wl, tgt)
    assert a.latency_s == b.latency_s
    assert [l.latency_s for l in a.layers] == [l.latency_s for l in b.layers]
    recs = store.records(*_key(store))
    p1, p2 = KernelPredictor().fit(recs), KernelPredictor().fit(list(reversed(recs)))
    feats = recs[0].features
    assert p1.predict_us(recs[0].kind, feats) == p2.predict_us(recs[0].kind, feats)


def _key(store):
    from hwmodels.kernel_store import machine_fingerprint
    return "onnxruntime", machine_fingerprint("onnxruntime"), 1, "all"


def test_low_bits_noted_as_fp32(store, nets):
    cost = MeasuredModel(store=store).estimate(load_onnx(nets["small"]), load_target("host"),
                                               BitAssignment(LayerBits(8, 8)))
    assert any("only fp32" in n for n in cost.notes)


def test_registry_and_unknown_backend():
    from hwmodels.registry import get_cost_model
    assert get_cost_model("measured").name == "measured"
    with pytest.raises(CodesignError):
        MeasuredModel(backend="cuda")


def test_tvm_backend_measures_and_predicts(tmp_path, nets):
    from hwmodels.measured import tvm_blocks

    wl = load_onnx(nets["small"])
    s = KernelStore(tmp_path / "tvm.sqlite")
    blocks = tvm_blocks([wl])
    assert 3 <= len(blocks) <= len(wl.layers())
    summary = run_profile(s, blocks, backend="tvm")
    assert summary["failed"] == 0 and summary["kernels_stored"] == len(blocks)
    cost = MeasuredModel(store=s, backend="tvm").estimate(wl, load_target("host"))
    assert cost.latency_s > 0 and any("exact hits" in n for n in cost.notes)
    s.close()
