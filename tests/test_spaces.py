"""Search spaces: registry, sampling/encoding, supernet == extracted sub-network, ONNX export, user spaces."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn

from hwmodels.errors import CodesignError
from codesign.frontends.torch_frontend import example_input, export_onnx, load_torch
from codesign.spaces import UserSpace, define_space, get_space, list_spaces




TINY = {
    "small-cnn": dict(stem_channels=8, stage_channels=(8, 16, 16), depths=(1, 2), widths=(0.5, 1.0), kernels=(3, 5)),
    "mobilenetv3": dict(stem_channels=8, first_channels=8, stage_channels=(16, 24), strides=(2, 2), se=(False, True),
                        acts=("relu", "hswish"), head_channels=64, depths=(1, 2), kernels=(3, 5), expands=(2, 3),
                        widths=(0.5, 1.0), resolutions=(8, 12)),
}


def test_registry():
    assert {"small-cnn", "mobilenetv3"} <= set(list_spaces())
    with pytest.raises(CodesignError, match="unknown space 'nope'"):
        get_space("nope")
    with pytest.raises(CodesignError, match="bad configuration"):
        get_space("small-cnn", not_an_option=1)


@pytest.mark.parametrize("name", list(TINY))
def test_sampling_encoding_validation(name):
    sp = get_space(name, **TINY[name])
    assert sp.sample(3) == sp.sample(3)
    archs = [sp.sample(i) for i in range(20)]
    assert len({sp.key(a) for a in archs}) > 5
    enc = np.stack([sp.encode(a) for a in archs])
    assert enc.shape[1] == sp.encode(sp.largest()).shape[0] and 0 <= enc.min() and enc.max() <= 1
    assert sp.encode(sp.largest()).sum() > sp.encode(sp.smallest()).sum()
    bad = dict(sp.largest(), d0=99)
    with pytest.raises(CodesignError, match="d0=99"):
        sp.validate(bad)
    with pytest.raises(CodesignError, match="unknown parameter"):
        sp.validate({"zzz": 1})
    # kernels of blocks beyond the stage depth do not change the network
    a = dict(sp.smallest())
    b = dict(a, **{"k0_1": 5})
    assert sp.key(a) == sp.key(b)


@pytest.mark.parametrize("name", list(TINY))
def test_extracted_subnet_equals_supernet_slice(name):
    torch.manual_seed(0)
    sp = get_space(name, **TINY[name])
    net = sp.supernet(10, 1, 8)
    # give BatchNorm non-trivial statistics so that slicing them is exercised
    net.train()
    with torch.no_grad():
        for i in range(3):
            arch = sp.largest()
            net(torch.randn(16, 1, sp.resolution(arch) or 8, sp.resolution(arch) or 8), arch)
    net.eval()
    sizes = []
    for arch in [sp.largest(), sp.smallest()] + [sp.sample(i) for i in range(4)]:
        sub = net.extract(arch)
        r = sub.input_resolution
        x = torch.randn(5, 1, r, r)
        with torch.no_grad():
            torch.testing.assert_close(sub(x), net(x, arch), rtol=1e-4, atol=1e-5)
        assert not any("Elastic" in type(m).__name__ for m in sub.modules())
        sizes.append(sum(p.numel() for p in sub.parameters()))
    assert sizes[0] == max(sizes) and sizes[1] == min(sizes) and sizes[0] > 2 * sizes[1]


@pytest.mark.parametrize("name", list(TINY))
def test_any_subnet_exports_to_onnx_and_runs(tmp_path, name):
    sp = get_space(name, **TINY[name])
    for seed, arch in enumerate([sp.largest(), sp.sample(7)]):
        model = sp.build(arch, 10, 1, 8, seed=seed).eval()
        path = export_onnx(model, example_input(model, 1), tmp_path / f"{name}{seed}.onnx", dynamic_batch=True,
                           what=f"model from space {sp.name}")
        x = torch.randn(3, 1, model.input_resolution, model.input_resolution)
        got = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
        np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-3, atol=1e-4)


def _user_builder(trial):
    width = trial.choice("width", [8, 16])
    layers: list[nn.Module] = [nn.Conv2d(trial.in_channels, width, 3, padding=1), nn.ReLU()]
    if trial.choice("extra", [False, True]):
        layers += [nn.Conv2d(width, width, trial.choice("k", [3, 5]), padding="same"), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, trial.num_classes)]
    return nn.Sequential(*layers)


def test_define_by_run_user_space(tmp_path):
    sp = UserSpace(_user_builder, name="mine")
    assert set(sp.params) == {"width", "extra", "k"}  # conditional choice discovered by probing
    assert sp.largest() == {"width": 16, "extra": True, "k": 5}
    assert sp.smallest() == {"width": 8, "extra": False}
    model = sp.build({"width": 16, "extra": True, "k": 5}, 10, 1, 8)
    assert model[2].kernel_size == (5, 5) and model.input_resolution == 8
    export_onnx(model, example_input(model, 1), tmp_path / "u.onnx", what=f"model from space {sp.name}")
    with pytest.raises(CodesignError, match="width=7"):
        sp.build({"width": 7}, 10, 1, 8)
    define_space("mine-registered")(_user_builder)
    assert "mine-registered" in list_spaces() and get_space("mine-registered").name == "mine-registered"


def test_user_space_errors(tmp_path):
    def broken(trial):
        trial.choice("w", [1, 2])
        raise RuntimeError("boom")

    with pytest.raises(CodesignError, match="builder .* failed .*boom"):
        UserSpace(broken, name="broken")
    with pytest.raises(CodesignError, match="expected a torch.nn.Module"):
        UserSpace(lambda t: 42, name="notmodule")

    class FFT(nn.Module):
        def forward(self, x):
            return torch.fft.fft2(x).abs().flatten(1)

    sp = UserSpace(lambda t: FFT(), name="fftspace")
    with pytest.raises(CodesignError, match="model from space fftspace failed to export"):
        export_onnx(sp.build({}, 10, 1, 8), torch.zeros(1, 1, 8, 8), tmp_path / "f.onnx", what=f"model from space {sp.name}")


def test_toml_user_space(tmp_path):
    (tmp_path / "mymodels.py").write_text(
        "import torch.nn as nn\n"
        "def build(trial):\n"
        "    w = trial.choice('width')\n"
        "    return nn.Sequential(nn.Conv2d(trial.in_channels, w, trial.choice('k'), padding='same'), nn.ReLU(),\n"
        "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, trial.num_classes))\n")
    (tmp_path / "space.toml").write_text('[space]\nname = "tomlspace"\nbuilder = "mymodels:build"\n'
                                         "[choices]\nwidth = [4, 8, 12]\nk = [1, 3]\n")
    sp = get_space(str(tmp_path / "space.toml"))
    assert sp.name == "tomlspace" and sp.params == {"width": (4, 8, 12), "k": (1, 3)}
    m = sp.build({"width": 12, "k": 3}, 10, 1, 8)
    assert m[0].out_channels == 12
    (tmp_path / "file.toml").write_text('[space]\nbuilder = "mymodels.py:build"\n[choices]\nwidth = [4]\nk = [3]\n')
    assert get_space(str(tmp_path / "file.toml")).largest() == {"width": 4, "k": 3}
    (tmp_path / "bad.toml").write_text('[space]\nbuilder = "mymodels:nothere"\n')
    with pytest.raises(CodesignError, match="cannot load builder"):
        get_space(str(tmp_path / "bad.toml"))
    (tmp_path / "syntax.toml").write_text("[space\n")
    with pytest.raises(CodesignError, match="invalid TOML"):
        get_space(str(tmp_path / "syntax.toml"))
    with pytest.raises(CodesignError, match="not found"):
        get_space(str(tmp_path / "missing.toml"))


def test_subnet_reaches_the_cost_models_through_the_onnx_frontend():
    sp = get_space("mobilenetv3", **TINY["mobilenetv3"])
    small, big = (sp.build(a, 10, 1, 8) for a in (sp.smallest(), sp.largest()))
    wl_small, wl_big = (load_torch(m, example_input(m, 1), name=sp.name) for m in (small, big))
    assert len(wl_small) > 0 and wl_big.macs > 2 * wl_small.macs


@pytest.mark.parametrize("name", list(TINY))
def test_layer_names_are_stable_across_subnets(name):
    """A per-layer bit map names the same supernet layer in every sub-network."""
    from codesign.quant import layer_names_for_bits

    sp = get_space(name, **TINY[name])
    net = sp.supernet(10, 1, 8)
    largest = set(layer_names_for_bits(net.extract(sp.largest())))
    for i in range(6):
        arch = sp.sample(i)
        names = layer_names_for_bits(net.extract(arch))
        assert set(names) <= largest
        assert "stages.1.0.conv1.conv" in names or "stages.1.0.project.conv" in names
    assert "classifier" in largest and "stem.conv" in largest
