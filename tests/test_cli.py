"""The CLI contract: JSON schema, table output, and one-line errors with exit code 2."""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import LIGHT, run_cli

LAYER_KEYS = {"name", "op", "macs", "weight_bytes", "act_bytes", "latency_ms", "energy_mj", "bound"}
TOP_KEYS = {"model", "target", "cost_model", "latency_ms", "energy_mj", "macs", "params",
            "peak_memory_bytes", "not_modelled", "layers"}


def test_analyze_json_contract_to_stdout_and_file(tmp_path):
    proc = run_cli("analyze", str(LIGHT / "light_squeezenet.onnx"), "--target", "raspberry-pi-4", "--json", "-", check_rc=0)
    data = json.loads(proc.stdout)
    assert TOP_KEYS <= set(data)
    assert data["target"] == "raspberry-pi-4" and data["cost_model"] == "runtime"      # the model its file names
    assert data["macs"] == sum(l["macs"] for l in data["layers"]) > 3e8
    assert all(LAYER_KEYS <= set(l) for l in data["layers"])
    from hwmodels.targets import load_target

    per_run_ms = load_target("raspberry-pi-4").overheads.per_network_us * 1e-3
    assert data["latency_ms"] == pytest.approx(sum(l["latency_ms"] for l in data["layers"]) + per_run_ms, rel=1e-6)
    assert data["validation"]["networks"] >= 20          # the target's stated error travels with the estimate
    out = tmp_path / "o.json"
    run_cli("analyze", str(LIGHT / "light_squeezenet.onnx"), "--target", "raspberry-pi-4", "--json", str(out), check_rc=0)
    assert json.loads(out.read_text())["macs"] == data["macs"]


def test_analyze_table_and_targets_listing(tmp_path):
    proc = run_cli("analyze", str(LIGHT / "light_resnet50.onnx"), "--top", "3", "--plot", str(tmp_path / "r.png"), check_rc=0)
    assert "light_resnet50 on host" in proc.stdout and "latency" in proc.stdout
    assert (tmp_path / "r.png").stat().st_size > 10_000
    proc = run_cli("targets", "--json", check_rc=0)
    assert {t["name"] for t in json.loads(proc.stdout)} >= {"host", "eyeriss", "systolic", "stm32h7"}


def test_bits_change_the_answer():
    fp = json.loads(run_cli("analyze", str(LIGHT / "light_vgg19.onnx"), "--target", "host", "--json", "-", check_rc=0).stdout)
    q = json.loads(run_cli("analyze", str(LIGHT / "light_vgg19.onnx"), "--target", "host", "--bits", "w8a8", "--json", "-", check_rc=0).stdout)
    assert q["latency_ms"] < fp["latency_ms"] and q["energy_mj"] < fp["energy_mj"]
    assert q["peak_memory_bytes"] < fp["peak_memory_bytes"] / 3


def _one_line_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


def test_missing_file():
    _one_line_error(run_cli("analyze", "/no/such/model.onnx"), "model file not found", "/no/such/model.onnx")


def test_truncated_onnx(tmp_path):
    data = (LIGHT / "light_resnet50.onnx").read_bytes()
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes(data[: len(data) // 3])
    _one_line_error(run_cli("analyze", str(bad)), "trunc.onnx", "not a readable ONNX model")


def test_not_onnx(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is a text file, not a protobuf\n" * 20)
    _one_line_error(run_cli("analyze", str(bad)), "notes.onnx", "not a readable ONNX model")


def test_dynamic_batch_without_input_shape(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "F"])     # a dynamic batch alone is taken as 1
    w = onnx.numpy_helper.from_array(np.zeros((8, 4), np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    _one_line_error(run_cli("analyze", str(path)), "dyn.onnx", "input 'x' has dynamic dims", "--input-shape x=1x1")
    ok = run_cli("analyze", str(path), "--input-shape", "x=16x8", "--json", "-", check_rc=0)
    assert json.loads(ok.stdout)["macs"] == 16 * 8 * 4


def test_bad_target_files(tmp_path):
    from hwmodels.targets import list_targets

    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text(list_targets()["host"].read_text().replace("threads = 1", 'threads = "one"'))
    _one_line_error(run_cli("analyze", str(LIGHT / "light_squeezenet.onnx"), "--target", str(wrong_type)),
                    "wrong.toml", "field 'threads'")
    missing = tmp_path / "missing_field.toml"
    missing.write_text(list_targets()["host"].read_text().replace('kind = "cpu"\n', ""))
    _one_line_error(run_cli("analyze", str(LIGHT / "light_squeezenet.onnx"), "--target", str(missing)),
                    "missing_field.toml", "field 'kind'", "missing")


def test_unknown_target_name():
    _one_line_error(run_cli("analyze", str(LIGHT / "light_squeezenet.onnx"), "--target", "tpu-v9"),
                    "unknown target 'tpu-v9'", "host")


def test_usage_errors_are_one_line():
    _one_line_error(run_cli("analyze", str(LIGHT / "light_squeezenet.onnx"), "--no-such-flag"), "--no-such-flag")
    _one_line_error(run_cli("analyze", str(LIGHT / "light_squeezenet.onnx"), "--bits", "w3a8"), "bit-width 3")


def test_help_and_version_do_not_load_torch_or_tvm():
    import subprocess
    import sys

    code = ("import sys; from codesign.cli import main; rc = [main(['--help']), main(['--version'])]; "
            "heavy = [m for m in ('torch', 'tvm') if m in sys.modules]; print(rc, heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[0, 0] []" in proc.stdout


def test_the_real_entry_point_runs():
    from conftest import run_cli_process

    proc = run_cli_process("analyze", str(LIGHT / "light_squeezenet.onnx"), "--json", "-", check_rc=0)
    assert json.loads(proc.stdout)["macs"] > 3e8
    _one_line_error(run_cli_process("analyze", "/no/such/model.onnx"), "model file not found")


@pytest.mark.parametrize("command", [
    ["analyze", str(LIGHT / "light_squeezenet.onnx"), "--json"],
    ["check", str(LIGHT / "light_squeezenet.onnx"), "-t", "host", "--max-latency-ms", "1000", "--json"],
    ["simulate", str(LIGHT / "light_squeezenet.onnx"), "-t", "systolic", "--json"],
    ["analyze", str(LIGHT / "light_squeezenet.onnx"), "--plot"],
])
def test_unwritable_output_is_a_one_line_exit_2(command, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_line_error(run_cli(*command, str(blocker / "out.json")), "cannot write", str(blocker / "out.json"))
