"""The Bit Fusion template: hand-computed cycles, memory-bound layers, vectorised = scalar, the CLI,
a joint search on it, and bad target files."""
import json

import numpy as np
import pytest
import torch

from conftest import REPO, TINY_SPACE, run_cli
from hwmodels.bitfusion import FusionConfigs, simulate
from hwmodels.bits import BitAssignment, LayerBits
from hwmodels.errors import CodesignError
from hwmodels.registry import get_cost_model, resolve_name
from hwmodels.systolic import SystolicLayers
from hwmodels.targets import load_target, load_target_file

SQUEEZENET = REPO / "examples" / "squeezenet.onnx"
BITS = {"w8a8": (8, 8), "w4a4": (4, 4), "w2a2": (2, 2), "w8a4": (8, 4), "w16a16": (16, 16)}


@pytest.fixture(scope="module")
def target():
    return load_target("bitfusion")


def fixed(target, **hw):
    """The template fixed at one config (what the search hands the cost model)."""
    bf = target.bitfusion.model_copy(update={"default": target.bitfusion.default.model_copy(update=hw)})
    return target.model_copy(update={"bitfusion": bf})


@pytest.fixture(scope="module")
def conv_workload():
    """A real ONNX export of one 3x3 conv: 64 -> 32 channels on a 6x6 input (16 output pixels)."""
    from codesign.frontends.torch_frontend import load_torch

    torch.manual_seed(0)
    return load_torch(torch.nn.Conv2d(64, 32, 3, bias=False).eval(), torch.randn(1, 64, 6, 6), name="conv")


def test_compute_bound_conv_cycles_by_hand(target, conv_workload):
    # 4 x 8 fusion units, SRAMs that hold everything, a 2^20-bit/cycle interface: compute-bound.
    # pixels 4*4 = 16, column folds ceil(32/8) = 4, reduction K = 3*3*64 = 576 over 4 rows x (8/w)(8/a):
    # w8a8: 16*4*ceil(576/4) = 9216; w4a4 x1/4; w2a2 x1/16; w8a4 x1/2; w16a16: 4 cycles per MAC, x4.
    tgt = fixed(target, rows=4, cols=8, ifmap_sram_kb=512, filter_sram_kb=512, ofmap_sram_kb=512,
                dram_bits_per_cycle=2**20)
    model = get_cost_model(resolve_name("auto", tgt))
    assert model.name == "bitfusion"
    expect = {"w8a8": 9216, "w4a4": 2304, "w2a2": 576, "w8a4": 4608, "w16a16": 36864}
    latency = {}
    for label, (w, a) in BITS.items():
        cost = model.estimate(conv_workload, tgt, BitAssignment(LayerBits(w, a)))
        (layer,) = [l for l in cost.layers if l.op == "Conv"]
        assert layer.extra["compute_cycles"] == expect[label], label
        # the only stall: loading the first tiles and draining the last, < 1 cycle of traffic -> 1 cycle
        assert layer.extra["cycles"] == expect[label] + 1 and layer.bound == "compute"
        assert (layer.extra["w_bits"], layer.extra["a_bits"]) == (w, a)
        latency[label] = cost.latency_s
    assert latency["w8a8"] == pytest.approx(9217 / 500e6)
    assert latency["w4a4"] / latency["w8a8"] == pytest.approx(2305 / 9217)
    assert latency["w16a16"] > 3.9 * latency["w8a8"]


def test_memory_bound_layer_does_not_speed_up_with_fewer_compute_bits(target):
    # a 4096 x 4096 fully connected layer at batch 1 on a 64-bit/cycle interface: weight traffic bound
    layers = SystolicLayers.gemm(["fc"], [1], [4096], [4096])
    cfg = FusionConfigs.from_config(target.bitfusion.default.model_copy(update={"dram_bits_per_cycle": 64}))
    unit = target.bitfusion.unit
    run = {k: simulate(layers, cfg, [w], [a], unit) for k, (w, a) in BITS.items()}
    cycles = {k: float(r.total_cycles[0, 0]) for k, r in run.items()}
    compute = {k: float(r.compute_cycles[0, 0]) for k, r in run.items()}
    assert all(cycles[k] > 10 * compute[k] for k in BITS)            # memory-bound at every width
    assert compute["w8a4"] == compute["w8a8"] / 2                    # the array would be twice as fast...
    assert cycles["w8a4"] / cycles["w8a8"] > 0.99                    # ...but the weights still stream at 8 bits
    # halving both widths halves the traffic, not a quarter of the time as compute-bound would
    traffic = {k: float(r.dram_bits[0, 0]) for k, r in run.items()}
    assert cycles["w4a4"] / cycles["w8a8"] == pytest.approx(traffic["w4a4"] / traffic["w8a8"], rel=0.01)
    assert 0.45 < cycles["w4a4"] / cycles["w8a8"] < 0.55


# The authors' simulator output (github.com/hsharma35/bitfusion results/bitfusion-eyeriss-sim-sweep.csv: 16x32
# units, 64/32/16 KB, 192 bits/cycle, batch 16): Cycles - Memory wait cycles of CIFAR-10 (QNN) and LeNet-5 (TWN)
# layers at the bits of their benchmarks.py.  (layer, SAME-padded input, C, K, kernel, w, a) -> their compute cycles
AUTHORS = [
    (("conv0", 34, 34, 3, 3, 3, 128), 8, 8, 717654 - 586582), (("conv1", 34, 34, 3, 3, 128, 128), 2, 2, 799062 - 209238),
    (("conv2", 18, 18, 3, 3, 128, 256), 2, 2, 402091 - 107179), (("conv5", 10, 10, 3, 3, 512, 512), 2, 2, 510636 - 215724),
    (("lenet_conv0", 36, 36, 5, 5, 1, 32), 2, 2, 179116 - 162732), (("lenet_conv1", 20, 20, 5, 5, 32, 64), 2, 2, 205635 - 835),
]


def test_compute_cycles_equal_the_authors_simulator(target):
    rows = [(*shape, 1, 1, 16) for shape, _, _, _ in AUTHORS]
    rows += [("fc6", 16, 8192, 1, 8192, 1, 1024, 1, 1), ("lenet_fc1", 16, 4096, 1, 4096, 1, 512, 1, 1)]
    w = [x[1] for x in AUTHORS] + [2, 2]
    expect = [x[3] for x in AUTHORS] + [99671 - 83287, 25259 - 21163]
    res = simulate(SystolicLayers.from_rows(rows), FusionConfigs.from_config(target.bitfusion.default), w, w,
                   target.bitfusion.unit)
    assert res.compute_cycles[0].tolist() == expect


def test_grid_scores_equal_the_cost_model(target):
    """The nested optimiser's vectorised scores are the cost model's, config by config, at mixed bits."""
    from codesign.frontends.onnx_frontend import load_onnx
    from codesign.search.hw_opt import HardwareGrid

    wl = load_onnx(SQUEEZENET)
    convs = [l.name for l in wl.layers() if l.op == "Conv"]
    bits = BitAssignment(LayerBits(8, 8), {convs[0]: LayerBits(8, 4), convs[1]: LayerBits(2, 2),
                                          convs[2]: LayerBits(16, 8), convs[-1]: LayerBits(4, 8)})
    ranges = {"rows": [4, 16], "cols": [8, 32], "ifmap_sram_kb": [8, 64], "filter_sram_kb": [16, 128],
              "ofmap_sram_kb": [8], "dram_bits_per_cycle": [64, 512]}
    grid = HardwareGrid(ranges, None)                   # the kind follows from the ranges' fields
    assert grid.kind.name == "bitfusion" and len(grid) == 32
    m = grid.network_metrics(wl, bits, target, target.bitfusion.default.clock_mhz)
    model = get_cost_model("bitfusion")
    for i in (0, 7, 19, 31):
        cost = model.estimate(wl, fixed(target, **grid.config(i)), bits)
        assert m["latency_ms"][i] == pytest.approx(cost.latency_s * 1e3, rel=1e-12)
        assert m["energy_mj"][i] == pytest.approx(cost.energy_j * 1e3, rel=1e-12)
        assert m["area_mm2"][i] == pytest.approx(cost.area_mm2, rel=1e-12)
    # fewer bits on the same array: faster and less energy (latency responds to bits, not only energy)
    low = grid.network_metrics(wl, BitAssignment(LayerBits(4, 4)), target, 500.0)
    high = grid.network_metrics(wl, BitAssignment(LayerBits(8, 8)), target, 500.0)
    assert np.all(low["latency_ms"] < high["latency_ms"]) and np.all(low["energy_mj"] < high["energy_mj"])


def test_analyze_and_dse_cli(tmp_path, target):
    out = {}
    for b in ("w8a8", "w4a4"):
        run_cli("analyze", SQUEEZENET, "--target", "bitfusion", "--bits", b, "--json", tmp_path / f"{b}.json", check_rc=0)
        out[b] = json.loads((tmp_path / f"{b}.json").read_text())
    assert out["w8a8"]["cost_model"] == "bitfusion" and out["w8a8"]["area_mm2"] > 1
    assert out["w4a4"]["latency_ms"] < 0.5 * out["w8a8"]["latency_ms"]
    assert out["w4a4"]["energy_mj"] < out["w8a8"]["energy_mj"]
    conv = [l for l in out["w4a4"]["layers"] if l["op"] == "Conv"]
    assert {(l["w_bits"], l["a_bits"]) for l in conv} == {(4, 4)}

    (tmp_path / "r.toml").write_text("[bitfusion.ranges]\nrows = [8, 16]\ncols = [8, 32]\nifmap_sram_kb = [16, 64]\n"
                                     "filter_sram_kb = [32, 128]\nofmap_sram_kb = [8]\ndram_bits_per_cycle = [64, 256]\n")
    run_cli("dse", SQUEEZENET, "--target", "bitfusion", "--ranges", tmp_path / "r.toml", "--bits", "w4a8",
            "--out", tmp_path / "dse", check_rc=0)
    data = json.loads((tmp_path / "dse" / "pareto.json").read_text())
    assert data["template_kind"] == "bitfusion" and data["configs"] == 32 and data["bits"] == "w4a8"
    front = np.array([[p["latency_ms"], p["energy_mj"], p["area_mm2"]] for p in data["pareto"]])
    for i in range(len(front)):
        assert not np.any(np.all(front <= front[i], axis=1) & np.any(front < front[i], axis=1))
    # a front member re-costed by the cost model on the template fixed at it
    from codesign.frontends.onnx_frontend import load_onnx

    best = data["pareto"][0]
    hw = {k: best[k] for k in type(target.bitfusion.ranges).model_fields}
    cost = get_cost_model("bitfusion").estimate(load_onnx(SQUEEZENET), fixed(target, **hw), BitAssignment(LayerBits(4, 8)))
    assert best["latency_ms"] == pytest.approx(cost.latency_s * 1e3, rel=1e-9)
    assert best["energy_mj"] == pytest.approx(cost.energy_j * 1e3, rel=1e-9)


def test_float_layer_on_bitbricks_is_a_one_line_error(tmp_path):
    r = run_cli("analyze", SQUEEZENET, "--target", "bitfusion", "--bits", "fp")
    assert r.returncode == 2
    err = r.stderr.strip()
    assert "\n" not in err and "BitBricks" in err and "--bits" in err


@pytest.mark.parametrize("edit, field", [
    (("rows = 16", "rows = 0"), "bitfusion.default.rows"),
    (("area_um2 = 1734.55", "area_um2 = 1734.55\nbricks = 16"), "bitfusion.unit.bricks"),
    (("a_bits = 8", "a_bits = 3"), "bitfusion.default.a_bits"),
    (("bank_area_mm2 = [0.00149898, ", "bank_area_mm2 = ["), "bitfusion.sram"),
])
def test_bad_bitfusion_field_names_file_and_field(tmp_path, edit, field):
    text = (REPO / "targets" / "bitfusion.toml").read_text()
    assert edit[0] in text
    bad = tmp_path / "bad_bitfusion.toml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(CodesignError) as e:
        load_target_file(bad)
    assert str(bad) in str(e.value) and field in str(e.value)
    r = run_cli("analyze", SQUEEZENET, "--target", bad)
    assert r.returncode == 2 and "\n" not in r.stderr.strip() and field in r.stderr


def test_template_needs_exactly_one_table(tmp_path):
    text = (REPO / "targets" / "bitfusion.toml").read_text()
    systolic = (REPO / "targets" / "systolic.toml").read_text()
    both = tmp_path / "both.toml"
    both.write_text(text + "\n" + systolic[systolic.index("\n[systolic.default]"):])
    with pytest.raises(CodesignError, match="exactly one of the tables"):
        load_target_file(both)


JOINT = """
seed = 0
algorithm = "nsga2"
objectives = ["accuracy", "latency_ms", "energy_mj", "area_mm2"]
{space}
[supernet]
epochs = 2
checkpoint_dir = "{ckpt}"
[target]
name = "bitfusion"
ranges = {{ rows = [4, 8, 16], cols = [4, 8, 16], ifmap_sram_kb = [4, 8], filter_sram_kb = [8, 16], ofmap_sram_kb = [4, 8], dram_bits_per_cycle = [64, 192] }}
[quantization]
bits = [2, 4, 8]
granularity = "stage"
[constraints]
max_sram_kb = 32
[budget]
trials = 3
minutes = 5
[search]
method = "direct"
"""


@pytest.mark.slow
def test_joint_search_on_bitfusion_writes_an_accelerator_that_reproduces_its_cost(tmp_path):
    cfg = tmp_path / "bf.toml"
    cfg.write_text(JOINT.format(space=TINY_SPACE, ckpt=tmp_path / "ckpt"))
    out = tmp_path / "out"
    run_cli("search", cfg, "--out", out, "--strategy", "joint", check_rc=0)
    design = json.loads((out / "design.json").read_text())
    acc = load_target(out / "accelerator.toml")
    assert acc.template_kind == "bitfusion"
    hw = acc.bitfusion.default
    assert sum((hw.ifmap_sram_kb, hw.filter_sram_kb, hw.ofmap_sram_kb)) <= 32
    assert {k: design["hw"][k] for k in type(acc.bitfusion.ranges).model_fields} == \
        {k: getattr(hw, k) for k in type(acc.bitfusion.ranges).model_fields}
    # the fp32 export, costed at the design's per-layer bits on the written accelerator: the search's figures
    bits = {"default": "w8a8", "layers": {k: f"w{w}a{a}" for k, (w, a) in design["onnx_layer_bits"].items()}}
    (tmp_path / "bits.json").write_text(json.dumps(bits))
    run_cli("analyze", out / "model.onnx", "--target", out / "accelerator.toml", "--bits", tmp_path / "bits.json",
            "--input-shape", "input=1x1x8x8", "--json", tmp_path / "a.json", check_rc=0)
    got = json.loads((tmp_path / "a.json").read_text())
    m = design["metrics"]
    assert got["latency_ms"] == pytest.approx(m["latency_ms"], rel=1e-6)
    assert got["energy_mj"] == pytest.approx(m["energy_mj"], rel=1e-6)
    assert got["area_mm2"] == pytest.approx(m["area_mm2"], rel=1e-6)
    # and the deliverable itself: the QDQ model's own bit-widths (read by the QDQ frontend) on the accelerator file
    run_cli("analyze", out / "model.qdq.onnx", "--target", out / "accelerator.toml", "--json", tmp_path / "q.json",
            check_rc=0)
    got = json.loads((tmp_path / "q.json").read_text())
    assert got["latency_ms"] == pytest.approx(m["latency_ms"], rel=0.01)
    assert got["energy_mj"] == pytest.approx(m["energy_mj"], rel=0.01)
