"""A transformer encoder as a new user exports it: both torch exporters analyze, with equal MACs, and a
QDQ'd one (onnxruntime.quantization on its MatMuls) is costed at its MatMul bits, LayerNorm/Softmax float."""
import json

import numpy as np
import onnx
import pytest
import torch

from conftest import run_cli
from codesign.frontends.onnx_frontend import load_onnx
from hwmodels.bits import LayerBits

D, HEADS, FF, T, LAYERS = 64, 4, 128, 8, 2
# per layer: in-projection (T x D x 3D), QK^T and attn x V (heads x T x T x D/heads each), out-projection, FFN
EXPECTED_MACS = LAYERS * (T * D * 3 * D + 2 * HEADS * T * T * (D // HEADS) + T * D * D + 2 * T * D * FF)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    from codesign.frontends.torch_frontend import _quiet_fds

    root = tmp_path_factory.mktemp("transformer")
    torch.manual_seed(0)
    module = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, HEADS, FF, batch_first=True), LAYERS).eval()
    x = torch.randn(1, T, D)
    paths = {"torchscript": root / "ts.onnx", "dynamo": root / "dynamo.onnx", "module": module, "x": x}
    with _quiet_fds():            # as a user writes it (with grad: no fused fast path)
        torch.onnx.export(module, (x,), str(paths["torchscript"]), dynamo=False, opset_version=17)
        torch.onnx.export(module, (x,), str(paths["dynamo"]), dynamo=True, external_data=False)
    return paths


def _analyze(*args):
    return json.loads(run_cli("analyze", *args, "--json", "-", check_rc=0).stdout)


def test_both_exporters_analyze_with_equal_macs(exports):
    ts, dyn = _analyze(exports["torchscript"]), _analyze(exports["dynamo"])
    assert ts["macs"] == dyn["macs"] == EXPECTED_MACS == 540_672
    with_shape = _analyze(exports["torchscript"], "--input-shape", f"src=1x{T}x{D}")
    assert with_shape["macs"] == EXPECTED_MACS
    # the TorchScript export's attention reshapes are computed at run time: their shapes came from a run
    assert any("came from one onnxruntime run" in n for n in ts["notes"])
    assert not any("onnxruntime run" in n for n in dyn["notes"])       # static inference sufficed there
    # the frontend's own torch route (no_grad would take the fused fast path no exporter writes)
    from codesign.frontends.torch_frontend import load_torch

    assert load_torch(exports["module"], exports["x"]).macs == EXPECTED_MACS
    for wl in (load_onnx(exports["torchscript"]), load_onnx(exports["dynamo"])):
        mac_layers = [l for l in wl.layers() if l.macs]
        assert sorted(l.macs for l in mac_layers) == sorted([T * D * 3 * D, HEADS * T * T * (D // HEADS),
                                                             HEADS * T * T * (D // HEADS), T * D * D,
                                                             T * D * FF, T * FF * D] * LAYERS)
        assert {l.op_class for l in mac_layers} == {"matmul"}
        assert sum(l.op_class == "softmax" for l in wl.layers()) == LAYERS
        assert sum(l.op_class == "norm" for l in wl.layers()) == 2 * LAYERS


class _Reader:
    def __init__(self, name):
        rng = np.random.default_rng(0)
        self.items = iter([{name: rng.standard_normal((1, T, D)).astype(np.float32)} for _ in range(4)])

    def get_next(self):
        return next(self.items, None)


def test_qdq_transformer_reads_matmul_bits_norm_and_softmax_stay_float(exports, tmp_path):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    fp32 = exports["torchscript"]
    ffn_weights = [i for n in onnx.load(fp32).graph.node if n.op_type == "MatMul" and "linear" in n.name
                   for i in n.input if i.startswith("onnx::")]
    assert len(ffn_weights) == 2 * LAYERS
    qdq = tmp_path / "encoder.qdq.onnx"
    quantize_static(str(fp32), str(qdq), _Reader("src"), quant_format=QuantFormat.QDQ, per_channel=True,
                    op_types_to_quantize=["MatMul", "Gemm"],
                    extra_options={"TensorQuantOverrides": {w: [{"quant_type": QuantType.QInt4}] for w in ffn_weights}})
    wl = load_onnx(qdq)
    assert wl.macs == EXPECTED_MACS
    assert not {l.op for l in wl.layers()} & {"QuantizeLinear", "DequantizeLinear"}
    for l in wl.layers():
        bits = wl.bits.for_layer(l.name)
        if l.macs:                       # projections, QK^T, attn x V, FFN: each its own bits
            assert bits == (LayerBits(4, 8) if "/linear" in l.name else LayerBits(8, 8)), l.name
            assert l.name in wl.quantized_layers
        elif l.op_class in ("norm", "softmax"):
            assert bits == LayerBits(32, 32), l.name
    ana = _analyze(qdq, "--target", "systolic")
    assert ana["bits"]["source"] == "model" and ana["macs"] == EXPECTED_MACS
    assert any("8-bit PEs" in n for n in ana["notes"])      # the array is as wide as its widest MatMul
    precisions = {l["name"]: l["precision"] for l in ana["layers"]}
    assert {precisions[n] for n in precisions if "LayerNormalization" in n or "Softmax" in n} == {"fp32"}
