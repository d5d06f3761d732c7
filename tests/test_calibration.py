"""Calibration on real onnxruntime measurements of networks built here, and its input checks."""
import time

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from codesign.frontends.onnx_frontend import load_onnx
from codesign.frontends.torch_frontend import export_onnx
from hwmodels.targets import load_target
from conftest import run_cli
from hwmodels.calibration import calibrate
from hwmodels.roofline import RooflineModel


def _net(width, depth, k, res):
    layers, c = [], 3
    for i in range(depth):
        layers += [nn.Conv2d(c, width, k, 2 if i % 2 else 1, k // 2), nn.ReLU()]
        c = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
    return nn.Sequential(*layers), torch.randn(1, 3, res, res)


def _measure_ms(path, repeats=15):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.rand(*sess.get_inputs()[0].shape).astype(np.float32)
    for _ in range(3):
        sess.run(None, {name: x})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return min(times) * 1e3          # the least-disturbed run: robust to other load on the machine


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib")
    torch.manual_seed(0)
    rows = []
    configs = [(w, dep, k, r) for w, dep, k, r in
               [(8, 2, 3, 32), (16, 3, 3, 32), (32, 3, 3, 48), (16, 4, 5, 32), (64, 2, 3, 32), (24, 5, 3, 64),
                (48, 3, 1, 64), (8, 6, 3, 64), (32, 2, 5, 48), (96, 2, 3, 32), (16, 2, 7, 48), (40, 4, 3, 40)]]
    for i, cfg in enumerate(configs):
        net, x = _net(*cfg)
        path = export_onnx(net, x, d / f"net{i}.onnx")
        rows.append((path, _measure_ms(path)))
    csv = d / "m.csv"
    csv.write_text("model,latency_ms\n" + "".join(f"{p.name},{ms:.5f}\n" for p, ms in rows))
    return d, csv, rows


def test_calibration_reduces_error_and_round_trips(measured, tmp_path):
    d, csv, rows = measured
    host = load_target("host")
    workloads = [load_onnx(p) for p, _ in rows]
    meas = np.array([ms for _, ms in rows])
    before = np.array([RooflineModel().estimate(w, host).latency_s * 1e3 for w in workloads])
    err_before = np.median(np.abs(before - meas) / meas)
    result = calibrate(host, workloads, meas.tolist(), source=str(csv))
    assert result.fit_error_pct / 100 < err_before
    assert result.fit_error_pct < 25
    # the calibrated target, used by the ordinary roofline, reproduces the fit's own predictions
    after = [RooflineModel().estimate(w, result.target).latency_s * 1e3 for w in workloads]
    assert after == pytest.approx(result.predicted_ms, rel=1e-6)
    # and the CLI writes a normal target file
    out = tmp_path / "mine.toml"
    run_cli("calibrate", "--target", "host", "--measurements", str(csv), "--out", str(out), check_rc=0)
    t = load_target(str(out))
    assert t.name == "host-calibrated" and t.calibration.samples == len(rows)
    assert t.calibration.fit_error_pct == pytest.approx(result.fit_error_pct, rel=1e-3)


def _err(proc, *frags):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for f in frags:
        assert f in proc.stderr, proc.stderr


def test_bad_measurement_files(measured, tmp_path):
    d, csv, rows = measured
    bad = d / "bad_cols.csv"
    bad.write_text("net,ms\nnet0.onnx,1.0\n")
    _err(run_cli("calibrate", "-t", "host", "-m", str(bad), "-o", str(tmp_path / "o.toml")), "missing column", "latency_ms")
    bad = d / "neg.csv"
    bad.write_text("model,latency_ms\nnet0.onnx,-3\n")
    _err(run_cli("calibrate", "-t", "host", "-m", str(bad), "-o", str(tmp_path / "o.toml")), "neg.csv:2", "positive")
    bad = d / "nopath.csv"
    bad.write_text("model,latency_ms\nghost.onnx,2.0\n")
    _err(run_cli("calibrate", "-t", "host", "-m", str(bad), "-o", str(tmp_path / "o.toml")), "nopath.csv:2", "ghost.onnx", "not found")
    few = d / "few.csv"
    few.write_text("model,latency_ms\n" + "".join(f"{p.name},{ms}\n" for p, ms in rows[:3]))
    _err(run_cli("calibrate", "-t", "host", "-m", str(few), "-o", str(tmp_path / "o.toml")), "3 samples cannot fit")
    _err(run_cli("calibrate", "-t", "host", "-m", str(d / "absent.csv"), "-o", str(tmp_path / "o.toml")), "not found")
