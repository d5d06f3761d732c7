"""The surrogate machinery: traced layers equal the ONNX route, fast costs equal the cost model,
bit groups, encodings and the predictor behave as documented."""
import numpy as np
import pytest
import torch

from codesign.frontends.torch_frontend import example_input, load_torch
from codesign.frontends.torch_trace import trace_mac_layers
from codesign.search.bitgroups import Sensitivity, _doubling_sizes, group_slots, stage_of
from codesign.search.evaluation import torch_to_onnx_names
from codesign.search.hw_opt import HardwareGrid, choose
from codesign.spaces import get_space
from hwmodels.bits import BitAssignment, LayerBits
from hwmodels.systolic_model import SystolicCostModel
from hwmodels.targets import load_target

FIELDS = ("op_class", "conv", "gemm", "macs", "params", "weight_bytes", "input_bytes", "output_bytes", "ops")
RANGES = {"rows": [4, 8, 16], "cols": [8, 16], "ifmap_sram_kb": [4, 16], "filter_sram_kb": [4, 16],
          "ofmap_sram_kb": [4, 8], "dataflow": ["ws", "os", "is"], "dram_bandwidth_words": [4, 16]}


@pytest.mark.parametrize("space", ["small-cnn", "mobilenetv3"])
def test_traced_layers_equal_the_onnx_route(space):
    sp = get_space(space)
    net = sp.supernet(10, 1, 8)
    rng = np.random.default_rng(3)
    for arch in (sp.largest(), sp.smallest(), sp.sample(rng)):
        module = net.static(arch).eval()
        x = example_input(module, 1, 8)
        traced = trace_mac_layers(module, x)
        onnx = load_torch(module, x, name="onnx")
        names = torch_to_onnx_names(module, x, onnx)
        by_name = {l.name: l for l in onnx.layers()}
        assert [l.name for l in traced.layers()] == list(names)
        for layer in traced.layers():
            other = by_name[names[layer.name]]
            for f in FIELDS:
                assert getattr(layer, f) == getattr(other, f), (arch, layer.name, f)


def test_grid_metrics_equal_the_systolic_cost_model_on_traced_layers():
    """The surrogate's cost (per-layer cache + one argmin) is the cost model's own figure."""
    sp = get_space("small-cnn")
    net = sp.supernet(10, 1, 8)
    module = net.static(sp.sample(np.random.default_rng(0))).eval()
    x = example_input(module, 1, 8)
    traced = trace_mac_layers(module, x)
    onnx = load_torch(module, x, name="onnx")
    names = torch_to_onnx_names(module, x, onnx)
    target = load_target("systolic")
    grid = HardwareGrid(RANGES, max_sram_kb=40)
    layers = [l.name for l in traced.layers()]
    bits_torch = BitAssignment(LayerBits(8, 8), {n: LayerBits(4 if i % 2 else 16, 8) for i, n in enumerate(layers)})
    bits_onnx = BitAssignment(LayerBits(16, 16), {names[n]: b for n, b in bits_torch.per_layer.items()})
    m = grid.network_metrics(traced, bits_torch, target, target.systolic.default.clock_mhz)
    for weights in ({"latency_ms": 1.0}, {"energy_mj": 1.0, "area_mm2": 1.0}):
        i = choose(m, weights)
        cfg = target.systolic.default.model_copy(update=grid.config(i))
        cost = SystolicCostModel(cfg).estimate(onnx, target, bits_onnx)
        assert m["latency_ms"][i] == pytest.approx(cost.latency_s * 1e3, rel=1e-12)
        assert m["energy_mj"][i] == pytest.approx(cost.energy_j * 1e3, rel=1e-12)
        assert m["area_mm2"][i] == pytest.approx(cost.area_mm2, rel=1e-12)


def test_bit_groups():
    slots = ["stem.conv", "stages.0.0.conv1.conv", "stages.0.0.conv2.conv", "stages.1.0.conv1.conv", "classifier"]
    assert stage_of("stages.1.0.conv1.conv") == "stages.1" and stage_of("stem.conv") == "stem"
    assert group_slots(slots, "network") == {"all": slots}
    assert list(group_slots(slots, "stage")) == ["stem", "stages.0", "stages.1", "classifier"]
    assert group_slots(slots, "layer") == {s: [s] for s in slots}
    sens = Sensitivity({s: v for s, v in zip(slots, [9, 1, 2, 0.5, 5])}, {s: 0.0 for s in slots}, 2, 11)
    groups = group_slots(slots, "sensitivity", 3, sens)
    assert groups["s0"] == ["stem.conv"]                           # the most sensitive alone
    assert sorted(s for g in groups.values() for s in g) == sorted(slots)
    assert _doubling_sizes(23, 4) == [1, 3, 6, 13] and sum(_doubling_sizes(70, 4)) == 70


def test_encoding_round_trips_and_predictor_is_monotone_in_bits(splits):
    """A genome decodes to the candidate it encodes; more bits never predict lower accuracy."""
    from codesign.search.config import SearchConfig
    from codesign.search.encoding import Candidate, Encoding
    from codesign.search.predictor import AccuracyPredictor, Features

    torch.manual_seed(0)
    sp = get_space("small-cnn")
    net = sp.supernet(10, 1, 8)
    slots = ["stem.conv", "classifier"]
    cfg = SearchConfig.model_validate({"quantization": {"bits": [2, 4, 8, 16]}})
    enc = Encoding(cfg, sp, {"a": ["stem.conv"], "b": ["classifier"]}, {}, False, {})
    rng = np.random.default_rng(0)
    cands = []
    for _ in range(24):
        genome = np.array([rng.integers(len(g.options)) for g in enc.genes(("arch", "bits"))])
        c = enc.decode(genome, Candidate({}, {}, {}), ("arch", "bits"))
        assert (enc.encode(c, ("arch", "bits")) == genome).all()
        assert enc.from_params(enc.to_params(c, ("arch", "bits")), None, ("arch", "bits")).to_json() == c.to_json()
        cands.append(c)
    # a measured-like response: accuracy falls with quantization noise (the kind of data the predictor sees)
    acc = [0.95 - 0.3 * 4.0 ** -(c.bits["stem.conv"][0] - 2) - 0.1 * 4.0 ** -(c.bits["classifier"][1] - 2) for c in cands]

    def info(arch):
        module = net.static(sp.validate(arch))
        wl = trace_mac_layers(module, example_input(module, 1, 8))
        return wl.macs, wl.params, slots

    sens = Sensitivity({"stem.conv": 30.0, "classifier": 1.0}, {"stem.conv": 1.0, "classifier": 10.0}, 2, 5)
    pred = AccuracyPredictor(Features(sp, enc.groups, sens, info), members=3, seed=0).fit(cands, acc)
    quality = pred.quality(cands, acc)
    assert quality.n == 24 and quality.spearman > 0.5
    low = [Candidate(c.arch, {s: (2, 2) for s in slots}) for c in cands[:6]]
    high = [Candidate(c.arch, {s: (16, 16) for s in slots}) for c in cands[:6]]
    assert np.all(pred.predict(high)[0] >= pred.predict(low)[0])
    again = AccuracyPredictor(Features(sp, enc.groups, sens, info), members=3, seed=0).fit(cands, acc)
    assert np.array_equal(again.predict(cands)[0], pred.predict(cands)[0])


def test_default_accelerator_meets_the_hardware_budgets():
    """The accelerator a strategy uses before it searches hardware respects the SRAM and area limits."""
    from hwmodels.systolic import config_from_systolic
    from hwmodels.systolic_cost import area_mm2
    from codesign.search.encoding import default_hw

    target = load_target("systolic")
    ranges = {"rows": [8, 16, 32], "cols": [8, 16, 32], "ifmap_sram_kb": [8, 16, 32], "filter_sram_kb": [8, 16, 32],
              "ofmap_sram_kb": [8, 16], "dataflow": ["ws", "os"], "dram_bandwidth_words": [4, 16]}
    free = default_hw(target, ranges, None)
    hw = default_hw(target, ranges, 64, max_area_mm2=1.0)
    area = lambda h: float(area_mm2(config_from_systolic(target.systolic.default.model_copy(update=h)), target)[0])
    assert area(free) > 1.0 >= area(hw) and sum(hw[k] for k in ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb")) <= 64
    assert all(hw[k] in v for k, v in ranges.items())
