"""quantize from Python (a torch module through the torch frontend), from a search config's
[model] section, and on a transformer encoder trained here (its MatMul/Gemm layers quantize per
layer; LayerNorm and Softmax stay float)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from codesign.cli import main
from hwmodels.errors import CodesignError


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def _fit(net: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        perm = torch.randperm(len(xs))
        for i in range(0, len(xs), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xs[b]), ys[b]).backward()
            opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    root = tmp_path_factory.mktemp("qapi")
    x, y = _digits()
    torch.manual_seed(0)
    net = _fit(nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)), x[:, None], y, 10)
    np.savez(root / "digits.npz", x=x[:, None], y=y)
    return root, net


def test_quantize_module_from_python(mlp):
    from codesign.quantize.api import quantize_module

    root, net = mlp
    out = root / "py"
    s = quantize_module(net, torch.zeros(1, 1, 8, 8), data=str(root / "digits.npz"), target="bitfusion", out=out,
                        trials=6, bits=(4, 8))
    assert (out / "model.onnx").is_file() and (out / "model.qdq.onnx").is_file() and (out / "accelerator.toml").is_file()
    assert s["model"] == str(out / "model.onnx")
    assert s["float_accuracy"] - s["chosen"]["accuracy_onnxruntime"] <= 0.01 + 1e-9
    assert s["chosen"]["latency_ms"] <= s["baseline"]["latency_ms"]
    assert json.loads((out / "quantize.json").read_text())["model"] == str(out / "model.onnx")


def test_search_config_model_section(mlp, tmp_path):
    from codesign.frontends.torch_frontend import export_onnx
    from codesign.search.config import load_config

    root, net = mlp
    export_onnx(net, torch.zeros(1, 1, 8, 8), tmp_path / "mlp.onnx", dynamic_batch=True)
    cfg_path = tmp_path / "q.toml"
    cfg_path.write_text(f'seed = 0\nobjectives = ["accuracy", "energy_mj"]\n[model]\nonnx = "{tmp_path / "mlp.onnx"}"\n'
                        f'max_accuracy_drop = 0.02\n[data]\nsource = "digits"\n[target]\nname = "systolic"\n'
                        f'[quantization]\nbits = [2, 4, 8]\n[budget]\ntrials = 5\nminutes = 2\n')
    assert main(["search", str(cfg_path), "--out", str(tmp_path / "out")]) == 0     # [model]: the quantize flow
    assert main(["search", str(cfg_path), "--out", str(tmp_path / "o2"), "--workers", "2"]) == 2   # refused, one line
    assert not (tmp_path / "o2").exists()
    s = json.loads((tmp_path / "out" / "quantize.json").read_text())
    assert s["objective"] == "energy" and s["bits_choices"] == [2, 4, 8] and s["max_accuracy_drop"] == 0.02
    assert (tmp_path / "out" / "model.qdq.onnx").is_file()
    # a bad [model] section is a one-line config error; configs without one keep their old digest
    cfg_path.write_text('[model]\nonnx = "net.pt"\n')
    with pytest.raises(CodesignError, match="model.onnx"):
        load_config(cfg_path)
    cfg_path.write_text('[model]\nonnx = "a.onnx"\nobjective = "area"\n')
    with pytest.raises(CodesignError, match="model.objective"):
        load_config(cfg_path)
    for example in sorted(Path(__file__).resolve().parents[1].glob("examples/*.toml")):
        try:
            c = load_config(example)
        except CodesignError:
            continue                                  # not a search config
        assert c.model is None and "model" not in c.digest()


class RowTransformer(nn.Module):
    """Digits' 8 rows as 8 tokens of 8 features."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(8, 32)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 2, 64, dropout=0.0, batch_first=True), 1,
                                             enable_nested_tensor=False)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


def test_quantize_transformer_per_layer(tmp_path, capsys):
    from codesign.frontends.torch_frontend import export_onnx

    x, y = _digits()
    net = _fit(RowTransformer(), x, y, 6)
    export_onnx(net, torch.from_numpy(x[:1]), tmp_path / "tr.onnx", dynamic_batch=True)   # TorchScript, opset 17
    np.savez(tmp_path / "rows.npz", x=x, y=y)
    out = tmp_path / "out"
    rc = main(["quantize", str(tmp_path / "tr.onnx"), "--data", str(tmp_path / "rows.npz"), "--target", "bitfusion",
               "--out", str(out), "--trials", "6", "--bits", "4,8", "--max-accuracy-drop", "0.02"])
    assert rc == 0, capsys.readouterr().err
    s = json.loads((out / "quantize.json").read_text())
    bits = json.loads((out / "bits.json").read_text())["layers"]
    assert len(bits) >= 5 and all(n.endswith(("MatMul", "Gemm")) or "MatMul" in n or "Gemm" in n for n in bits)
    capsys.readouterr()
    assert main(["analyze", str(out / "model.qdq.onnx"), "--target", str(out / "accelerator.toml"), "--json", "-"]) == 0
    a = json.loads(capsys.readouterr().out)
    ops = {l["name"]: l["op"] for l in a["layers"]}
    read = a["bits"]["layers"]
    for name, op in ops.items():
        if op in ("LayerNormalization", "Softmax"):
            assert read[name]["weight"] == 32 and read[name]["activation"] == 32, name
    for name, b in bits.items():
        assert (read[name]["weight"], read[name]["activation"]) == (b["weight"], b["activation"])
    assert a["latency_ms"] == pytest.approx(s["chosen"]["latency_ms"], rel=0.01)
    assert a["energy_mj"] == pytest.approx(s["chosen"]["energy_mj"], rel=0.01)
    assert s["float_accuracy"] - s["chosen"]["accuracy_onnxruntime"] <= 0.02 + 1e-9
