"""Parsing SCALE-Sim topology CSVs and .cfg files as scalesim 3.0.0 reads them."""
import pytest

from hwmodels.errors import CodesignError
from hwmodels.scalesim_io import read_cfg, read_topology

HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"


def test_conv_topology_with_trailing_commas_and_depthwise(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(HEADER + "Conv1, 224, 224, 7, 7, 3, 64, 2,\n\nDP_conv, 56, 56, 3, 3, 4, 1, 1,\n")
    t = read_topology(p)
    assert t.names == ["Conv1"] + [f"DP_convChannel_{i}" for i in range(4)]
    assert list(t.ifmap_h) == [224, 56, 56, 56, 56] and list(t.channels) == [3, 1, 1, 1, 1]
    assert list(t.stride_h) == list(t.stride_w) == [2, 1, 1, 1, 1]
    assert t.ofmap_h[0] == 110          # SCALE-Sim: ceil((224 - 7 + 2) / 2) = 110, no padding


def test_gemm_topology_detected_from_header(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("Layer, M, N, K,\nfc1, 128, 64, 256,\n")
    t = read_topology(p)
    assert (t.m[0], t.n[0], t.k[0]) == (128, 64, 256)
    assert (t.ifmap_h[0], t.ifmap_w[0], t.filt_h[0], t.filt_w[0], t.channels[0]) == (128, 256, 1, 256, 1)


@pytest.mark.parametrize("row,what", [
    ("c1, 10, 10, 3, 3, 4, 6, 1", "trailing"),          # no trailing comma: SCALE-Sim would drop the stride
    ("c1, 10, 10, 3, 3, 4,", "fields"),
    ("c1, 10, ten, 3, 3, 4, 6, 1,", "IFMAP Width"),
    ("c1, 10, 10, 3, 3, 0, 6, 1,", "Channels"),
    ("c1, 2, 10, 3, 3, 4, 6, 1,", "larger than ifmap"),
])
def test_malformed_topology_rows(tmp_path, row, what):
    p = tmp_path / "t.csv"
    p.write_text(HEADER + row + "\n")
    with pytest.raises(CodesignError) as e:
        read_topology(p)
    msg = str(e.value)
    assert what in msg and "t.csv:2" in msg and "\n" not in msg


def test_empty_and_missing_topology(tmp_path):
    with pytest.raises(CodesignError, match="not read|cannot read"):
        read_topology(tmp_path / "nope.csv")
    (tmp_path / "h.csv").write_text(HEADER)
    with pytest.raises(CodesignError, match="no layer rows"):
        read_topology(tmp_path / "h.csv")


CFG = """[general]
run_name = resnet_32x32

[architecture_presets]
ArrayHeight:    32
ArrayWidth:     16
IfmapSramSzkB:    64
FilterSramSzkB:   128
OfmapSramSzkB:    32
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 12,12,12
Dataflow : os
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 8
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 6
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[run_presets]
InterfaceBandwidth: USER
UseRamulatorTrace: False
"""


def test_cfg_user_bandwidth_as_scalesim_reads_it(tmp_path):
    p = tmp_path / "a.cfg"
    p.write_text(CFG)
    c = read_cfg(p)
    assert (c.rows, c.cols, c.ifmap_kb, c.filter_kb, c.ofmap_kb, c.dataflow) == (32, 16, 64, 128, 32, "os")
    assert c.user_bandwidth and c.bandwidth == [12, 12, 12]
    a = c.to_configs()
    # scalesim 3.0.0: ifmap/filter SRAMs fill at the [layout] bank bandwidths, ofmap drains at Bandwidth[0]
    assert (a.ifmap_bw[0], a.filter_bw[0], a.ofmap_bw[0], bool(a.user_bw[0])) == (8, 6, 12, True)


def test_cfg_calc_mode_ignores_bandwidth(tmp_path):
    p = tmp_path / "a.cfg"
    p.write_text(CFG.replace("USER", "CALC").replace("Bandwidth : 12,12,12", "Bandwidth : junk"))
    c = read_cfg(p)
    a = c.to_configs()
    assert not c.user_bandwidth and (a.ifmap_bw[0], a.filter_bw[0], a.ofmap_bw[0]) == (10, 10, 16)


@pytest.mark.parametrize("old,new,what", [
    ("Dataflow : os", "Dataflow : rs", "Dataflow"),
    ("InterfaceBandwidth: USER", "InterfaceBandwidth: FAST", "InterfaceBandwidth"),
    ("ArrayHeight:    32", "ArrayHeight:    0", "ArrayHeight"),
    ("ArrayWidth:     16", "ArrayWidth:     sixteen", "ArrayWidth"),
    ("Bandwidth : 12,12,12", "Bandwidth : 0", "Bandwidth"),
    ("FilterSramSzkB:   128\n", "", "FilterSramSzkB"),
    ("[run_presets]", "[run]", "run_presets"),
    ("[general]", "general", "not a valid .cfg"),
])
def test_malformed_cfg(tmp_path, old, new, what):
    p = tmp_path / "a.cfg"
    p.write_text(CFG.replace(old, new))
    with pytest.raises(CodesignError) as e:
        read_cfg(p)
    assert what in str(e.value) and "\n" not in str(e.value)
