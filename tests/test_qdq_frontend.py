"""QDQ models in `codesign analyze` / `codesign check`: bits read from the Q/DQ nodes, Q/DQ folded away.

The acceptance test runs a real (tiny) search and re-costs its deliverable, DIR/model.qdq.onnx on
DIR/accelerator.toml, from the file alone: it must reproduce the latency and energy the search reported.
"""
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from conftest import TINY_SPACE, run_cli
from codesign.frontends.onnx_frontend import load_onnx
from codesign.frontends.qdq_reader import layer_bits
from hwmodels.bits import BitAssignment, LayerBits
from hwmodels.registry import get_cost_model, resolve_name
from hwmodels.targets import load_target

SEARCH = """
seed = 0
algorithm = "nsga2"
objectives = ["accuracy", "latency_ms", "energy_mj", "area_mm2"]
{space}
[supernet]
epochs = 1
checkpoint_dir = "{ckpt}"
[target]
name = "systolic"
ranges = {{ rows = [4, 8, 16], cols = [4, 8, 16], ifmap_sram_kb = [4, 8], filter_sram_kb = [4, 8], ofmap_sram_kb = [4, 8], dataflow = ["ws", "os"], dram_bandwidth_words = [4, 16] }}
[quantization]
bits = [2, 4, 16]
[constraints]
max_sram_kb = 20
[budget]
trials = 2
minutes = 5
"""
QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


def _one_line_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1000:], proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr + proc.stdout and len(err.splitlines()) == 1 and err.startswith("error:"), err
    for f in fragments:
        assert f in err, err


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("qdq_search")
    cfg = root / "cfg.toml"
    cfg.write_text(SEARCH.format(space=TINY_SPACE, ckpt=root / "ckpt"))
    out = root / "out"
    run_cli("search", str(cfg), "--out", str(out), "--strategy", "joint", check_rc=0)
    return out


@pytest.mark.slow
def test_check_and_analyze_reproduce_what_the_search_reported(searched):
    out = searched
    design = json.loads((out / "design.json").read_text())
    reported = design["metrics"]
    front = json.loads((out / "pareto.json").read_text())["front"]
    row = next(m for m in front if m["trial"] == design["trial"] and m["strategy"] == design["strategy"]
               and m["hw"] == design["hw"])
    assert (row["latency_ms"], row["energy_mj"]) == (reported["latency_ms"], reported["energy_mj"])
    qdq, acc = out / "model.qdq.onnx", out / "accelerator.toml"
    # the file keeps its dynamic batch dimension: no --input-shape needed
    chk = run_cli("check", qdq, "--target", acc, "--max-latency-ms", reported["latency_ms"] * 1.01,
                  "--max-energy-mj", reported["energy_mj"] * 1.01, "--json", "-", check_rc=0)
    verdict = json.loads(chk.stdout)
    ana = json.loads(run_cli("analyze", qdq, "--target", acc, "--json", "-", check_rc=0).stdout)
    for got in (verdict["actual"], ana):
        assert got["latency_ms"] == pytest.approx(reported["latency_ms"], rel=0.01)
        assert got["energy_mj"] == pytest.approx(reported["energy_mj"], rel=0.01)
    assert any("dynamic batch dimension 'batch' taken as 1" in n for n in ana["notes"])
    # every layer ran at the bits the search chose, and the JSON says they came from the model
    assert ana["bits"]["source"] == "model"
    for name, (w, a) in design["onnx_layer_bits"].items():
        assert ana["bits"]["layers"][name] == {"weight": w, "activation": a, "from_qdq": True}
    assert not {l["op"] for l in ana["layers"]} & (QDQ_OPS | {"Clip"})
    # Q/DQ nodes are not layers: the same layers (and per-layer costs) as the search's own costing
    saved = {l["name"]: l for l in json.loads((out / "report_data.json").read_text())["cost"]["layers"]}
    assert {l["name"] for l in ana["layers"]} == set(saved)
    for l in ana["layers"]:
        assert l["latency_ms"] == pytest.approx(saved[l["name"]]["latency_s"] * 1e3, rel=1e-6, abs=1e-12)
        assert l["energy_mj"] == pytest.approx(saved[l["name"]]["energy_j"] * 1e3, rel=1e-6, abs=1e-12)


def _small_cnn(splits):
    from codesign.spaces import get_space

    space = get_space("small-cnn", stage_channels=[8, 16], strides=[1, 2], depths=[1, 2], widths=[0.5, 1.0], kernels=[3])
    arch = {"d0": 2, "w0": 1.0, "k0_0": 3, "k0_1": 3, "d1": 2, "w1": 1.0, "k1_0": 3, "k1_1": 3}
    return space.build(arch, splits.num_classes, splits.in_channels, splits.resolution, seed=0).eval()


def test_project_writer_mixed_bits_are_read_and_costed_as_the_search_costs_them(splits, tmp_path):
    """codesign.search.qdq at 2/4/8/16/32 bits (2-bit weights in int4, 2/4-bit activations by a Clip):
    each layer reads back its own bits, and every cost model gives what the search's costing gives."""
    from codesign.frontends.torch_frontend import example_input, export_onnx, load_torch
    from codesign.quant import layer_names_for_bits, quant_params, quantize_model
    from codesign.search.evaluation import torch_to_onnx_names
    from codesign.search.qdq import onnx_accuracy, write_qdq

    net = _small_cnn(splits)
    x = example_input(net, splits.in_channels, splits.resolution)
    choices = [(2, 8), (4, 4), (8, 2), (16, 8), (4, 16), (2, 2), (8, 32), (32, 8)]
    bit_map = {n: choices[i % len(choices)] for i, n in enumerate(layer_names_for_bits(net))}
    fp32 = export_onnx(net, x, tmp_path / "model.onnx", dynamic_batch=True)
    wl = load_torch(net, x)                                   # what the search costs
    names = torch_to_onnx_names(net, x, wl)
    qdq = write_qdq(fp32, tmp_path / "model.qdq.onnx", quant_params(quantize_model(net, bit_map, splits.val.x[:256])), names)
    assert onnx_accuracy(qdq, splits.test.x[:64], splits.test.y[:64]) >= 0       # it runs in onnxruntime
    read = load_onnx(qdq)
    assert read.quantized_layers == sorted(names.values())
    for torch_name, bits in bit_map.items():
        assert read.bits.for_layer(names[torch_name]) == LayerBits(*bits), torch_name
    assert layer_bits(qdq)[names["stem.conv"]] == (2, 8)
    # folded: the float model's layers and edges, nothing of the Q/DQ/Clip bookkeeping
    assert [l.name for l in read.layers()] == [l.name for l in wl.layers()]
    assert {(a, b) for a, b in read.graph.edges} == {(a, b) for a, b in wl.graph.edges}
    assert read.macs == wl.macs and read.params == wl.params
    widest = max(max(b) for b in bit_map.values())
    search_bits = BitAssignment(LayerBits(widest, widest), {names[n]: LayerBits(*b) for n, b in bit_map.items()})
    for target in ("systolic", "host", "raspberry-pi-4", "stm32h7"):
        tgt = load_target(target)
        model = get_cost_model(resolve_name("auto", tgt))
        a, b = model.estimate(wl, tgt, search_bits), model.estimate(read, tgt, read.bits)
        assert b.latency_s == pytest.approx(a.latency_s, rel=1e-9), target
        assert (b.energy_j or 0) == pytest.approx(a.energy_j or 0, rel=1e-9), target
    # integer widths only (a bit-flexible array runs no float layer): the bitfusion template too
    int_map = {n: [(2, 8), (4, 4), (8, 2), (16, 8), (4, 16), (2, 2)][i % 6] for i, n in enumerate(bit_map)}
    qdq = write_qdq(fp32, tmp_path / "int.qdq.onnx", quant_params(quantize_model(net, int_map, splits.val.x[:256])), names)
    read = load_onnx(qdq)
    search_bits = BitAssignment(LayerBits(16, 16), {names[n]: LayerBits(*b) for n, b in int_map.items()})
    tgt = load_target("bitfusion")
    model = get_cost_model(resolve_name("auto", tgt))
    a, b = model.estimate(wl, tgt, search_bits), model.estimate(read, tgt, read.bits)
    assert (b.latency_s, b.energy_j) == pytest.approx((a.latency_s, a.energy_j), rel=1e-9)


class _Reader:
    def __init__(self, shape, n=8):
        from onnxruntime.quantization import CalibrationDataReader

        rng = np.random.default_rng(0)
        self.items = iter([{"input": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)])
        CalibrationDataReader.__init__(self)

    def get_next(self):
        return next(self.items, None)


def test_onnxruntime_quantize_static_8bit_and_int4_overrides(tmp_path):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from codesign.frontends.torch_frontend import export_onnx

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10))
    fp32 = export_onnx(net, torch.randn(1, 1, 8, 8), tmp_path / "cnn.onnx", dynamic_batch=True)
    float_wl = load_onnx(fp32)
    q8 = tmp_path / "cnn.q8.onnx"
    quantize_static(str(fp32), str(q8), _Reader((1, 1, 8, 8)), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    assert sum(n.op_type in QDQ_OPS for n in onnx.load(q8).graph.node) > 10
    wl = load_onnx(q8)
    assert not {l.op for l in wl.layers()} & QDQ_OPS and wl.macs == float_wl.macs and wl.params == float_wl.params
    mac_layers = [l.name for l in wl.layers() if l.macs]
    assert len(mac_layers) == 3 and all(wl.bits.for_layer(n) == LayerBits(8, 8) for n in mac_layers)
    conv2 = next(n for n in mac_layers if n.startswith("/2/"))
    assert set(wl.graph.predecessors(conv2)) == {"/0/Conv"}          # edges go producer -> consumer
    # per-tensor overrides: both conv weights int4 (onnxruntime writes com.microsoft Q/DQ below opset 21)
    weights = [t.name for t in onnx.load(fp32).graph.initializer if t.name.endswith("weight")]
    q4 = tmp_path / "cnn.q4.onnx"
    quantize_static(str(fp32), str(q4), _Reader((1, 1, 8, 8)), quant_format=QuantFormat.QDQ, per_channel=True,
                    extra_options={"TensorQuantOverrides": {w: [{"quant_type": QuantType.QInt4}] for w in weights[:2]}})
    bits = layer_bits(q4)
    assert [bits[n] for n in mac_layers] == [(4, 8), (4, 8), (8, 8)]
    ana = json.loads(run_cli("analyze", q4, "--target", "systolic", "--json", "-", check_rc=0).stdout)
    assert ana["macs"] == float_wl.macs and {l["precision"] for l in ana["layers"] if l["macs"]} == {"int8"}


def test_bits_option_overrides_the_model_bits_with_a_note(tmp_path):
    from onnxruntime.quantization import QuantFormat, quantize_static

    from codesign.frontends.torch_frontend import export_onnx

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    fp32 = export_onnx(net, torch.randn(1, 1, 8, 8), tmp_path / "mlp.onnx")
    q8 = tmp_path / "mlp.q8.onnx"
    quantize_static(str(fp32), str(q8), _Reader((1, 1, 8, 8)), quant_format=QuantFormat.QDQ)
    own = json.loads(run_cli("analyze", q8, "--target", "systolic", "--json", "-", check_rc=0).stdout)
    over = json.loads(run_cli("analyze", q8, "--target", "systolic", "--bits", "w16a16", "--json", "-", check_rc=0).stdout)
    assert own["bits"]["source"] == "model" and over["bits"]["source"] == "--bits"
    assert any("--bits overrides the bit-widths read from the model" in n for n in over["notes"])
    assert {v["weight"] for v in over["bits"]["layers"].values()} == {16}
    assert over["energy_mj"] > own["energy_mj"]
    plain = json.loads(run_cli("analyze", fp32, "--target", "systolic", "--json", "-", check_rc=0).stdout)
    assert plain["bits"] == {"source": "target default"}


def _qdq_gemm(scale=0.1, zp_type=TensorProto.INT8, w_type=TensorProto.INT8, scale_len=None, drop_scale=False):
    """x -> Q -> DQ -> MatMul(DQ(weight)): one quantized layer, malformed as asked."""
    w = helper.make_tensor("w_q", w_type, [4, 3], [1] * 12)
    s = numpy_helper.from_array(np.full(scale_len or (), scale, np.float32), "w_s")
    zp = helper.make_tensor("w_zp", zp_type, [scale_len] if scale_len else [], [0] * (scale_len or 1))
    inits = [w, s, zp, numpy_helper.from_array(np.array(0.05, np.float32), "a_s"),
             helper.make_tensor("a_zp", TensorProto.UINT8, [], [128])]
    dq_inputs = ["w_q", "" if drop_scale else "w_s", "w_zp"]
    nodes = [helper.make_node("QuantizeLinear", ["x", "a_s", "a_zp"], ["xq"], name="xq"),
             helper.make_node("DequantizeLinear", ["xq", "a_s", "a_zp"], ["xdq"], name="xdq"),
             helper.make_node("DequantizeLinear", dq_inputs, ["w"], name="w_dq", axis=1),
             helper.make_node("MatMul", ["xdq", "w"], ["y"], name="mm")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


def test_a_well_formed_hand_written_qdq_model(tmp_path):
    path = tmp_path / "ok.onnx"
    onnx.save(_qdq_gemm(), path)
    wl = load_onnx(path)
    assert [l.name for l in wl.layers()] == ["mm"] and wl.bits.for_layer("mm") == LayerBits(8, 8)


@pytest.mark.parametrize("kind, kwargs, fragments", [
    ("zero-scale", {"scale": 0.0}, ["DequantizeLinear node 'w_dq'", "scale 'w_s' holds 0", "> 0"]),
    ("negative-scale", {"scale": -0.5}, ["scale 'w_s' holds -0.5"]),
    ("nan-scale", {"scale": float("nan")}, ["scale 'w_s' holds nan"]),
    ("zp-type-mismatch", {"zp_type": TensorProto.UINT8}, ["zero point 'w_zp' is uint8", "data 'w_q' is int8"]),
    ("missing-scale", {"drop_scale": True}, ["w_dq", "input 1"]),        # onnx's checker names it first
    ("float-weight", {"w_type": TensorProto.FLOAT, "zp_type": TensorProto.FLOAT}, ["'w_dq'", "not a quantized integer type"]),
    ("per-channel-length", {"scale_len": 2}, ["scale 'w_s' has 2 values", "axis 1 of 'w_q' has 3"]),
])
def test_bad_qdq_inputs_are_one_line_errors(tmp_path, kind, kwargs, fragments):
    path = tmp_path / f"{kind}.onnx"
    onnx.save(_qdq_gemm(**kwargs), path)
    for cmd in (["analyze", path], ["check", path, "--target", "systolic", "--max-latency-ms", "1"]):
        _one_line_error(run_cli(*cmd), f"{kind}.onnx", *fragments)
