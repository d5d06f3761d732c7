"""Property-based fuzzing (hypothesis) of every parser a user's file or option reaches: any input
gives a valid object or the one-line ``CodesignError``, never another exception."""
import string
import tempfile
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.frontends.onnx_frontend import parse_input_shapes
from codesign.search.config import load_config
from hwmodels.bits import BitAssignment, parse_bits
from hwmodels.calibration import read_measurements
from hwmodels.errors import CodesignError
from hwmodels.scalesim_io import read_cfg, read_topology
from hwmodels.targets import Target, load_target_file

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REPO = Path(__file__).resolve().parent.parent
TARGET = (REPO / "targets" / "systolic.toml").read_text()
CONFIG = (REPO / "examples" / "digits_systolic.toml").read_text()

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(string.ascii_lowercase + "_", max_size=12), inner, max_size=4)),
                      max_leaves=12)


def _write(data: bytes, suffix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix="fuzz-"))
    p = d / f"input{suffix}"
    p.write_bytes(data)
    return p


def _toml(obj) -> bytes:
    """A TOML document from a dict with None dropped (TOML has no null); unrepresentable -> raw repr."""
    def clean(o):
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items() if v is not None}
        if isinstance(o, list):
            return [clean(v) for v in o if v is not None]
        return o
    try:
        return tomli_w.dumps(clean(obj)).encode()
    except Exception:
        return repr(obj).encode()


def _mutate_lines(text: str, picks: list[tuple[int, str]]) -> bytes:
    """Replace some lines' right-hand sides by fuzzed values: near-valid files reach deep validation."""
    lines = text.splitlines()
    for i, v in picks:
        j = i % len(lines)
        if "=" in lines[j]:
            lines[j] = lines[j].split("=", 1)[0] + "= " + v
    return "\n".join(lines).encode()


def _expect(fn, *args, kind=None):
    try:
        out = fn(*args)
    except CodesignError as e:
        assert str(e).strip(), "an empty error message"
        return None
    if kind is not None:
        assert isinstance(out, kind), type(out)
    return out


toml_values = st.one_of(st.integers(-10**20, 10**20).map(str), st.floats().map(lambda f: repr(f).replace("inf", "inf")),
                        st.sampled_from(["nan", "inf", "-inf", "1e308", "-0", '""', "[]", "{}", '"x"', "[1, 2]", "true",
                                         "[[1]]", "{a = 1}", "0", "-1"]),
                        st.text(max_size=10).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'))


@SETTINGS
@given(st.one_of(st.binary(max_size=400), values.map(_toml),
                 st.lists(st.tuples(st.integers(0, 400), toml_values), min_size=1, max_size=6).map(lambda p: _mutate_lines(TARGET, p))))
def test_target_toml(data):
    _expect(load_target_file, _write(data, ".toml"), kind=Target)


@SETTINGS
@given(st.one_of(st.binary(max_size=400), values.map(_toml),
                 st.lists(st.tuples(st.integers(0, 400), toml_values), min_size=1, max_size=6).map(lambda p: _mutate_lines(CONFIG, p))))
def test_search_config(data):
    _expect(load_config, _write(data, ".toml"))


@SETTINGS
@given(st.one_of(st.text(max_size=30), st.from_regex(r"w-?\d{0,12}a-?\d{0,12}", fullmatch=True),
                 values.filter(lambda v: isinstance(v, dict))))
def test_bits_specs(spec):
    if isinstance(spec, str) and (spec.endswith(".json") or spec.endswith(".toml") or "/" in spec or "\0" in spec):
        spec = "w" + spec                       # a path is fuzzed by the map files below
    _expect(parse_bits, spec, ["conv1", "fc"], kind=BitAssignment)


@SETTINGS
@given(st.one_of(st.binary(max_size=300), values.map(lambda v: __import__("json").dumps(v, default=str).encode())))
def test_bits_map_files(data):
    _expect(parse_bits, str(_write(data, ".json")), ["conv1", "fc"], kind=BitAssignment)


@SETTINGS
@given(st.lists(st.one_of(st.text(max_size=30), st.from_regex(r"[a-z]{1,5}=(-?\d{1,14}x){0,5}-?\d{1,14}", fullmatch=True)),
                max_size=3))
def test_input_shapes(specs):
    out = _expect(parse_input_shapes, specs)
    if out is not None:
        assert all(all(d > 0 for d in s) for s in out.values())


@SETTINGS
@given(st.one_of(st.binary(max_size=300),
                 st.lists(st.tuples(st.text(max_size=15), st.one_of(st.floats().map(str), st.text(max_size=8))),
                          max_size=5).map(lambda rows: ("model,latency_ms\n" + "".join(f"{a},{b}\n" for a, b in rows)).encode())))
def test_measurement_csv(data):
    _expect(read_measurements, _write(data, ".csv"))


GOOD_CFG = ("[general]\nrun_name = f\n[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\nIfmapSramSzkB: 64\n"
            "FilterSramSzkB: 64\nOfmapSramSzkB: 64\nIfmapOffset: 0\nFilterOffset: 10000000\nOfmapOffset: 20000000\n"
            "Dataflow : ws\nBandwidth : 10\nMemoryBanks: 1\n[run_presets]\nInterfaceBandwidth: CALC\n")


@SETTINGS
@given(st.one_of(st.binary(max_size=300),
                 st.lists(st.tuples(st.integers(0, 30), st.one_of(st.integers(-10**15, 10**15).map(str), st.text(max_size=8))),
                          min_size=1, max_size=4).map(lambda p: _mutate_cfg(GOOD_CFG, p))))
def test_scalesim_cfg(data):
    _expect(read_cfg, _write(data, ".cfg"))


def _mutate_cfg(text: str, picks) -> bytes:
    lines = text.splitlines()
    for i, v in picks:
        j = i % len(lines)
        if ":" in lines[j]:
            lines[j] = lines[j].split(":", 1)[0] + ": " + v
    return "\n".join(lines).encode("utf-8", "surrogateescape")


@SETTINGS
@given(st.one_of(st.binary(max_size=300),
                 st.lists(st.lists(st.one_of(st.integers(-10, 10**13).map(str), st.text(max_size=5)), min_size=0, max_size=9),
                          max_size=4).map(lambda rows: ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                                                        "Channels, Num Filter, Strides,\n"
                                                        + "".join(", ".join(r) + ",\n" for r in rows)).encode("utf-8", "surrogateescape"))))
def test_scalesim_topology(data):
    _expect(read_topology, _write(data, ".csv"))
