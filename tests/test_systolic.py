"""Unit tests of the analytical systolic-array model, its cost layer and the CLI commands."""
import json

import numpy as np
import pytest

from hwmodels.errors import CodesignError
from hwmodels.targets import load_target
from hwmodels.workload import ConvDims, GemmDims, Layer, Workload
from hwmodels.systolic import (ArrayConfigs, SystolicLayers, config_from_systolic, configs_from_grid,
                               layers_from_workload, simulate)
from hwmodels.systolic_cost import area_mm2, network_costs

# 10x10x4 ifmap, 3x3 kernel, 6 filters, stride 1 -> 8x8 ofmap: M=64, N=6, K=36
ONE = SystolicLayers.from_rows([("c1", 10, 10, 3, 3, 4, 6, 1, 1)])


def _cfg(rows, cols, df, kb=64, user=False, bw=10, bits=8):
    return ArrayConfigs([rows], [cols], [kb], [kb], [kb], [df], [bw], [bw], [bw], [user], [bits])


def test_fold_arithmetic_ws_by_hand():
    # ws: Sr=K=36 -> ceil(36/8)=5 row folds, Sc=N=6 -> ceil(6/4)=2 col folds, T=M=64
    # each fold 2R + C + T - 2 = 16 + 4 + 64 - 2 = 82 demand rows; cycles = 10*82 - 1
    r = simulate(ONE, _cfg(8, 4, "ws"))
    assert r.folds[0, 0] == 10
    assert r.total_cycles[0, 0] == 819
    assert r.mapping_efficiency_pct[0, 0] == pytest.approx(100 * 36 * 6 / (32 * 10))
    assert r.compute_util_pct[0, 0] == pytest.approx(100 * 36 * 6 * 64 / (32 * (82 + 3) * 10))
    assert r.overall_util_pct[0, 0] == pytest.approx(100 * 64 * 6 * 36 / (819 * 32))
    # SRAM requests: ifmap once per col fold, filter once, ofmap once per row fold
    assert (r.ifmap_sram_reads[0, 0], r.filter_sram_reads[0, 0], r.ofmap_sram_writes[0, 0]) == (2 * 64 * 36, 216, 5 * 64 * 6)


def test_fold_arithmetic_os_and_is_by_hand():
    # os: Sr=M=64 -> 8 row folds of 8, Sc=N=6 -> 2 col folds of 4, T=K=36, fold R + C + T - 2 = 46
    r = simulate(ONE, _cfg(8, 4, "os"))
    assert r.total_cycles[0, 0] == 16 * 46 - 1
    # is: Sr=K=36 -> 5, Sc=M=64 -> 16, T=N=6, fold 2R + C + T - 2 = 24
    r = simulate(ONE, _cfg(8, 4, "is"))
    assert r.total_cycles[0, 0] == 80 * 24 - 1


def test_no_stalls_in_calc_mode_and_stalls_grow_as_bandwidth_shrinks():
    layers = SystolicLayers.from_rows([("big", 30, 30, 3, 3, 32, 64, 1, 1)])
    cfgs = ArrayConfigs([16] * 4, [16] * 4, [4] * 4, [4] * 4, [4] * 4, ["ws"] * 4,
                        [10, 16, 4, 1], [10, 16, 4, 1], [10, 16, 4, 1], [False, True, True, True], [8] * 4)
    r = simulate(layers, cfgs)
    assert r.stall_cycles[0, 0] == 0
    assert r.stall_cycles[1, 0] <= r.stall_cycles[2, 0] < r.stall_cycles[3, 0]
    assert np.all(r.total_cycles == r.compute_cycles + r.stall_cycles)


def test_vectorized_grid_equals_one_config_at_a_time():
    layers = SystolicLayers.from_rows([("a", 16, 16, 3, 3, 8, 16, 1, 1), ("b", 15, 15, 3, 3, 16, 12, 2, 2)])
    grid = configs_from_grid([4, 8], [8, 16], [2, 8], [2], [4], ["ws", "os", "is"], [4, 16])
    assert len(grid) == 2 * 2 * 2 * 3 * 2
    full = simulate(layers, grid)
    assert full.total_cycles.shape == (len(grid), 2)
    for i in range(len(grid)):
        one = ArrayConfigs(**{k: getattr(grid, k)[i:i + 1] for k in grid.__dataclass_fields__})
        r = simulate(layers, one)
        for key in ("total_cycles", "total_cycles_incl_prefetch", "stall_cycles", "ifmap_dram_reads", "ofmap_dram_writes"):
            assert np.array_equal(getattr(r, key)[0], getattr(full, key)[i]), key


def test_word_bits_shrink_sram_capacity():
    # 1 KB holds 1024 8-bit words but 512 16-bit words: a 1000-word ifmap fits only the first
    layers = SystolicLayers.from_rows([("x", 10, 10, 1, 1, 10, 4, 1, 1)])
    r8 = simulate(layers, _cfg(4, 4, "ws", kb=2, bits=8))
    r16 = simulate(layers, _cfg(4, 4, "ws", kb=2, bits=16))
    assert r8.ifmap_dram_reads[0, 0] == 1000
    assert r16.ifmap_dram_reads[0, 0] >= 1000
    assert r8.total_cycles[0, 0] == r16.total_cycles[0, 0]


def _workload():
    w = Workload("t")
    conv = ConvDims(n=2, c=8, h=14, w=14, k=16, r=3, s=3, p=14, q=14, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1)
    dw = ConvDims(n=1, c=8, h=8, w=8, k=8, r=3, s=3, p=8, q=8, groups=8, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1)
    w.add_layer(Layer("conv", "Conv", "conv", conv=conv, macs=conv.macs))
    w.add_layer(Layer("dw", "Conv", "depthwise_conv", conv=dw, macs=dw.macs))
    w.add_layer(Layer("relu", "Relu", "elementwise"))
    g = GemmDims(batch=3, m=4, n=10, k=32)
    w.add_layer(Layer("mm", "MatMul", "matmul", gemm=g, macs=g.macs))
    w.add_edge("conv", "dw", "t0", 1)
    w.add_edge("dw", "relu", "t1", 1)
    w.add_edge("relu", "mm", "t2", 1)
    return w


def test_layers_from_workload_mapping_and_macs():
    wl = _workload()
    layers = layers_from_workload(wl)
    assert layers.names == ["conv", "dw", "mm"]
    assert list(layers.ifmap_h) == [16, 10, 4] and list(layers.ifmap_w) == [16, 10, 32]
    assert list(layers.channels) == [8, 1, 1] and list(layers.num_filters) == [16, 1, 10]
    assert list(layers.batch) == [2, 1, 1] and list(layers.repeat) == [1, 8, 3]
    # SCALE-Sim's ofmap formula reproduces the workload's MACs for these layers
    assert list(layers.macs) == [l.macs for l in wl.layers() if l.macs]
    r = simulate(layers, _cfg(8, 8, "ws"))
    # a grouped conv is `groups` independent runs: 8x the cycles of one group
    one_group = simulate(SystolicLayers.from_rows([("g", 10, 10, 3, 3, 1, 1, 1, 1)]), _cfg(8, 8, "ws"))
    assert r.total_cycles[0, 1] == 8 * one_group.total_cycles[0, 0]


def test_layer_costs_for_analyze():
    from hwmodels.systolic_model import SystolicCostModel

    t = load_target("systolic")
    cost = SystolicCostModel().estimate(_workload(), t)
    rows = cost.layers
    assert [r.name for r in rows] == ["conv", "dw", "relu", "mm"]
    relu = rows[2]
    assert relu.latency_s == 0 and relu.bound == "off-array"
    cfg = t.systolic.default
    res = simulate(layers_from_workload(_workload()), config_from_systolic(cfg))
    assert rows[0].extra["cycles"] == res.total_cycles[0, 0]
    assert rows[0].latency_s == pytest.approx(rows[0].extra["cycles"] / (cfg.clock_mhz * 1e6))
    # energy at least MACs x int8 MAC energy, and DRAM traffic costs more than SRAM per byte
    assert rows[0].energy_j * 1e12 > rows[0].macs * t.energy.mac_pj["int8"]
    assert rows[0].bound in ("compute", t.main_memory.name)
    assert cost.area_mm2 is not None and cost.area_mm2 > 0


def test_area_scales_with_pes_bits_and_sram():
    t = load_target("systolic")
    a = t.area
    cfgs = ArrayConfigs([8, 16, 16], [8, 16, 16], [16, 16, 16], [16, 16, 16], [16, 16, 16], ["ws"] * 3,
                        [8] * 3, [8] * 3, [8] * 3, [True] * 3, [8, 8, 16])
    area = area_mm2(cfgs, t)
    assert area[0] == pytest.approx(64 * a.pe_mm2_8bit + 48 * a.sram_mm2_per_kb + a.fixed_mm2)
    assert area[2] - area[1] == pytest.approx(256 * a.pe_mm2_8bit * 3)     # (16/8)^2 - 1
    c = network_costs(simulate(ONE, cfgs), t)
    assert c["latency_s"].shape == (3,) and np.all(c["energy_j"] > 0)


@pytest.mark.parametrize("make", [
    lambda: _cfg(0, 8, "ws"),                                    # array of 0 rows
    lambda: _cfg(8, 8, "xs"),                                    # unknown dataflow
    lambda: _cfg(8, 8, "ws", kb=0.05),                           # SRAM below one set per 1% (100 words)
    lambda: SystolicLayers.from_rows([("bad", 3, 3, 5, 5, 1, 1, 1, 1)]),   # filter larger than ifmap
    lambda: SystolicLayers.from_rows([("bad", 8, 8, 3, 3, 0, 1, 1, 1)]),   # zero channels
])
def test_bad_inputs_raise_one_line_errors(make):
    with pytest.raises(CodesignError) as e:
        make()
    assert "\n" not in str(e.value)


# ---- CLI ---------------------------------------------------------------------------------
TOPO = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
        "c1, 10, 10, 3, 3, 4, 6, 1,\nc2, 9, 9, 3, 3, 3, 10, 2,\n")
CFG = """[general]
run_name = t
[architecture_presets]
ArrayHeight : 8
ArrayWidth : 4
IfmapSramSzkB : 64
FilterSramSzkB : 64
OfmapSramSzkB : 64
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Bandwidth : 10
Dataflow : ws
[run_presets]
InterfaceBandwidth : CALC
"""


@pytest.fixture
def cli():
    from codesign.cli import main
    return main


def test_simulate_json_to_stdout(cli, tmp_path, capsys):
    (tmp_path / "t.csv").write_text(TOPO)
    (tmp_path / "a.cfg").write_text(CFG)
    assert cli(["simulate", str(tmp_path / "t.csv"), "--config", str(tmp_path / "a.cfg"), "--json", "-"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [l["total_cycles"] for l in out["layers"]] == [819, 407]
    assert out["total_cycles"] == 819 + 407
    keys = {"name", "total_cycles", "total_cycles_incl_prefetch", "stall_cycles", "overall_util_pct",
            "mapping_efficiency_pct", "compute_util_pct", "sram_reads", "sram_writes", "dram_reads", "dram_writes"}
    assert keys <= set(out["layers"][0])


def test_simulate_with_target_and_table(cli, tmp_path, capsys):
    (tmp_path / "g.csv").write_text("Layer, M, N, K,\nfc1, 64, 100, 300,\n")
    assert cli(["simulate", str(tmp_path / "g.csv"), "--target", "systolic", "--json", str(tmp_path / "o.json")]) == 0
    assert "fc1" in capsys.readouterr().out
    assert json.loads((tmp_path / "o.json").read_text())["layers"][0]["name"] == "fc1"


@pytest.mark.parametrize("args,bad", [
    (["--config", "{cfg}", "--dataflow", "xs"], "dataflow"),
    (["--target", "systolic", "--config", "{cfg}"], "exactly one"),
    (["--config", "{tmp}/missing.cfg"], "not found"),
])
def test_simulate_bad_inputs_exit_2(cli, tmp_path, capsys, args, bad):
    (tmp_path / "t.csv").write_text(TOPO)
    (tmp_path / "a.cfg").write_text(CFG)
    args = [a.format(cfg=tmp_path / "a.cfg", tmp=tmp_path) for a in args]
    assert cli(["simulate", str(tmp_path / "t.csv"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert bad in err and "\n" not in err


def test_simulate_array_of_zero_rows_exit_2(cli, tmp_path, capsys):
    (tmp_path / "t.csv").write_text(TOPO)
    (tmp_path / "a.cfg").write_text(CFG.replace("ArrayHeight : 8", "ArrayHeight : 0"))
    assert cli(["simulate", str(tmp_path / "t.csv"), "--config", str(tmp_path / "a.cfg")]) == 2
    assert "ArrayHeight" in capsys.readouterr().err


def test_dse_writes_pareto_front(cli, tmp_path, capsys):
    (tmp_path / "t.csv").write_text(TOPO)
    (tmp_path / "r.toml").write_text("[systolic.ranges]\nrows=[4,8,16]\ncols=[4,8]\nifmap_sram_kb=[8,32]\n"
                                     "filter_sram_kb=[8]\nofmap_sram_kb=[8]\ndataflow=['ws','os']\ndram_bandwidth_words=[4,16]\n")
    assert cli(["dse", str(tmp_path / "t.csv"), "--template", "systolic", "--ranges", str(tmp_path / "r.toml"),
                "--out", str(tmp_path / "o")]) == 0
    data = json.loads((tmp_path / "o" / "pareto.json").read_text())
    assert data["configs"] == 3 * 2 * 2 * 2 * 2
    front = np.array([[p["latency_ms"], p["energy_mj"], p["area_mm2"]] for p in data["pareto"]])
    # no point of the front dominates another
    for i in range(len(front)):
        assert not np.any(np.all(front <= front[i], axis=1) & np.any(front < front[i], axis=1))
    assert (tmp_path / "o" / "pareto.csv").read_text().startswith("rows,cols")
    assert (tmp_path / "o" / "pareto.png").stat().st_size > 1000


def test_dse_bad_ranges_exit_2(cli, tmp_path, capsys):
    (tmp_path / "t.csv").write_text(TOPO)
    (tmp_path / "r.toml").write_text("[systolic.ranges]\nrows=[0, 8]\n")
    assert cli(["dse", str(tmp_path / "t.csv"), "--ranges", str(tmp_path / "r.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "rows" in capsys.readouterr().err


def test_sram_too_small_for_one_fold():
    # ws keeps an R x C weight tile in the filter SRAM's active half: 32x32 needs 1024 words = 2 KB
    ok = _cfg(32, 32, "ws", kb=2)
    ok.check_fold_fits()
    small = ArrayConfigs([32], [32], [64], [1], [64], ["ws"], [8], [8], [8], [True], [8])
    assert not small.fold_fits()[0]
    with pytest.raises(CodesignError, match="filter SRAM of 1 KB cannot hold one fold"):
        small.check_fold_fits()


def test_simulate_sram_too_small_exit_2(cli, tmp_path, capsys):
    (tmp_path / "t.csv").write_text(TOPO)
    (tmp_path / "a.cfg").write_text(CFG.replace("ArrayHeight : 8", "ArrayHeight : 128").replace("ArrayWidth : 4", "ArrayWidth : 128")
                                    .replace("FilterSramSzkB : 64", "FilterSramSzkB : 16"))
    assert cli(["simulate", str(tmp_path / "t.csv"), "--config", str(tmp_path / "a.cfg")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot hold one fold" in err and "\n" not in err
