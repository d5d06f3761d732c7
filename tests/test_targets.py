"""Targets are data validated by a schema; bad files name the file and the field."""

import re

import pytest

from hwmodels.errors import CodesignError
from hwmodels.targets import list_targets, load_target

REQUIRED = {"host", "raspberry-pi-4", "jetson-orin-nano", "stm32h7", "eyeriss", "systolic",
            "pixel3", "fpga-zc706", "xeon-gold-6226"}


def test_bundled_targets_load_and_cite_sources():
    names = set(list_targets())
    assert REQUIRED <= names
    for name in names:
        t = load_target(name)
        assert t.name == name
        assert t.sources and all(len(s) > 20 for s in t.sources)
        assert t.memory[-1].size_bytes >= max(m.size_bytes for m in t.memory[:-1] or t.memory)


def test_published_figures_in_targets():
    assert load_target("raspberry-pi-4").clock_mhz == 1500
    stm = load_target("stm32h7")
    assert stm.clock_mhz == 480 and stm.weight_memory_bytes == 2 * 2**20
    ey = load_target("eyeriss")
    assert ey.peak_gmacs["int16"] == pytest.approx(168 * 0.2)  # 168 PEs x 200 MHz
    sys_t = load_target("systolic")
    assert sys_t.kind == "template" and sys_t.systolic.default.rows == 32 and sys_t.area is not None


def test_target_by_path(tmp_path):
    src = list_targets()["host"]
    dst = tmp_path / "mine.toml"
    dst.write_text(src.read_text().replace('name = "host"', 'name = "mine"'))
    assert load_target(str(dst)).name == "mine"


def _write(tmp_path, text):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return p


def test_wrong_type_names_file_and_field(tmp_path):
    text = list_targets()["host"].read_text().replace("clock_mhz = 2100", 'clock_mhz = "fast"')
    p = _write(tmp_path, text)
    with pytest.raises(CodesignError, match=r"bad\.toml: field 'clock_mhz': "):
        load_target(str(p))


def test_missing_field_names_file_and_field(tmp_path):
    data = list_targets()["host"].read_text().replace("clock_mhz = 2100\n", "")
    p = _write(tmp_path, data)
    with pytest.raises(CodesignError, match=r"bad\.toml: field 'clock_mhz': required field is missing"):
        load_target(str(p))


def test_nested_field_and_unknown_field(tmp_path):
    text = re.sub(r"bandwidth_gbs = [0-9.]+", "bandwidth_gbs = -1", list_targets()["host"].read_text(), count=1)
    with pytest.raises(CodesignError, match=r"field 'memory\.0\.bandwidth_gbs'"):
        load_target(str(_write(tmp_path, text)))
    text = "turbo = true\n" + list_targets()["host"].read_text()
    with pytest.raises(CodesignError, match=r"field 'turbo': unknown field"):
        load_target(str(_write(tmp_path, text)))


def test_not_toml_and_unknown_name(tmp_path):
    with pytest.raises(CodesignError, match="not valid TOML"):
        load_target(str(_write(tmp_path, "name = [unclosed")))
    with pytest.raises(CodesignError, match="unknown target 'nope'; known targets: .*host"):
        load_target("nope")
    with pytest.raises(CodesignError, match="target file not found"):
        load_target(str(tmp_path / "missing.toml"))


def test_template_ranges_validated(tmp_path):
    text = list_targets()["systolic"].read_text().replace('dataflow = ["ws", "os", "is"]', 'dataflow = ["ws", "xs"]')
    with pytest.raises(CodesignError, match=r"systolic\.ranges\.dataflow"):
        load_target(str(_write(tmp_path, text)))
