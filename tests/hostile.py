"""A corpus of malformed and hostile inputs for every entry point, generated (never committed).

Each case is ``Case(id, entry, defect, build)``: ``build(tmp)`` writes whatever files the case
needs under ``tmp`` and returns the CLI arguments; ``tmp / "out"`` holds a previous run's
artifacts, which a failing run must leave as they were.  ``names`` is what the one-line error
must mention (the file, usually).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


@dataclass
class Case:
    id: str
    entry: str
    defect: str
    build: Callable[[Path], list[str]]
    names: list[str] = field(default_factory=list)   # substrings the error line must contain


# ----- ONNX --------------------------------------------------------------------------------------
def _conv_model(dims=(1, 3, 8, 8), w_dims=(4, 3, 3, 3), opset=17, extra_nodes=(), rename=None, domain="",
                op="Conv", ir=8, w_data=True, inputs=None):
    w = numpy_helper.from_array(np.ones(w_dims, np.float32), "w") if w_data else None
    nodes = [helper.make_node(op, ["x", "w"], ["y"], pads=[1, 1, 1, 1], domain=domain), *extra_nodes]
    graph = helper.make_graph(nodes, "g", inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
                              [helper.make_tensor_value_info(rename or "y", TensorProto.FLOAT, None)],
                              [w] if w is not None else [])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=ir)


def _save(model, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _valid_bytes() -> bytes:
    return _conv_model().SerializeToString()


def _onnx_defects() -> dict[str, Callable[[Path], Path]]:
    """defect -> a function writing the defective model into a folder and returning its path."""
    d: dict[str, Callable[[Path], Path]] = {}

    def raw(name, data):
        def f(t):
            p = t / f"{name}.onnx"
            p.write_bytes(data() if callable(data) else data)
            return p
        d[name] = f

    raw("zero-byte", b"")
    raw("truncated", lambda: _valid_bytes()[: len(_valid_bytes()) // 2])
    raw("wrong-magic-png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    raw("random-bytes", lambda: np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    raw("text-file", b"this is not a model\n")
    raw("json-file", b'{"graph": {"node": []}}')
    raw("gzip-bytes", b"\x1f\x8b\x08\x00" + b"\0" * 40)

    def model(name, build):
        d[name] = lambda t: _save(build(), t / f"{name}.onnx")

    def cycle():
        n1 = helper.make_node("Relu", ["b"], ["a"])
        n2 = helper.make_node("Relu", ["a"], ["b"])
        n3 = helper.make_node("Add", ["x", "a"], ["y"])
        g = helper.make_graph([n1, n2, n3], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model("graph-cycle", cycle)

    def dangling():
        g = helper.make_graph([helper.make_node("Add", ["x", "nowhere"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model("dangling-input", dangling)

    def duplicate():
        nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Sigmoid", ["x"], ["y"])]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model("duplicate-output-names", duplicate)
    model("unknown-domain-op", lambda: _conv_model(domain="com.evil", op="Backdoor"))
    model("unknown-standard-op", lambda: _conv_model(op="NotAnOp"))
    model("opset-1", lambda: _conv_model(opset=1))
    model("opset-99", lambda: _conv_model(opset=99))
    model("ir-version-99", lambda: _conv_model(ir=99))
    model("absurd-dims-2^40", lambda: _conv_model(dims=(1, 3, 2**20, 2**20)))
    model("absurd-batch-2^40", lambda: _conv_model(dims=(2**40, 3, 8, 8)))
    model("negative-dim", lambda: _conv_model(dims=(1, 3, -8, 8)))
    model("zero-dim", lambda: _conv_model(dims=(1, 3, 0, 8)))
    model("symbolic-dims", lambda: _conv_model(inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                      ["N", "C", "H", "W"])]))
    model("channel-mismatch", lambda: _conv_model(w_dims=(4, 5, 3, 3)))
    model("kernel-larger-than-input", lambda: _conv_model(dims=(1, 3, 2, 2), w_dims=(4, 3, 9, 9)))

    def mismatched_init():
        m = _conv_model()
        t = m.graph.initializer[0]
        t.raw_data = t.raw_data[:12]           # 3 floats where the dims say 108
        return m
    model("initializer-data-mismatch", mismatched_init)

    def absurd_init():
        m = _conv_model()
        t = m.graph.initializer[0]
        del t.dims[:]
        t.dims.extend([2**20, 2**20, 3, 3])
        return m
    model("initializer-absurd-dims", absurd_init)

    def external(location):
        def build():
            m = _conv_model()
            t = m.graph.initializer[0]
            t.ClearField("raw_data")
            t.data_location = TensorProto.EXTERNAL
            e = t.external_data.add()
            e.key, e.value = "location", location
            return m
        return build
    model("external-data-parent-escape", external("../../etc/passwd"))
    model("external-data-absolute", external("/etc/passwd"))

    def symlinked(t):
        outside = t.parent / f"{t.name}-outside.bin"
        outside.write_bytes(np.ones(108, np.float32).tobytes())
        link = t / "w.bin"
        if not link.exists():
            link.symlink_to(outside)
        return _save(external("w.bin")(), t / "external-data-symlink.onnx")
    d["external-data-symlink"] = symlinked

    def no_output():
        g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])], [])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model("no-graph-output", no_output)

    def directory(t):
        p = t / "folder.onnx"
        p.mkdir(exist_ok=True)
        return p
    d["directory-not-file"] = directory
    d["missing-file"] = lambda t: t / "missing.onnx"
    return d


ONNX_DEFECTS = _onnx_defects()


def _small_ranges(t: Path) -> Path:
    p = t / "ranges.toml"
    p.write_text('[systolic.ranges]\nrows = [8]\ncols = [8]\nifmap_sram_kb = [64]\nfilter_sram_kb = [64]\n'
                 'ofmap_sram_kb = [64]\ndataflow = ["ws"]\ndram_bandwidth_words = [16]\n')
    return p


ONNX_ENTRIES: dict[str, Callable[[Path, Path], list[str]]] = {
    "analyze": lambda m, t: ["analyze", m, "--target", "host", "--json", t / "out" / "analyze.json"],
    "check": lambda m, t: ["check", m, "--target", "host", "--max-latency-ms", "1e9", "--json", t / "out" / "check.json"],
    "simulate": lambda m, t: ["simulate", m, "--target", "systolic", "--json", t / "out" / "simulate.json"],
    "dse": lambda m, t: ["dse", m, "--ranges", _small_ranges(t), "--out", t / "out"],
    "profile": lambda m, t: ["profile", "--target", "host", "--model", m, "--cache", t / "out" / "kernels.sqlite",
                             "--samples", "0", "--budget-s", "20"],
}


def onnx_cases() -> list[Case]:
    cases = []
    for defect, make in ONNX_DEFECTS.items():
        for entry, argv in ONNX_ENTRIES.items():
            def build(t, make=make, argv=argv):
                return argv(make(t), t)
            cases.append(Case(f"{entry}-onnx-{defect}", entry, f"onnx: {defect}", build, names=[".onnx"]))
    return cases


# ----- target TOML -------------------------------------------------------------------------------
def _target_text() -> str:
    return (Path(__file__).parent.parent / "targets" / "systolic.toml").read_text()


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


TARGET_DEFECTS: dict[str, Callable[[], str]] = {
    "nan-peak": lambda: _replace(_target_text(), "int8 = 1024.0", "int8 = nan"),
    "inf-peak": lambda: _replace(_target_text(), "int8 = 1024.0", "int8 = inf"),
    "negative-peak": lambda: _replace(_target_text(), "int8 = 1024.0", "int8 = -1024.0"),
    "zero-peak": lambda: _replace(_target_text(), "int8 = 1024.0", "int8 = 0.0"),
    "1e308-peak": lambda: _replace(_target_text(), "int8 = 1024.0", "int8 = 1e308"),
    "nan-bandwidth": lambda: _replace(_target_text(), "bandwidth_gbs = 10.0", "bandwidth_gbs = nan"),
    "negative-bandwidth": lambda: _replace(_target_text(), "bandwidth_gbs = 10.0", "bandwidth_gbs = -10.0"),
    "zero-bandwidth": lambda: _replace(_target_text(), "bandwidth_gbs = 10.0", "bandwidth_gbs = 0"),
    "1e308-bandwidth": lambda: _replace(_target_text(), "bandwidth_gbs = 10.0", "bandwidth_gbs = 1e308"),
    "units-in-number": lambda: _replace(_target_text(), "bandwidth_gbs = 10.0", 'bandwidth_gbs = "10 GB/s"'),
    "zero-clock": lambda: _replace(_target_text(), "clock_mhz = 1000", "clock_mhz = 0"),
    "nan-clock": lambda: _replace(_target_text(), "clock_mhz = 1000", "clock_mhz = nan"),
    "negative-array": lambda: _replace(_target_text(), "rows = 32", "rows = -32"),
    "unknown-key": lambda: _target_text() + "\nbogus_key = 1\n",
    "huge-string": lambda: _replace(_target_text(), "name = ", 'description = "' + "x" * 10_000_000 + '"\nname = '),
    "duplicate-memory-levels": lambda: _dup_memory(_target_text()),
    "empty-range": lambda: _replace(_target_text(), "dram_bandwidth_words = [4, 8, 16, 32, 64]", "dram_bandwidth_words = []"),
    "non-positive-range": lambda: _replace(_target_text(), "dram_bandwidth_words = [4, 8, 16, 32, 64]",
                                           "dram_bandwidth_words = [0, -4]"),
    "not-toml": lambda: "this is = = not toml [[[",
    "empty-file": lambda: "",
    "binary-garbage": lambda: "\x00\x01\x02\xff",
    "no-memory": lambda: "\n".join(l for l in _target_text().splitlines() if not l.startswith("[[memory]]")),
}


def _dup_memory(text: str) -> str:
    start = text.index("[[memory]]")
    end = text.index("[[memory]]", start + 1)
    return text[:end] + text[start:end] + text[end:]


def target_cases() -> list[Case]:
    model = lambda: str(LIGHT / "light_squeezenet.onnx")
    entries = {
        "analyze": lambda p, t: ["analyze", model(), "--target", p, "--json", t / "out" / "analyze.json"],
        "check": lambda p, t: ["check", model(), "--target", p, "--max-latency-ms", "1e9"],
        "dse": lambda p, t: ["dse", model(), "--template", p, "--ranges", _small_ranges(t), "--out", t / "out"],
    }
    cases = []
    for defect, text in TARGET_DEFECTS.items():
        for entry, argv in entries.items():
            def build(t, text=text, argv=argv, defect=defect):
                p = t / f"target-{defect}.toml"
                p.write_bytes(text().encode("utf-8", "surrogateescape"))
                return argv(p, t)
            cases.append(Case(f"{entry}-target-{defect}", entry, f"target toml: {defect}", build, names=["target-"]))
    return cases


# ----- dse ranges --------------------------------------------------------------------------------
RANGES_DEFECTS = {
    "empty-list": "[systolic.ranges]\nrows = []\n",
    "zero-rows": "[systolic.ranges]\nrows = [0]\n",
    "negative-sram": "[systolic.ranges]\nifmap_sram_kb = [-4]\n",
    "string-values": '[systolic.ranges]\nrows = ["a", "b"]\n',
    "unknown-dataflow": '[systolic.ranges]\ndataflow = ["xx"]\n',
    "nan-bandwidth": "[systolic.ranges]\ndram_bandwidth_words = [nan]\n",
    "not-toml": "[[[",
    "scalar-not-list": "[systolic.ranges]\nrows = 8\n",
}


def ranges_cases() -> list[Case]:
    cases = []
    for defect, text in RANGES_DEFECTS.items():
        def build(t, text=text, defect=defect):
            p = t / f"ranges-{defect}.toml"
            p.write_text(text)
            return ["dse", str(LIGHT / "light_squeezenet.onnx"), "--ranges", p, "--out", t / "out"]
        cases.append(Case(f"dse-ranges-{defect}", "dse", f"ranges toml: {defect}", build, names=["ranges-"]))
    return cases


# ----- search configs ----------------------------------------------------------------------------
BASE_CONFIG = {
    "seed": 0, "objectives": ["accuracy", "latency_ms"],
    "space": {"name": "small-cnn"}, "data": {"source": "digits"},
    "supernet": {"epochs": 1}, "target": {"name": "systolic"},
    "quantization": {"bits": [4, 8]}, "budget": {"trials": 4, "minutes": 1},
}


def _with(path: str, value):
    cfg = json.loads(json.dumps(BASE_CONFIG))
    node = cfg
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return cfg


CONFIG_DEFECTS = {
    "seed-string": _with("seed", "zero"),
    "seed-float": _with("seed", 1.5),
    "objectives-number": _with("objectives", 5),
    "objectives-unknown": _with("objectives", ["accuracy", "happiness"]),
    "objectives-empty": _with("objectives", []),
    "space-name-number": _with("space.name", 3),
    "space-unknown": _with("space.name", "no-such-space"),
    "data-unknown-source": _with("data.source", "imagenet-from-the-internet"),
    "data-source-list": _with("data.source", ["digits"]),
    "supernet-epochs-negative": _with("supernet.epochs", -1),
    "supernet-epochs-string": _with("supernet.epochs", "many"),
    "target-unknown": _with("target.name", "no-such-target"),
    "target-name-table": _with("target.name", {"a": 1}),
    "target-ranges-strings": _with("target.ranges", {"rows": "x"}),
    "target-ranges-negative": _with("target.ranges", {"rows": [-4]}),
    "bits-unsupported": _with("quantization.bits", [3]),
    "bits-string": _with("quantization.bits", "8"),
    "bits-empty": _with("quantization.bits", []),
    "budget-trials-string": _with("budget.trials", "ten"),
    "budget-trials-zero": _with("budget.trials", 0),
    "budget-trials-negative": _with("budget.trials", -5),
    "budget-minutes-negative": _with("budget.minutes", -1),
    "budget-trials-huge": _with("budget.trials", 10**30),
    "constraints-negative": _with("constraints", {"max_sram_kb": -1}),
    "constraints-string": _with("constraints", {"max_sram_kb": "lots"}),
    "constraints-unknown": _with("constraints", {"max_happiness": 1}),
    "unknown-top-level-key": _with("bogus", 1),
    "algorithm-unknown": _with("algorithm", "magic"),
    "search-method-unknown": _with("search", {"method": "oracle"}),
    "budget-table-is-list": _with("budget", [1, 2]),
}


def _toml(cfg: dict) -> str:
    import tomli_w

    return tomli_w.dumps(cfg)


def config_cases() -> list[Case]:
    cases = []
    for defect, cfg in CONFIG_DEFECTS.items():
        def build(t, cfg=cfg, defect=defect):
            p = t / f"config-{defect}.toml"
            p.write_text(_toml(cfg))
            return ["search", p, "--out", t / "out" / "run"]
        cases.append(Case(f"search-config-{defect}", "search", f"search config: {defect}", build, names=["config-"]))
    for defect, text in {"not-toml": "seed = = 1", "empty-file": "", "huge-string":
                         'seed = 0\nobjectives = ["' + "a" * 10_000_000 + '"]\n'}.items():
        def build(t, text=text, defect=defect):
            p = t / f"config-{defect}.toml"
            p.write_text(text)
            return ["search", p, "--out", t / "out" / "run"]
        cases.append(Case(f"search-config-{defect}", "search", f"search config: {defect}", build, names=["config-"]))
    cases.append(Case("search-config-missing", "search", "search config: missing file",
                      lambda t: ["search", t / "config-missing.toml", "--out", t / "out" / "run"], names=["config-missing"]))
    return cases


# ----- measurement CSVs (calibrate) --------------------------------------------------------------
def _csv_case(defect: str, make: Callable[[Path], str]) -> Case:
    def build(t):
        model = t / "net.onnx"
        model.write_bytes((LIGHT / "light_squeezenet.onnx").read_bytes())
        p = t / f"measurements-{defect}.csv"
        content = make(t)
        p.write_bytes(content.encode("utf-16") if defect == "utf16-bom" else content.encode())
        return ["calibrate", "--target", "host", "--measurements", p, "--out", t / "out" / "calibrated.toml"]
    return Case(f"calibrate-csv-{defect}", "calibrate", f"measurement csv: {defect}", build, names=["measurements-"])


CSV_DEFECTS = {
    "empty-file": lambda t: "",
    "header-only": lambda t: "model,latency_ms\n",
    "missing-latency-column": lambda t: "model\nnet.onnx\n",
    "missing-model-column": lambda t: "latency_ms\n1.0\n",
    "nan-latency": lambda t: "model,latency_ms\nnet.onnx,nan\n",
    "negative-latency": lambda t: "model,latency_ms\nnet.onnx,-3\n",
    "zero-latency": lambda t: "model,latency_ms\nnet.onnx,0\n",
    "inf-latency": lambda t: "model,latency_ms\nnet.onnx,inf\n",
    "text-latency": lambda t: "model,latency_ms\nnet.onnx,fast\n",
    "path-outside-folder": lambda t: "model,latency_ms\n../../etc/passwd,1.0\n",
    "absolute-path": lambda t: "model,latency_ms\n/etc/passwd,1.0\n",
    "missing-model-file": lambda t: "model,latency_ms\nnot-there.onnx,1.0\n",
    "duplicate-rows": lambda t: "model,latency_ms\nnet.onnx,1.0\nnet.onnx,1.0\nnet.onnx,2.0\n",
    "utf16-bom": lambda t: "model,latency_ms\nnet.onnx,1.0\n",
    "binary": lambda t: "\x00\x01\x02",
    "ragged-row": lambda t: "model,latency_ms\nnet.onnx,1.0,extra,cells\n",
}


def csv_cases() -> list[Case]:
    return [_csv_case(d, m) for d, m in CSV_DEFECTS.items()]


# ----- SCALE-Sim cfg / topology ------------------------------------------------------------------
GOOD_CFG = """[general]
run_name = hostile
[architecture_presets]
ArrayHeight:    8
ArrayWidth:     8
IfmapSramSzkB:    64
FilterSramSzkB:   64
OfmapSramSzkB:    64
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Dataflow : ws
Bandwidth : 10
MemoryBanks: 1
[run_presets]
InterfaceBandwidth: CALC
"""
GOOD_TOPOLOGY = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
                 "conv1, 8, 8, 3, 3, 3, 4, 1,\n")

SCALESIM_DEFECTS = {
    "cfg-missing-architecture": ("cfg", GOOD_CFG.split("[architecture_presets]")[0] + GOOD_CFG.split("MemoryBanks: 1\n")[1]),
    "cfg-zero-array": ("cfg", GOOD_CFG.replace("ArrayHeight:    8", "ArrayHeight:    0")),
    "cfg-negative-sram": ("cfg", GOOD_CFG.replace("IfmapSramSzkB:    64", "IfmapSramSzkB:    -64")),
    "cfg-non-numeric": ("cfg", GOOD_CFG.replace("ArrayWidth:     8", "ArrayWidth:     eight")),
    "cfg-unknown-dataflow": ("cfg", GOOD_CFG.replace("Dataflow : ws", "Dataflow : zz")),
    "cfg-empty": ("cfg", ""),
    "cfg-binary": ("cfg", "\x00\xff\x00"),
    "topology-empty": ("topology", ""),
    "topology-header-only": ("topology", GOOD_TOPOLOGY.splitlines()[0] + "\n"),
    "topology-non-numeric": ("topology", GOOD_TOPOLOGY.replace("conv1, 8, 8", "conv1, eight, 8")),
    "topology-zero-size": ("topology", GOOD_TOPOLOGY.replace("conv1, 8, 8", "conv1, 0, 8")),
    "topology-negative-size": ("topology", GOOD_TOPOLOGY.replace("conv1, 8, 8", "conv1, -8, 8")),
    "topology-missing-columns": ("topology", "Layer name, IFMAP Height,\nconv1, 8,\n"),
    "topology-filter-larger-than-ifmap": ("topology", GOOD_TOPOLOGY.replace("3, 3, 3, 4", "30, 30, 3, 4")),
    "topology-absurd-size": ("topology", GOOD_TOPOLOGY.replace("conv1, 8, 8", "conv1, 1099511627776, 1099511627776")),
}


def scalesim_cases() -> list[Case]:
    cases = []
    for defect, (kind, text) in SCALESIM_DEFECTS.items():
        def build(t, kind=kind, text=text, defect=defect):
            cfg, topo = t / "good.cfg", t / "good_topology.csv"
            cfg.write_text(GOOD_CFG)
            topo.write_text(GOOD_TOPOLOGY)
            bad = t / (f"bad-{defect}.cfg" if kind == "cfg" else f"bad-{defect}.csv")
            bad.write_bytes(text.encode("utf-8", "surrogateescape"))
            if kind == "cfg":
                return ["simulate", topo, "--config", bad, "--json", t / "out" / "sim.json"]
            return ["simulate", bad, "--target", "systolic", "--json", t / "out" / "sim.json"]
        cases.append(Case(f"simulate-{defect}", "simulate", f"scale-sim: {defect}", build, names=["bad-"]))
    return cases


# ----- datasets (.npz, image folders) for train-supernet and evaluate ---------------------------------
def _npz(make):
    def write(t, name):
        p = t / f"{name}.npz"
        arrays = make()
        with open(p, "wb") as f:
            np.savez(f, **arrays)
        return p
    return write


def _object_npz(t, name):
    p = t / f"{name}.npz"
    with open(p, "wb") as f:
        np.savez(f, x=np.array([object(), 1], dtype=object), y=np.array([0, 1]))
    return p


def _raw_file(data):
    def write(t, name):
        p = t / f"{name}.npz"
        p.write_bytes(data)
        return p
    return write


def _images(files: dict[str, bytes]):
    def write(t, name):
        root = t / name
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        root.mkdir(exist_ok=True)
        return root
    return write


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buf, format="PNG")
    return buf.getvalue()


X = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
Y = np.arange(40) % 4
DATA_DEFECTS = {
    "npz-object-array": _object_npz,
    "npz-mismatched-lengths": _npz(lambda: {"x": X, "y": Y[:10]}),
    "npz-nan-images": _npz(lambda: {"x": np.full_like(X, np.nan), "y": Y}),
    "npz-inf-images": _npz(lambda: {"x": np.full_like(X, np.inf), "y": Y}),
    "npz-one-class": _npz(lambda: {"x": X, "y": np.zeros(40, int)}),
    "npz-missing-y": _npz(lambda: {"x": X}),
    "npz-negative-labels": _npz(lambda: {"x": X, "y": -Y - 1}),
    "npz-float-labels": _npz(lambda: {"x": X, "y": Y + 0.5}),
    "npz-empty": _npz(lambda: {"x": X[:0], "y": Y[:0]}),
    "npz-1d-images": _npz(lambda: {"x": X.reshape(-1), "y": Y}),
    "npz-5d-images": _npz(lambda: {"x": X[:, :, None], "y": Y}),
    "npz-string-images": _npz(lambda: {"x": np.array(["a"] * 40), "y": Y}),
    "npz-not-a-zip": _raw_file(b"PK\x03\x04 not really a zip"),
    "npz-zero-byte": _raw_file(b""),
    "images-corrupt": _images({"a/1.png": b"\x89PNG\r\n\x1a\n broken", "b/1.png": _png()}),
    "images-zero-byte": _images({"a/1.png": b"", "b/1.png": _png()}),
    "images-empty-folder": _images({}),
    "images-one-class": _images({"a/1.png": _png(), "a/2.png": _png()}),
    "images-no-images": _images({"a/readme.txt": b"hi", "b/notes.txt": b"x"}),
}


def data_cases() -> list[Case]:
    cases = []
    for defect, write in DATA_DEFECTS.items():
        for entry in ("train-supernet", "evaluate"):
            def build(t, write=write, entry=entry, defect=defect):
                data = write(t, f"data-{defect}")
                if entry == "train-supernet":
                    return ["train-supernet", "--data", data, "--epochs", "1", "--out", t / "out" / "supernet.pt"]
                return ["evaluate", "--data", data, "--epochs", "1", "--json", t / "out" / "eval.json"]
            cases.append(Case(f"{entry}-{defect}", entry, f"dataset: {defect}", build, names=["data-"]))
    return cases


# ----- option values: --bits, --input-shape ----------------------------------------------------------
OPTION_DEFECTS = {
    "bits-garbage": ["--bits", "w9z"],
    "bits-zero": ["--bits", "w0a8"],
    "bits-huge": ["--bits", "w99999999999a8"],
    "bits-negative": ["--bits", "w-4a8"],
    "bits-map-missing-file": ["--bits", "no-such-map.json"],
    "input-shape-garbage": ["--input-shape", "x=axb"],
    "input-shape-zero": ["--input-shape", "data_0=1x3x0x224"],
    "input-shape-negative": ["--input-shape", "data_0=1x3x-224x224"],
    "input-shape-absurd": ["--input-shape", "data_0=1099511627776x3x224x224"],
    "input-shape-unknown-input": ["--input-shape", "nope=1x3x224x224"],
    "input-shape-wrong-rank": ["--input-shape", "data_0=1x3x224"],
}


def option_cases() -> list[Case]:
    cases = []
    for defect, opts in OPTION_DEFECTS.items():
        for entry in ("analyze", "check"):
            def build(t, opts=opts, entry=entry):
                model = str(LIGHT / "light_squeezenet.onnx")
                base = ["analyze", model, "--target", "host"] if entry == "analyze" else \
                    ["check", model, "--target", "host", "--max-latency-ms", "1e9"]
                return base + list(opts)
            cases.append(Case(f"{entry}-option-{defect}", entry, f"option: {defect}", build,
                              names=[opts[0]]))
    for defect, write in {"bits-map-bad-json": '{"default": ', "bits-map-unknown-layer": '{"layers": {"nope": "w4a8"}}',
                          "bits-map-bad-value": '{"default": "w3x"}'}.items():
        def build(t, write=write, defect=defect):
            p = t / f"bits-{defect}.json"
            p.write_text(write)
            return ["analyze", str(LIGHT / "light_squeezenet.onnx"), "--target", "host", "--bits", p]
        cases.append(Case(f"analyze-option-{defect}", "analyze", f"option: {defect}", build, names=["bits-"]))
    return cases


def all_cases() -> list[Case]:
    return (onnx_cases() + target_cases() + ranges_cases() + config_cases() + config_field_cases() + csv_cases()
            + scalesim_cases() + data_cases() + option_cases())


def _wrong_values(annotation) -> object:
    """A value of the wrong type for a field of this annotation."""
    import typing

    origin = typing.get_origin(annotation)
    if annotation is bool:
        return "maybe"
    if annotation in (int, float):
        return "not-a-number"
    if annotation is str:
        return {"a": [1, 2]}
    if origin is typing.Literal:
        return "no-such-choice"
    if origin in (list, tuple):
        return 5
    if origin is dict:
        return "not-a-table"
    return [{"wrong": True}]


def _config_fields(model, prefix=""):
    """(dotted path, annotation) of every leaf field of the search config schema."""
    from pydantic import BaseModel

    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _config_fields(ann, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", ann


def config_field_cases() -> list[Case]:
    """Every field of the search config, one case each, given a value of the wrong type."""
    from codesign.search.config import SearchConfig

    cases = []
    for path, ann in _config_fields(SearchConfig):
        cfg = _with(path, _wrong_values(ann))

        def build(t, cfg=cfg, path=path):
            p = t / f"config-field-{path}.toml"
            p.write_text(_toml(cfg))
            return ["search", p, "--out", t / "out" / "run"]
        cases.append(Case(f"search-config-wrong-type-{path}", "search", "search config: a field of the wrong type", build,
                          names=["config-field-"]))
    return cases
