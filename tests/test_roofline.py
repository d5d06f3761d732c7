"""Roofline behaviour that follows from the target data, not from tuned constants."""
import math

import pytest
import torch

from codesign.frontends.onnx_frontend import load_onnx
from codesign.frontends.torch_frontend import load_torch
from hwmodels.targets import load_target, target_from_dict
from conftest import REPO, LIGHT
from hwmodels.bits import BitAssignment, LayerBits, compute_precision, parse_bits
from hwmodels.roofline import RooflineModel, mac_energy_pj


@pytest.fixture(scope="module")
def resnet():
    return load_onnx(LIGHT / "light_resnet50.onnx")


def test_int8_vs_fp32_energy_on_accelerator_follows_published_per_op_energies(resnet):
    t = load_target("systolic")
    model = RooflineModel()
    fp = model.estimate(resnet, t, BitAssignment(LayerBits(32, 32)))
    q = model.estimate(resnet, t, BitAssignment(LayerBits(8, 8)))
    mac_ratio = t.energy.mac_pj["fp32"] / t.energy.mac_pj["int8"]       # Horowitz: (3.7+0.9)/(0.2+0.1)
    assert mac_ratio == pytest.approx(15.33, rel=0.01)
    ratio = fp.energy_j / q.energy_j
    # compute energy shrinks by mac_ratio and every byte moved by 4x, so the total lies between
    assert 4.0 <= ratio <= mac_ratio
    compute_fp = sum(l.macs for l in fp.layers) * t.energy.mac_pj["fp32"]
    compute_q = sum(l.macs for l in q.layers) * t.energy.mac_pj["int8"]
    assert compute_fp / compute_q == pytest.approx(mac_ratio)
    assert q.latency_s <= fp.latency_s
    assert sum(l.weight_bytes for l in q.layers) * 4 == pytest.approx(sum(l.weight_bytes for l in fp.layers), rel=1e-3)


def test_mixed_bit_energy_is_geometric_mean():
    t = load_target("systolic")
    e = mac_energy_pj(t, LayerBits(4, 8), "int8")
    assert e == pytest.approx(math.sqrt(t.energy.mac_pj["int4"] * t.energy.mac_pj["int8"]))
    assert mac_energy_pj(t, LayerBits(4, 4), "int4") < e < mac_energy_pj(t, LayerBits(8, 8), "int8")


def test_compute_precision_falls_back_to_what_target_has():
    assert compute_precision(LayerBits(4, 8), ["fp32", "int8"]) == "int8"
    assert compute_precision(LayerBits(4, 4), ["fp32", "int8"]) == "int8"
    assert compute_precision(LayerBits(16, 16), ["fp32", "fp16", "int8"]) == "fp16"
    assert compute_precision(LayerBits(32, 32), ["fp32", "int8"]) == "fp32"
    assert compute_precision(LayerBits(2, 2), ["int2", "int4", "int8"]) == "int2"


def test_bounds_depthwise_is_slow_and_big_fc_is_memory_bound(resnet):
    # the datasheet host (efficiencies from the MLAS kernels' design, not fitted): a roofline property
    host = load_target(REPO / "benchmarks" / "datasheet_targets" / "host.toml")
    vgg = load_onnx(LIGHT / "light_vgg19.onnx")
    cost = RooflineModel().estimate(vgg, host)
    fc6 = max((l for l in cost.layers if l.op == "Gemm"), key=lambda l: l.weight_bytes)
    assert fc6.bound == "DRAM"                     # 400 MB of fc6 weights stream from DRAM
    conv = max((l for l in cost.layers if l.op == "Conv"), key=lambda l: l.macs)
    assert conv.bound == "compute"
    shuffle = RooflineModel().estimate(load_onnx(LIGHT / "light_shufflenet.onnx"), host)
    dw = [l for l in shuffle.layers if l.op_class == "depthwise_conv"]
    pw = [l for l in shuffle.layers if l.op_class in ("pointwise_conv", "conv") and l.macs]
    rate = lambda ls: sum(l.macs for l in ls) / sum(l.latency_s for l in ls)
    assert rate(dw) < rate(pw) / 3                  # depthwise reaches far less of peak


def test_what_fits_decides_dram_traffic():
    base = load_target("host").model_dump(exclude_none=True)
    small = dict(base, memory=[dict(m) for m in base["memory"]])
    for m in small["memory"][:-1]:
        m["size_bytes"] = 1024.0                    # nothing fits on chip
    small_t = target_from_dict(small)
    wl = load_onnx(LIGHT / "light_squeezenet.onnx")
    big = RooflineModel().estimate(wl, load_target("host"))
    tiny = RooflineModel().estimate(wl, small_t)
    assert sum(l.dram_bytes for l in tiny.layers) > 3 * sum(l.dram_bytes for l in big.layers)
    assert tiny.latency_s > big.latency_s


def test_per_layer_bits_map(tmp_path, resnet):
    names = [l.name for l in resnet.layers() if l.op == "Conv"]
    f = tmp_path / "bits.json"
    f.write_text('{"default": "w8a8", "layers": {"%s": "w4a8"}}' % names[1])
    bits = parse_bits(str(f), [l.name for l in resnet.layers()])
    t = load_target("systolic")
    mixed = RooflineModel().estimate(resnet, t, bits)
    uniform = RooflineModel().estimate(resnet, t, parse_bits("w8a8"))
    by_name = {l.name: l for l in mixed.layers}
    u = {l.name: l for l in uniform.layers}
    assert by_name[names[1]].weight_bytes * 2 == pytest.approx(u[names[1]].weight_bytes, abs=1)
    assert by_name[names[1]].energy_j < u[names[1]].energy_j
    assert by_name[names[2]].energy_j == pytest.approx(u[names[2]].energy_j)


def test_mcu_fit_notes():
    wl = load_onnx(LIGHT / "light_resnet50.onnx")
    cost = RooflineModel().estimate(wl, load_target("stm32h7"), parse_bits("w8a8"))
    assert any("weights" in n and "does not fit" in n for n in cost.notes)


def test_process_node_scales_energy():
    data = load_target("systolic").model_dump(exclude_none=True)
    wl = load_onnx(LIGHT / "light_squeezenet.onnx")
    e45 = RooflineModel().estimate(wl, target_from_dict(dict(data, process_nm=45)), parse_bits("w8a8")).energy_j
    e22 = RooflineModel().estimate(wl, target_from_dict(dict(data, process_nm=22.5)), parse_bits("w8a8")).energy_j
    assert e22 == pytest.approx(e45 / 2)


def test_zero_shot_ranking_on_torch_nets():
    """Bigger versions of the same net are predicted slower (sanity of monotonicity)."""
    from nets import MobileNetV2Small

    host = load_target("host")
    lat = [RooflineModel().estimate(load_torch(MobileNetV2Small(width=w), torch.randn(1, 3, r, r)), host).latency_s
           for w, r in ((8, 32), (16, 64), (32, 96))]
    assert lat[0] < lat[1] < lat[2]
