"""Shape-only ONNX models (the external weight file absent) and external data that points
outside the model's folder.

A model whose external weight file is missing (ZigZag's bundled workloads, exports stripped of
their weights) is costed from its shapes by analyze, check, simulate and dse, with a note that
the weights were not read; a location outside the model's folder (``..``, absolute, a symlink)
is refused in one line before anything is opened.
"""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import codesign.frontends.onnx_external as onnx_external
from codesign.frontends.onnx_frontend import read_onnx, workload_from_model
from conftest import LIGHT, run_cli
from hwmodels.errors import CodesignError

RANGES = """[systolic.ranges]
rows = [8, 16]
cols = [8, 16]
ifmap_sram_kb = [64]
filter_sram_kb = [64]
ofmap_sram_kb = [64]
dataflow = ["ws"]
dram_bandwidth_words = [16]
"""
NOTE = "weights not read: "


@pytest.fixture(scope="module")
def torch_net(tmp_path_factory):
    """A small CNN exported by torch (conv, BN, ReLU, pool, a Reshape from the tensor's shape, Linear)."""
    import torch
    from torch import nn

    from codesign.frontends.torch_frontend import export_onnx

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                          nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            y = self.features(x)
            return self.fc(y.reshape(y.shape[0], -1))

    torch.manual_seed(0)
    return export_onnx(Net(), torch.randn(1, 3, 32, 32), tmp_path_factory.mktemp("net") / "net.onnx")


def _external(src, folder, size_threshold=0, location="w.external", convert_attribute=False):
    """``src`` saved into ``folder`` with its tensors in one external file."""
    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.ModelProto()               # saving moves the data out of the proto: work on a copy
    model.CopyFrom(src if isinstance(src, onnx.ModelProto) else onnx.load(str(src)))
    path = folder / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=size_threshold, convert_attribute=convert_attribute)
    assert (folder / location).is_file()
    return path


def _json(*args):
    return json.loads(run_cli(*args, check_rc=0).stdout)


def _one_line_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def _dse(model, tmp_path, tag):
    ranges = tmp_path / "small.toml"
    ranges.write_text(RANGES)
    out = tmp_path / f"dse-{tag}"
    run_cli("dse", model, "--template", "systolic", "--ranges", ranges, "--out", out, check_rc=0)
    return json.loads((out / "pareto.json").read_text())


@pytest.mark.parametrize("net", ["light_resnet50", "torch"])
def test_external_file_present_costs_as_the_original(net, torch_net, tmp_path):
    src = LIGHT / "light_resnet50.onnx" if net == "light_resnet50" else torch_net
    path = _external(src, tmp_path / "m")
    a = _json("analyze", src, "--target", "host", "--json", "-")
    b = _json("analyze", path, "--target", "host", "--json", "-")
    assert b["macs"] == a["macs"] > 0 and b["params"] == a["params"] > 0
    assert b["latency_ms"] == pytest.approx(a["latency_ms"], rel=1e-12)
    assert b["weights_read"] is True and not any(n.startswith(NOTE) for n in b["notes"])


def test_absent_weights_every_shape_command_works_with_a_note(torch_net, tmp_path):
    present = _external(torch_net, tmp_path / "present")
    absent = _external(torch_net, tmp_path / "absent")
    (tmp_path / "absent" / "w.external").unlink()
    n_external = len(onnx.load(str(torch_net)).graph.initializer)
    note = f"{NOTE}{n_external} external tensor(s), file(s) w.external absent; costs from shapes only"

    # analyze: the same MACs, parameters and latency as with the weights, and the note (JSON and table)
    a = _json("analyze", present, "--target", "host", "--json", "-")
    b = _json("analyze", absent, "--target", "host", "--json", "-")
    assert b["macs"] == a["macs"] > 0 and b["params"] == a["params"] > 0
    assert b["latency_ms"] == pytest.approx(a["latency_ms"], rel=1e-12)
    assert b["weights_read"] is False and b["notes"][0] == note
    text = run_cli("analyze", absent, "--target", "host", check_rc=0).stdout
    assert NOTE in text and "absent" in text

    # check: passes, the same latency, the note
    ca = _json("check", present, "--target", "host", "--max-latency-ms", "1e9", "--json", "-")
    cb = _json("check", absent, "--target", "host", "--max-latency-ms", "1e9", "--json", "-")
    assert cb["pass"] and cb["actual"] == ca["actual"]
    assert cb["weights_read"] is False and cb["notes"] == [note] and ca["notes"] == []
    assert NOTE in run_cli("check", absent, "--target", "host", "--max-latency-ms", "1e9", check_rc=0).stdout

    # simulate: the same cycles, the note
    sa = _json("simulate", present, "--target", "systolic", "--json", "-")
    sb = _json("simulate", absent, "--target", "systolic", "--json", "-")
    assert sb["total_cycles"] == sa["total_cycles"] > 0 and sb["layers"] == sa["layers"]
    assert sb["notes"][0] == note and not any(n.startswith(NOTE) for n in sa["notes"])

    # dse: the same front
    da, db = _dse(present, tmp_path, "present"), _dse(absent, tmp_path, "absent")
    assert db["pareto"] == da["pareto"] and db["configs"] == da["configs"] == 4


def test_shape_values_in_the_main_file_still_work_and_absent_ones_are_named(torch_net, tmp_path):
    """A Reshape's shape input is a value shape inference needs: in the main file (below the size
    threshold) the model is costed without its weights; in the absent external file, one line names it."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((16, 8, 3, 3)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.array([1, -1], np.int64), "flat_shape"),
             numpy_helper.from_array(rng.standard_normal((10, 16)).astype(np.float32), "fc.weight")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
             helper.make_node("Reshape", ["p", "flat_shape"], ["f"]),
             helper.make_node("Gemm", ["f", "fc.weight"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    full = _json("analyze", _external(model, tmp_path / "full"), "--target", "host", "--json", "-")

    inline = _external(model, tmp_path / "inline", size_threshold=64)    # the 16-byte shape stays in the main file
    (tmp_path / "inline" / "w.external").unlink()
    shapes = _json("analyze", inline, "--target", "host", "--json", "-")
    assert shapes["macs"] == full["macs"] > 0 and shapes["weights_read"] is False
    assert shapes["notes"][0].startswith(f"{NOTE}3 external tensor(s), file(s) w.external absent")

    outside = _external(model, tmp_path / "all", size_threshold=0)       # the shape too
    (tmp_path / "all" / "w.external").unlink()
    for cmd in (["analyze", outside, "--target", "host"], ["simulate", outside, "--target", "systolic"]):
        _one_line_error(run_cli(*cmd), str(outside), "'flat_shape'", "'w.external' is absent", "Reshape")

    # the light models' weights come from ConstantOfShape of int64 shape tensors: values, not dims
    light = _external(LIGHT / "light_resnet50.onnx", tmp_path / "light", size_threshold=0)
    (tmp_path / "light" / "w.external").unlink()
    _one_line_error(run_cli("analyze", light, "--target", "host"), "'gpu_0/conv1_w_0__SHAPE'", "w.external")

    # a Constant node's value (torch's Reshape target) in the absent file: named by the node's output
    const = _external(torch_net, tmp_path / "const", convert_attribute=True)
    (tmp_path / "const" / "w.external").unlink()
    _one_line_error(run_cli("check", const, "--target", "host", "--max-latency-ms", "1e9"),
                    "'/Constant_output_0'", "'w.external' is absent", "Reshape")


def test_a_step_that_needs_the_weights_refuses_a_shape_only_model(torch_net, tmp_path):
    path = _external(torch_net, tmp_path / "m")
    (tmp_path / "m" / "w.external").unlink()
    with pytest.raises(CodesignError, match=r"needs the model's weights.*absent file\(s\) w.external"):
        read_onnx(path)                      # what --frontend tvm reads: it needs the values
    assert read_onnx(path, weights=False).graph.initializer[0].data_location == TensorProto.EXTERNAL
    # a model in memory whose external data was never loaded is shape-only too
    wl = workload_from_model(onnx.load(str(path), load_external_data=False))
    assert not wl.weights_read and wl.notes[0].startswith(NOTE) and wl.macs > 0


def _pointing(torch_net, folder, location, tensor="fc.weight"):
    """The net with its weights in folder/w.external (present), one tensor's location rewritten."""
    path = _external(torch_net, folder)
    model = onnx.load(str(path), load_external_data=False)
    t = next(t for t in model.graph.initializer if t.name == tensor)
    next(e for e in t.external_data if e.key == "location").value = location
    onnx.save_model(model, str(path))
    return path


@pytest.mark.parametrize("kind", ["parent-escape", "absolute", "symlink-outside", "symlink-inside", "constant-attribute"])
def test_external_data_outside_the_folder_is_refused_before_reading(kind, torch_net, tmp_path, monkeypatch):
    secret = tmp_path / "outside" / "secret.bin"
    secret.parent.mkdir()
    secret.write_bytes(b"DO-NOT-READ" * 200)
    reads = []
    real = onnx_external.load_external_data_for_tensor
    monkeypatch.setattr(onnx_external, "load_external_data_for_tensor",
                        lambda t, base: (reads.append(t.name), real(t, base))[1])
    folder = tmp_path / "m"
    tensor = "fc.weight"
    if kind == "parent-escape":
        loc = "../../etc/passwd"
        path = _pointing(torch_net, folder, loc)
    elif kind == "absolute":
        loc = str(secret)
        path = _pointing(torch_net, folder, loc)
    elif kind.startswith("symlink"):
        loc = "link.bin"
        target = secret if kind == "symlink-outside" else folder / "copy.bin"
        path = _pointing(torch_net, folder, loc)
        if kind == "symlink-inside":              # onnx refuses any symlink; so do we, in one line
            target.write_bytes((folder / "w.external").read_bytes())
        (folder / loc).symlink_to(target)
    else:                                         # a Constant node's tensor (the Reshape's shape), external
        path = _external(torch_net, folder, convert_attribute=True)
        model = onnx.load(str(path), load_external_data=False)
        const = next(n for n in model.graph.node if n.op_type == "Constant")
        t = const.attribute[0].t
        assert onnx_external.is_external(t)
        loc = "../" + secret.parent.name + "/secret.bin"
        next(e for e in t.external_data if e.key == "location").value = loc
        tensor = t.name or const.output[0]        # an unnamed attribute tensor is named by its node's output
        onnx.save_model(model, str(path))
    for cmd in (["analyze", path, "--target", "host", "--json", "-"], ["check", path, "--target", "host", "--max-latency-ms", "1e9"]):
        line = _one_line_error(run_cli(*cmd), str(path), f"tensor {tensor!r}", repr(loc),
                               "external data must be a file inside the model's folder")
    assert "DO-NOT-READ" not in line
    assert reads == []                            # refused before any external file was opened


def test_dse_and_simulate_refuse_an_escape_too(torch_net, tmp_path):
    path = _pointing(torch_net, tmp_path / "m", "../../etc/passwd")
    (tmp_path / "small.toml").write_text(RANGES)
    _one_line_error(run_cli("simulate", path, "--target", "systolic", "--json", "-"), "'fc.weight'", "'../../etc/passwd'")
    _one_line_error(run_cli("dse", path, "--ranges", tmp_path / "small.toml", "--out", tmp_path / "o"),
                    "'fc.weight'", "'../../etc/passwd'")
    assert not (tmp_path / "o").exists()
