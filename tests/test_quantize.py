"""`codesign quantize` end to end on a CNN trained here on sklearn digits, and its bad input.

The written model.qdq.onnx is run in onnxruntime by the test itself (on the selection samples
split.json names) and must stay within the allowed drop; its cost, re-derived by
`codesign analyze` on the file, must match what quantize reported and beat uniform w8a8 on the
same accelerator.  Every bad input exits 2 with one line and leaves no output folder.
"""
from __future__ import annotations

import csv
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn

from browser import assert_clean, assert_plots_have_data, inspect_page
from codesign.cli import main


def _train_digits_cnn(seed: int = 0, epochs: int = 12) -> tuple[nn.Module, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    torch.manual_seed(seed)
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU(),
                        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(),
                        nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        perm = torch.randperm(len(xs))
        for i in range(0, len(xs), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xs[b]), ys[b]).backward()
            opt.step()
    return net.eval(), x, y


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    from codesign.frontends.torch_frontend import export_onnx

    root = tmp_path_factory.mktemp("quantize")
    net, x, y = _train_digits_cnn()
    export_onnx(net, torch.from_numpy(x[:1]), root / "cnn.onnx", dynamic_batch=True)
    np.savez(root / "digits.npz", x=x, y=y)
    return root, net, x, y


def _ort_top1(path, x, y) -> float:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return float((logits.argmax(1) == y).mean())


def _analyze(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["analyze", *map(str, args), "--json", "-"]) == 0
    return json.loads(capsys.readouterr().out)


def test_quantize_end_to_end(digits_model, capsys, browser, tmp_path):
    root, _, x, y = digits_model
    out = root / "run"
    drop = 0.01
    rc = main(["quantize", str(root / "cnn.onnx"), "--data", str(root / "digits.npz"), "--target", "systolic",
               "--out", str(out), "--trials", "14", "--max-accuracy-drop", str(drop), "--seed", "0"])
    assert rc == 0, capsys.readouterr().err
    for name in ("model.qdq.onnx", "bits.json", "pareto.csv", "pareto.json", "report.html", "accelerator.toml",
                 "split.json", "quantize.json", "study.db"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "quantize.json").read_text())
    split = json.loads((out / "split.json").read_text())
    sel = np.array(split["selection"])
    assert not set(sel) & set(split["calibration"]) and len(sel) + len(split["calibration"]) == len(y)

    # accuracy measured here, in onnxruntime, on the selection samples: within the allowed drop
    float_acc = _ort_top1(root / "cnn.onnx", x[sel], y[sel])
    qdq_acc = _ort_top1(out / "model.qdq.onnx", x[sel], y[sel])
    assert float_acc == pytest.approx(summary["float_accuracy"])
    assert qdq_acc == pytest.approx(summary["chosen"]["accuracy_onnxruntime"])
    assert float_acc - qdq_acc <= drop + 1e-9

    # the bits quantize chose are the bits analyze reads from the file, and some layer went below 8 bits
    bits = json.loads((out / "bits.json").read_text())["layers"]
    chosen = _analyze(capsys, out / "model.qdq.onnx", "--target", out / "accelerator.toml")
    read = chosen["bits"]["layers"]
    for layer, b in bits.items():
        assert (read[layer]["weight"], read[layer]["activation"]) == (b["weight"], b["activation"]), layer
    assert min(min(b["weight"], b["activation"]) for b in bits.values()) < 8

    # analyze on the written model reproduces quantize's latency and energy (within 1%)
    assert chosen["latency_ms"] == pytest.approx(summary["chosen"]["latency_ms"], rel=0.01)
    assert chosen["energy_mj"] == pytest.approx(summary["chosen"]["energy_mj"], rel=0.01)
    # and costs less than uniform w8a8 of the float model on the same accelerator
    w8a8 = _analyze(capsys, root / "cnn.onnx", "--target", out / "accelerator.toml", "--bits", "w8a8",
                    "--input-shape", "input=1x1x8x8")
    assert chosen["energy_mj"] < w8a8["energy_mj"]
    assert summary["chosen"]["energy_mj"] < summary["baseline"]["energy_mj"]

    # every measured bit map is in pareto.csv / pareto.json, with the chosen one among them
    with open(out / "pareto.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["measured_bit_maps"] == len(json.loads((out / "pareto.json").read_text())["measured"])
    chosen_row = [r for r in rows if json.loads(r["bits"]) == {n: f"w{b['weight']}a{b['activation']}"
                                                               for n, b in json.loads((out / "bits.json").read_text())["layers"].items()}]
    assert len(chosen_row) == 1 and chosen_row[0]["feasible"] == "True"
    assert {r["phase"] for r in rows} >= {"sensitivity", "guided"}
    html = (out / "report.html").read_text()
    assert "Per-layer sensitivity" in html and "per-layer cost" in html.lower()
    page = inspect_page(browser, out / "report.html", tmp_path / "report.png")    # what a reader gets
    assert_clean(page)
    assert_plots_have_data(page)
    assert {t["id"] for t in page.tables} >= {"totals", "sensitivity", "layers"}

    # --resume continues the same study: more trials, none repeated from scratch
    before = summary["measured_bit_maps"]
    rc = main(["quantize", str(root / "cnn.onnx"), "--data", str(root / "digits.npz"), "--target", "systolic",
               "--out", str(out), "--trials", "18", "--max-accuracy-drop", str(drop), "--resume"])
    assert rc == 0, capsys.readouterr().err
    import optuna

    study = optuna.load_study(study_name="quantize", storage=f"sqlite:///{out / 'study.db'}")
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 18
    assert json.loads((out / "quantize.json").read_text())["measured_bit_maps"] >= before
    # a second start without --resume refuses to overwrite the study
    rc = main(["quantize", str(root / "cnn.onnx"), "--data", str(root / "digits.npz"), "--out", str(out)])
    assert rc == 2


def test_quantize_on_a_device_target_matches_analyze(digits_model, capsys):
    root = digits_model[0]
    out = root / "pi"
    rc = main(["quantize", str(root / "cnn.onnx"), "--data", str(root / "digits.npz"), "--target", "raspberry-pi-4",
               "--out", str(out), "--trials", "8", "--objective", "latency"])
    assert rc == 0, capsys.readouterr().err
    s = json.loads((out / "quantize.json").read_text())
    assert not (out / "accelerator.toml").exists()          # a fixed device: nothing to configure
    a = _analyze(capsys, out / "model.qdq.onnx", "--target", "raspberry-pi-4")
    assert a["latency_ms"] == pytest.approx(s["chosen"]["latency_ms"], rel=0.01)
    assert a["energy_mj"] == pytest.approx(s["chosen"]["energy_mj"], rel=0.01)
    assert s["chosen"]["latency_ms"] <= s["baseline"]["latency_ms"]


def _expect_bad(capsys, tmp_path, model, data, *extra, match: str):
    out = tmp_path / "out"
    capsys.readouterr()
    rc = main(["quantize", str(model), "--data", str(data), "--out", str(out), "--trials", "2", *extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert match in lines[0], lines[0]
    assert not out.exists(), "bad input must leave nothing in --out"


def test_bad_input_shape_and_dtype(digits_model, capsys, tmp_path):
    root, _, x, y = digits_model
    np.savez(tmp_path / "small.npz", x=x[:, :, :7, :7].copy(), y=y)
    _expect_bad(capsys, tmp_path, root / "cnn.onnx", tmp_path / "small.npz", match="dimension 2: 7 != 8")
    np.savez(tmp_path / "f64.npz", x=x.astype(np.float64), y=y)
    _expect_bad(capsys, tmp_path, root / "cnn.onnx", tmp_path / "f64.npz", match="dtype float64")
    np.savez(tmp_path / "flat.npz", x=x.reshape(len(x), -1), y=y)
    _expect_bad(capsys, tmp_path, root / "cnn.onnx", tmp_path / "flat.npz", match="rank 2")


def test_bad_labels(digits_model, capsys, tmp_path):
    root, _, x, y = digits_model
    np.savez(tmp_path / "big.npz", x=x, y=np.where(y == 9, 12, y))
    _expect_bad(capsys, tmp_path, root / "cnn.onnx", tmp_path / "big.npz", match="label 12 is out of range")
    np.savez(tmp_path / "neg.npz", x=x, y=y - 1)
    _expect_bad(capsys, tmp_path, root / "cnn.onnx", tmp_path / "neg.npz", match="label -1 is out of range")
    np.savez(tmp_path / "floaty.npz", x=x, y=y.astype(np.float32))
    _expect_bad(capsys, tmp_path, root / "cnn.onnx", tmp_path / "floaty.npz", match="must be integers")


def test_bad_model_not_a_classifier_or_untrained(digits_model, capsys, tmp_path):
    from codesign.frontends.torch_frontend import export_onnx

    root, net, x, _ = digits_model
    three_d = nn.Sequential(net, nn.Unflatten(1, (10, 1)))
    export_onnx(three_d, torch.from_numpy(x[:1]), tmp_path / "3d.onnx", dynamic_batch=True)
    _expect_bad(capsys, tmp_path, tmp_path / "3d.onnx", root / "digits.npz", match="(N, classes)")
    torch.manual_seed(1)
    fresh = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    export_onnx(fresh, torch.from_numpy(x[:1]), tmp_path / "untrained.onnx", dynamic_batch=True)
    _expect_bad(capsys, tmp_path, tmp_path / "untrained.onnx", root / "digits.npz", match="does not fit this data")


def test_bad_layer_and_options(digits_model, capsys, tmp_path):
    root = digits_model[0]
    _expect_bad(capsys, tmp_path, root / "cnn.onnx", root / "digits.npz", "--layers", "/0/Conv,/1/Relu",
                match="cannot quantize '/1/Relu'")
    _expect_bad(capsys, tmp_path, root / "cnn.onnx", root / "digits.npz", "--layers", "/nope", match="not a node")
    _expect_bad(capsys, tmp_path, root / "cnn.onnx", root / "digits.npz", "--bits", "3,8", match="--bits")
    _expect_bad(capsys, tmp_path, root / "cnn.onnx", root / "digits.npz", "--objective", "speed", match="--objective")
    _expect_bad(capsys, tmp_path, root / "cnn.onnx", root / "digits.npz", "--resume", match="--resume")


def test_minutes_cut_the_sensitivity_pass_and_resume_finishes_it(digits_model, capsys):
    root = digits_model[0]
    out = root / "short"
    args = ["quantize", str(root / "cnn.onnx"), "--data", str(root / "digits.npz"), "--target", "bitfusion",
            "--out", str(out), "--trials", "6"]
    assert main([*args, "--minutes", "0.001"]) == 0, capsys.readouterr().err
    s = json.loads((out / "quantize.json").read_text())
    assert any("--minutes ran out" in n for n in s["notes"])
    assert main([*args, "--resume"]) == 0, capsys.readouterr().err
    s = json.loads((out / "quantize.json").read_text())
    assert not any("--minutes ran out" in n for n in s["notes"])
    phases = {r["phase"] for r in json.loads((out / "pareto.json").read_text())["measured"]}
    assert {"sensitivity", "guided"} <= phases
