"""Per-layer fake quantization measured on held-out digits: bit maps, ordering of bit-widths, sensitivity, QAT."""
from __future__ import annotations

import json

import pytest
import torch

from hwmodels.errors import CodesignError
from codesign.quant import (FakeQuantLayer, check_supported, evaluate_accuracy, layer_names_for_bits,
                            layer_sensitivity, parse_bits, qat_finetune, quant_params, quantize_model,
                            quantize_weight, uniform_bits)
from codesign.spaces import get_space
from codesign.training import TrainConfig, accuracy, train_module

pytestmark = pytest.mark.slow   # trains networks




TINY = dict(stem_channels=16, stage_channels=(16, 24, 32), depths=(1, 2), widths=(0.5, 1.0), kernels=(3, 5))




@pytest.fixture(scope="module")
def model(splits):
    space = get_space("small-cnn", **TINY)
    arch = dict(space.smallest(), w2=1.0)
    return train_module(space.build(arch, 10, 1, 8, seed=0), splits, TrainConfig(epochs=6, lr=5e-3))


def test_bit_maps(model, tmp_path):
    names = layer_names_for_bits(model)
    assert names[0] == "stem.conv" and names[-1] == "classifier"
    assert set(parse_bits("w4a8", model).values()) == {(4, 8)}
    assert set(parse_bits("fp", model).values()) == {(32, 32)}
    (tmp_path / "map.json").write_text(json.dumps({"default": "w8a8", "stem.conv": [16, 16], "classifier": "w4a8"}))
    bm = parse_bits(str(tmp_path / "map.json"), model)
    assert bm["stem.conv"] == (16, 16) and bm["classifier"] == (4, 8) and bm[names[1]] == (8, 8)
    for bad, msg in [("w3a8", "bit-width 3"), ("eight", "not understood"), ({"nope.conv": [8, 8]}, "not in the model")]:
        with pytest.raises(CodesignError, match=msg):
            parse_bits(bad, model)
    with pytest.raises(CodesignError, match="layer stem.conv: weight bit-width 2 is not supported by npu"):
        check_supported(uniform_bits(model, 2, 8), [8, 16], "npu")
    with pytest.raises(CodesignError, match="activation bit-width 4"):
        check_supported(uniform_bits(model, 8, 4), [8, 32])
    check_supported(uniform_bits(model, 8, 8), [4, 8])


def test_sample_bit_map(model):
    from codesign.quant import sample_bit_map

    a, b = sample_bit_map(model, 0, (4, 8)), sample_bit_map(model, 0, (4, 8))
    assert a == b and set(a) == set(layer_names_for_bits(model))
    assert {w for w, _ in a.values()} <= {4, 8} and len({w for w, _ in a.values()}) == 2
    check_supported(a, (4, 8))


def test_weight_quantizer_levels():
    w = torch.randn(6, 4, 3, 3)
    for bits, max_levels in [(2, 3), (4, 15)]:
        q = quantize_weight(w, bits)
        assert all(len(torch.unique(q[c])) <= max_levels for c in range(6))
    assert torch.equal(quantize_weight(w, 32), w)
    err = [float((quantize_weight(w, b) - w).pow(2).mean()) for b in (2, 4, 8, 16)]
    assert err[0] > err[1] > err[2] > err[3]


def test_lower_bits_lose_accuracy_in_the_expected_direction(model, splits):
    calib = splits.val.x[:256]
    fp = accuracy(model, splits.test)
    acc = {b: evaluate_accuracy(model, splits.test, b, calib) for b in ("w16a16", "w8a8", "w4a8", "w2a8", "w8a2")}
    assert fp > 0.9
    assert abs(acc["w16a16"] - fp) < 0.01 and acc["w8a8"] > fp - 0.02, (fp, acc)
    assert acc["w2a8"] < acc["w8a8"] - 0.10, acc
    assert acc["w4a8"] >= acc["w2a8"], acc
    assert acc["w8a2"] < acc["w8a8"], acc
    with pytest.raises(CodesignError, match="calibration"):
        evaluate_accuracy(model, splits.test, "w8a8")


def test_per_layer_sensitivity(model, splits):
    sens = layer_sensitivity(model, splits, bits=2, quantize="weight")
    assert list(sens) == layer_names_for_bits(model)
    assert max(sens.values()) > 2.0  # at least one layer costs > 2 points at 2-bit weights
    assert max(sens.values()) > min(sens.values())


def test_quantized_model_is_a_calibrated_copy(model, splits):
    bm = {"stem.conv": (8, 4), "classifier": (4, 8)}
    q = quantize_model(model, bm, splits.val.x[:128])
    assert not any(isinstance(m, FakeQuantLayer) for m in model.modules())
    params = quant_params(q)
    assert set(params) == {"stem.conv", "classifier"} and params["stem.conv"]["a_scale"] > 0


def test_qat_recovers_low_bit_accuracy(model, splits):
    bm = uniform_bits(model, 2, 8)
    ptq = evaluate_accuracy(model, splits.test, bm, splits.val.x[:256])
    qat = accuracy(qat_finetune(model, bm, splits, epochs=2, lr=2e-3), splits.test)
    assert qat > ptq + 0.1, (ptq, qat)
