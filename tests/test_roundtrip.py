"""torch -> ONNX -> Workload and torch -> ONNX -> TVM Relax -> Workload agree on MACs."""
import pytest
import torch

from codesign.frontends.onnx_frontend import load_onnx
from codesign.frontends.torch_frontend import export_onnx, load_torch
from codesign.frontends.tvm_frontend import load_onnx_via_tvm, load_relax
from nets import MLP, EncoderBlock, MobileNetV2Small, expected_macs_mobilenet

CASES = {
    "mobilenetv2": (lambda: MobileNetV2Small(), lambda: torch.randn(1, 3, 64, 64)),
    "encoder": (lambda: EncoderBlock(dim=64, heads=4, mlp=128), lambda: torch.randn(1, 16, 64)),
    "mlp": (lambda: MLP(), lambda: torch.randn(2, 64)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_three_routes_agree_on_macs(case, tmp_path):
    torch.manual_seed(0)
    build, example = CASES[case]
    model, x = build(), example()
    path = export_onnx(model, x, tmp_path / f"{case}.onnx")
    via_onnx = load_onnx(path)
    via_tvm = load_onnx_via_tvm(path)
    via_torch = load_torch(model, x)
    assert via_onnx.macs > 0
    assert via_onnx.macs == via_tvm.macs == via_torch.macs
    assert via_tvm.not_modelled == []
    assert abs(via_tvm.params - via_onnx.params) <= 0.01 * via_onnx.params


def test_mobilenet_macs_match_torch_hooks():
    model = MobileNetV2Small()
    assert load_torch(model, torch.randn(1, 3, 64, 64)).macs == expected_macs_mobilenet(model, 64)


def test_encoder_attention_pattern_is_costed():
    d, t, heads, mlp = 64, 16, 4, 128
    wl = load_torch(EncoderBlock(d, heads, mlp), torch.randn(1, t, d))
    matmuls = [l for l in wl.layers() if l.op == "MatMul"]
    attention = [l for l in matmuls if l.params == 0]           # activation x activation
    assert len(attention) == 2 and all(l.gemm.batch == heads for l in attention)
    expected = t * d * 3 * d + 2 * heads * t * t * (d // heads) + t * d * d + 2 * t * d * mlp
    assert wl.macs == expected
    assert {"softmax", "norm"} <= {l.op_class for l in wl.layers()}


def test_mlp_params_match_torch():
    model = MLP()
    wl = load_torch(model, torch.randn(2, 64))
    assert wl.params == sum(p.numel() for p in model.parameters())


def test_relax_module_built_in_tvm():
    """A module written with Relax's BlockBuilder (no ONNX involved) walks into the same Workload."""
    import numpy as np
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 8, 16, 16), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            w = relax.const(np.zeros((16, 8, 3, 3), "float32"))
            y = bb.emit(relax.op.nn.conv2d(x, w, strides=(1, 1), padding=(1, 1, 1, 1)))
            y = bb.emit(relax.op.nn.relu(y))
            y = bb.emit(relax.op.reshape(y, (1, 16 * 16 * 16)))
            fc = relax.const(np.zeros((16 * 16 * 16, 10), "float32"))
            out = bb.emit_output(relax.op.matmul(y, fc))
        bb.emit_func_output(out)
    wl = load_relax(bb.get(), name="handwritten")
    conv = 16 * 16 * 16 * 8 * 9
    fcm = 16 * 16 * 16 * 10
    assert wl.macs == conv + fcm
    assert wl.params == 16 * 8 * 9 + 16 * 16 * 16 * 10
    ops = [l.op for l in wl.layers()]
    assert ops == ["relax.nn.conv2d", "relax.nn.relu", "relax.reshape", "relax.matmul"]
    assert wl.layers()[0].conv.k == 16 and wl.layers()[0].op_class == "conv"
