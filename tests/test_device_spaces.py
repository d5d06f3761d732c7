"""The FBNet builder (HW-NAS-Bench's table rows as networks) and the NAS-Bench-201-like cell space."""
import numpy as np
import pytest

from codesign.spaces import cells, fbnet
from hwmodels.errors import CodesignError


def _analytic_macs(ops):
    """MACs of a row from the space's definition (README of the data set), by hand."""
    total = 3 * 16 * 9 * 32 * 32
    for slot, name in zip(fbnet.layer_slots(), fbnet.parse_ops(ops)):
        op = fbnet.parse_op(name)
        h, s, out = slot.size, slot.stride, slot.size // slot.stride
        if op is None:
            if slot.c_in != slot.c_out or s != 1:
                total += out * out * slot.c_in * slot.c_out
            continue
        hid = slot.c_in * op.expand
        total += h * h * hid * slot.c_in // op.groups + out * out * hid * op.kernel ** 2 + out * out * hid * slot.c_out // op.groups
    return total + 4 * 4 * 352 * 1504 + 1504 * 100


@pytest.mark.parametrize("ops", ["7 8 1 8 4 8 8 8 7 4 1 4 7 3 2 7 3 2 4 2 4 5", " ".join(["8"] * 22), " ".join(["1"] * 22)])
def test_network_and_lut_blocks_match_the_definition(ops):
    wl = fbnet.network_workload(ops.split())
    assert wl.macs == _analytic_macs(ops.split())
    entries = fbnet.lut_entries(ops.split())
    assert len(entries) == 26 and entries[0].key == "ConvNorm_H32_W32_Cin3_Cout16_kernel3_stride1_group1"
    assert entries[-1].key == "FC_Cin1504_Cout100"
    assert sum(fbnet.entry_workload(e).macs for e in entries) == wl.macs


def test_lut_keys_follow_hw_nas_bench():
    e = fbnet.lut_entries("2 8 1 8 4 8 8 8 7 4 1 4 7 3 2 7 3 2 4 2 4 5".split())
    assert e[1].key == "ConvBlock_H32_W32_Cin16_Cout16_exp3_kernel3_stride1_group1"
    assert e[2].key == "Skip_H32_W32_Cin16_Cout24_stride1"
    assert e[6].key == "Skip_H32_W32_Cin24_Cout32_stride2"
    assert e[9].key == "ConvBlock_H16_W16_Cin32_Cout32_exp6_kernel5_stride1_group1"
    assert fbnet.entry_workload(fbnet.lut_entries(["skip"] * 22)[1]).macs == 0     # identity: nothing runs


def test_bad_rows_are_one_line_errors():
    with pytest.raises(CodesignError, match="22 layers"):
        fbnet.parse_ops("1 2 3")
    with pytest.raises(CodesignError, match="k7_e1"):
        fbnet.parse_op("k7_e1")


def test_cells_sample_build_and_export(tmp_path):
    from codesign.frontends.onnx_frontend import load_onnx

    rng = np.random.default_rng(0)
    archs = [cells.sample(rng) for _ in range(20)]
    assert len(set(archs)) > 15 and all(cells._connected(a) for a in archs)
    arch = ("nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none", "nor_conv_1x1", "skip_connect")
    assert cells.arch_str(arch) == "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|"
    wl = load_onnx(cells.export(arch, tmp_path / "c.onnx", cells_per_stage=1))
    ops = {l.op for l in wl.layers()}
    assert {"Conv", "AveragePool", "Add", "Gemm"} <= ops
    with pytest.raises(CodesignError):
        cells.build(("nope",) * 6)
