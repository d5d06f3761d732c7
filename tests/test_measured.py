"""The measured-kernel cost model: onnxruntime's fusion mapped back, kernels timed without the
profiler, exact hits, regression, determinism, direct measurement, the TVM backend."""
import warnings

import onnx
import pytest
import torch

from codesign.frontends.onnx_frontend import load_onnx
from codesign.frontends.torch_frontend import export_onnx
from codesign.profiling import profile_blocks
from hwmodels import measured as measured_mod
from hwmodels.bits import BitAssignment, LayerBits
from hwmodels.errors import CodesignError
from hwmodels.kernel_backend import get_backend
from hwmodels.kernel_predictor import KernelPredictor
from hwmodels.kernel_profiling import run_profile
from hwmodels.kernel_store import KernelStore, machine_fingerprint
from hwmodels.measured import MeasuredModel
from hwmodels.ort_graph import optimize
from hwmodels.ort_runner import measure_onnx_latency_ms
from hwmodels.quiet import QuietGate
from hwmodels.targets import load_target
from nets import MobileNetV2Small

pytestmark = pytest.mark.slow   # profiles kernels with onnxruntime and TVM

warnings.filterwarnings("ignore", message=".*NchwcTransformer.*")
ORT = get_backend("onnxruntime")


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
    backend = get_backend("onnxruntime")
    backend.repeats = 20
    summary = run_profile(s, backend, profile_blocks(backend, [nets["small"]], samples=40, seed=3), passes=2)
    assert summary["failed"] == 0 and not summary["interrupted"] and summary["overhead"] is not None
    yield s
    s.close()


def _key():
    return "onnxruntime", machine_fingerprint("onnxruntime"), 1, "all"


_GATE: list = []


def _lowest_ms(path, rounds=6):
    """The network's fastest quiet round, as the store's kernels were measured in quiet moments:
    a shared machine runs 1.3-2x slower for spells of up to tens of seconds (hwmodels.quiet), and
    a whole-network time taken in one would be compared with kernels timed outside it (a CI run
    failed so: 0.209 ms measured against 0.103 ms predicted, where this machine gives 0.085/0.071).
    One gate for the module, so its notion of "fast" is learned across the tests."""
    if not _GATE:
        _GATE.append(QuietGate())
    gate = _GATE[0]
    gate.wait_quiet(max_wait_s=10.0)
    return measure_onnx_latency_ms(path, repeats=20, warmup=3, min_time_s=0.03, rounds=rounds, gate=gate)["fast_ms"]


def test_fusion_is_onnxruntimes_and_maps_back(nets):
    wl = load_onnx(nets["small"])
    cg = ORT.compile(wl)
    ops = [k.op.split(":")[1] for k in cg.kernels]
    assert not cg.standins
    # Conv+Relu fuse; the residual Add+Relu fuse into the second conv; 3 convs -> 3 conv kernels
    assert ops.count("Conv") == 3, ops
    covered = [n for k in cg.kernels for n in k.layers]
    assert len(covered) == len(set(covered))                       # each layer in one kernel
    conv_layers = [l.name for l in wl.layers() if l.op == "Conv"]
    assert set(conv_layers) <= set(covered)
    adds = [l.name for l in wl.layers() if l.op == "Add"]
    k_add = next(k for k in cg.kernels if adds[0] in k.layers)
    assert k_add.features["has_sum"] == 1 and k_add.features["macs"] > 0


@pytest.mark.parametrize("net", ["small", "mbv2"])
def test_rebuilt_graph_runs_the_kernels_of_the_real_model(nets, net):
    """The skeleton rebuilt from the Workload becomes exactly the kernels onnxruntime runs for the
    real file: none missing, none extra (fusion and NCHWc reorders included)."""
    from collections import Counter

    real = Counter(n.op_type for n in optimize(onnx.load(nets[net])).graph.node)
    rebuilt = Counter(k.op.split(":")[1] for k in ORT.compile(load_onnx(nets[net])).kernels)
    assert rebuilt == real


def test_kernels_are_timed_without_framework_costs():
    """A trivial node times at ~0 once the trivial model is subtracted; chains of trivial nodes give
    a small positive per-node cost and a per-run cost (what the network total adds back)."""
    from hwmodels.ort_kernel_timer import KernelTimer, measure_overhead, trivial_model

    timer = KernelTimer()
    us, _, runs = timer.time(trivial_model(1))
    assert runs >= 40 and us < 1.0
    assert 2 < timer.time(trivial_model(16))[0] < 16 * 3       # 15 more nodes cost something, not much
    per_run, per_node = measure_overhead(gate=QuietGate(), rounds=3)
    assert 1 < per_run < 50 and 0 < per_node < 3, (per_run, per_node)


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


def test_profiled_network_is_predicted_close_to_its_measurement(store, nets):
    """All kernels exact hits: overhead + kernels timed alone agrees with the network run whole
    (lowest of several rounds each; loose bound, the machine is shared)."""
    pred = MeasuredModel(store=store).estimate(load_onnx(nets["small"]), load_target("host")).latency_s * 1e3
    meas = _lowest_ms(nets["small"])
    assert 0.65 < pred / meas < 1.5, (pred, meas)


def test_unseen_network_is_predicted_within_2x(store, nets):
    wl = load_onnx(nets["mbv2"])
    cost = MeasuredModel(store=store).estimate(wl, load_target("host"))
    assert any("predicted by the per-class regressors" in n for n in cost.notes)
    meas = _lowest_ms(nets["mbv2"])
    pred = cost.latency_s * 1e3
    assert meas / 2 < pred < meas * 2, (pred, meas)


def test_direct_measurement_and_auto_mode(store, tmp_path, nets):
    """mode="measure" times the network itself (MnasNet-style) and splits it by the stored kernels;
    "auto" measures when the store has nothing for this machine, predicts when every kernel is an
    exact hit (nothing to gain from measuring)."""
    tgt = load_target("host")
    wl = load_onnx(nets["small"])
    direct = MeasuredModel(store=store, mode="measure").estimate(wl, tgt)
    assert any(n.startswith("measured directly") for n in direct.notes)
    meas = _lowest_ms(nets["small"])
    assert 0.7 < direct.latency_s * 1e3 / meas < 1.4, (direct.latency_s * 1e3, meas)
    ov = store.overhead(*_key())
    kernels = sum(l.latency_s for l in direct.layers) * 1e6
    assert kernels == pytest.approx(direct.latency_s * 1e6 - ov["per_run_us"] - ov["per_node_us"] * len(ORT.compile(wl).kernels), rel=1e-6)
    auto = MeasuredModel(store=store, mode="auto").estimate(wl, tgt)
    assert not any(n.startswith("measured directly") for n in auto.notes)
    empty = MeasuredModel(cache=tmp_path / "none.sqlite", mode="auto").estimate(wl, tgt)
    assert any(n.startswith("measured directly") and "timed alone" in n for n in empty.notes)
    assert sum(l.latency_s for l in empty.layers) > 0
    with pytest.raises(CodesignError, match="mode"):
        MeasuredModel(mode="sometimes")


def test_busy_measurements_are_measured_again(tmp_path):
    """A gate that never finds the machine quiet: every block is measured in every pass, nothing is
    marked quiet, and a rerun measures the blocks again (one quiet gate then settles them)."""
    from hwmodels.kernel_sampling import random_blocks

    blocks = random_blocks(3, seed=5)
    s = KernelStore(tmp_path / "k.sqlite")
    never = QuietGate(threshold=0.5)
    first = run_profile(s, ORT, blocks, passes=2, gate=never, measure_overhead=False)
    assert first["profiled"] == 3 and first["remeasured"] == 3 and first["stored_quiet"] == 0
    again = run_profile(s, ORT, blocks, passes=1, gate=False, measure_overhead=False)
    assert again["already_known"] == 0 and again["profiled"] == 3 and again["stored_quiet"] == again["stored_total"]
    assert run_profile(s, ORT, blocks, passes=1, gate=False, measure_overhead=False)["already_known"] == 3
    s.close()


def test_predictions_are_deterministic(store, nets):
    wl = load_onnx(nets["mbv2"])
    tgt = load_target("host")
    a = MeasuredModel(store=store).estimate(wl, tgt)
    measured_mod._PREDICTORS.clear()                 # retrain from the same store
    b = MeasuredModel(store=store).estimate(wl, tgt)
    assert a.latency_s == b.latency_s
    assert [l.latency_s for l in a.layers] == [l.latency_s for l in b.layers]
    recs = store.records(*_key())
    p1, p2 = KernelPredictor().fit(recs), KernelPredictor().fit(list(reversed(recs)))
    feats = recs[0].features
    assert p1.predict_us(recs[0].kind, feats) == p2.predict_us(recs[0].kind, feats)


def test_low_bits_noted_as_fp32(store, nets):
    cost = MeasuredModel(store=store).estimate(load_onnx(nets["small"]), load_target("host"),
                                               BitAssignment(LayerBits(8, 8)))
    assert any("only fp32" in n for n in cost.notes)


def test_registry_and_unknown_backend():
    from hwmodels.registry import get_cost_model
    assert get_cost_model("measured").name == "measured"
    with pytest.raises(CodesignError):
        MeasuredModel(backend="cuda")
    with pytest.raises(CodesignError):
        get_backend("cuda")


def test_tvm_backend_measures_and_predicts(tmp_path, nets):
    wl = load_onnx(nets["small"])
    s = KernelStore(tmp_path / "tvm.sqlite")
    backend = get_backend("tvm")
    blocks = backend.blocks([wl])
    assert 3 <= len(blocks) <= len(wl.layers())
    summary = run_profile(s, backend, blocks, passes=1)
    assert summary["failed"] == 0 and summary["kernels_stored"] == len(blocks)
    cost = MeasuredModel(store=s, backend="tvm").estimate(wl, load_target("host"))
    assert cost.latency_s > 0 and any("exact hits" in n for n in cost.notes)
    s.close()


def test_analyze_measure_flag(nets, tmp_path):
    """`codesign analyze --measure` runs the file; with --input-shape it runs the network rebuilt at
    those shapes (a batch dimension made dynamic here), which agrees with the file's own run."""
    import json

    from conftest import run_cli

    res = run_cli("analyze", nets["small"], "--measure", "--json", "-", check_rc=0)
    as_file = json.loads(res.stdout)["measured_latency_ms"]
    m = onnx.load(nets["small"])
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    dyn = tmp_path / "dynamic.onnx"
    onnx.save(m, dyn)
    name = m.graph.input[0].name
    res = run_cli("analyze", dyn, "--measure", "--input-shape", f"{name}=1x3x32x32", "--json", "-", check_rc=0)
    rebuilt = json.loads(res.stdout)["measured_latency_ms"]
    assert as_file > 0 and 0.6 < rebuilt / as_file < 1.6, (rebuilt, as_file)
