"""Supernet training for real on digits: extracted sub-networks are accurate, checkpoints reload, CLI works."""
from __future__ import annotations

import re

import pytest
import torch

from hwmodels.errors import CodesignError
from codesign.spaces import get_space
from codesign.supernet import (checkpoint_key, extract, finetune, load_checkpoint, save_checkpoint, train_or_load,
                               train_supernet)
from codesign.training import TrainConfig, accuracy, train_module

pytestmark = pytest.mark.slow   # trains supernets




# small enough to train in ~15 s on one core, large enough that every sub-network learns digits
TINY = dict(stem_channels=16, stage_channels=(16, 24, 32), depths=(1, 2), widths=(0.5, 1.0), kernels=(3, 5))
CFG = TrainConfig(epochs=8, n_random=1, lr=5e-3, seed=0)




@pytest.fixture(scope="module")
def trained(splits):
    space = get_space("small-cnn", **TINY)
    return space, train_supernet(space, splits, CFG)


def test_subnets_extracted_from_the_supernet_are_accurate(trained, splits):
    space, net = trained
    accs = {name: accuracy(extract(net, arch, splits), splits.test)
            for name, arch in [("largest", space.largest()), ("smallest", space.smallest()),
                               ("random", space.sample(5))]}
    assert accs["largest"] > 0.93, accs
    assert accs["smallest"] > 0.85, accs
    assert accs["random"] > 0.88, accs


def test_bn_recalibration_matters(trained, splits):
    space, net = trained
    arch = space.smallest()
    recal = accuracy(extract(net, arch, splits), splits.val)
    raw = accuracy(net.extract(arch), splits.val)  # shared running stats of all sub-networks mixed
    assert recal >= raw - 0.01


def test_gap_to_training_alone_is_small(trained, splits):
    space, net = trained
    arch = space.sample(11)
    shared = accuracy(extract(net, arch, splits), splits.test)
    alone = train_module(space.build(arch, 10, 1, 8, seed=0), splits, TrainConfig(epochs=CFG.epochs, lr=5e-3))
    alone_acc = accuracy(alone, splits.test)
    assert alone_acc > 0.85
    assert shared > alone_acc - 0.06, (shared, alone_acc)


def test_finetune_keeps_or_improves(trained, splits):
    space, net = trained
    sub = extract(net, space.smallest(), splits)
    before = accuracy(sub, splits.val)
    after = accuracy(finetune(sub, splits, epochs=2, lr=1e-3), splits.val)
    assert after >= before - 0.02, (before, after)


def test_subnet_evaluator_is_what_a_search_calls(trained, splits):
    from codesign.quant import evaluate_accuracy
    from codesign.supernet import SubnetEvaluator

    space, net = trained
    ev = SubnetEvaluator(net, splits)
    arch = space.sample(3)
    assert ev.module(arch) is ev.module(dict(arch))  # cached
    assert ev.accuracy(arch, part="test") == accuracy(extract(net, arch, splits), splits.test)
    assert ev.accuracy(arch, "w2a8", part="test") < ev.accuracy(arch, "w8a8", part="test")
    assert evaluate_accuracy(ev.module(arch), splits, "w8a8") == ev.accuracy(arch, "w8a8", part="test")


def test_mobilenetv3_supernet_learns(splits):
    space = get_space("mobilenetv3", stem_channels=8, first_channels=8, stage_channels=(16, 24), strides=(2, 1),
                      se=(False, True), acts=("relu", "hswish"), head_channels=64, depths=(1, 2), kernels=(3, 5),
                      expands=(2, 4), widths=(0.75, 1.0), resolutions=(8, 12))
    net = train_supernet(space, splits, TrainConfig(epochs=5, n_random=1, lr=5e-3))
    big = extract(net, space.largest(), splits)
    assert big.input_resolution == 12
    assert accuracy(big, splits.test) > 0.8
    assert accuracy(extract(net, space.smallest(), splits), splits.test) > 0.5


def test_checkpoint_roundtrip_and_reuse(trained, splits, tmp_path):
    space, net = trained
    path = save_checkpoint(tmp_path / "ck.pt", net, CFG, splits)
    net2, meta = load_checkpoint(path)
    assert meta["space"] == "small-cnn" and meta["data_fingerprint"] == splits.fingerprint
    x = splits.test.x[:16]
    arch = space.sample(2)
    torch.testing.assert_close(net2(x, arch), net(x, arch))
    # train_or_load: trains once, then reuses the file keyed by space + config + data
    cfg = TrainConfig(epochs=1, n_random=0, seed=1)
    _, p1, reused1 = train_or_load(space, splits, cfg, tmp_path / "cache")
    _, p2, reused2 = train_or_load(space, splits, cfg, tmp_path / "cache")
    assert (reused1, reused2) == (False, True) and p1 == p2
    assert checkpoint_key(space, cfg, splits) != checkpoint_key(space, TrainConfig(epochs=2), splits)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CodesignError, match="not a readable codesign checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_user_space_model_trains_for_real(splits):
    import torch.nn as nn

    from codesign.spaces import UserSpace

    def build(trial):
        w = trial.choice("width", [16, 32])
        return nn.Sequential(nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                             nn.Flatten(), nn.Linear(4 * w, trial.num_classes))

    sp = UserSpace(build, name="u")
    with pytest.raises(CodesignError, match="no weight-sharing supernet"):
        sp.supernet(10, 1, 8)
    model = train_module(sp.build({"width": 32}, 10, 1, 8), splits, TrainConfig(epochs=4, lr=1e-2))
    assert accuracy(model, splits.test) > 0.7


# ----- CLI ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app():
    import typer

    from codesign.cli.train import evaluate, train_supernet as train_cmd

    a = typer.Typer()
    a.command("train-supernet")(train_cmd)
    a.command("evaluate")(evaluate)
    return a


def _acc(output: str) -> float:
    return float(re.search(r"measured test accuracy:? ([0-9.]+)", output).group(1))


def test_cli_train_and_evaluate(app, tmp_path):
    import json

    from typer.testing import CliRunner

    runner = CliRunner()
    cfg = json.dumps(TINY)
    ck = tmp_path / "ck.pt"
    res = runner.invoke(app, ["train-supernet", "--space", "small-cnn", "--space-config", cfg, "--epochs", "3",
                              "--n-random", "1", "--out", str(ck)])
    assert res.exit_code == 0, res.output
    assert ck.exists() and "largest sub-network: measured test accuracy" in res.output
    res = runner.invoke(app, ["evaluate", "--checkpoint", str(ck), "--arch", "largest", "--bits", "w8a8",
                              "--json", str(tmp_path / "r.json"), "--onnx-out", str(tmp_path / "m.onnx")])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["accuracy_kind"] == "measured" and abs(result["accuracy"] - _acc(res.output)) < 1e-4
    assert result["accuracy"] > 0.5 and (tmp_path / "m.onnx").exists()
    res = runner.invoke(app, ["evaluate", "--checkpoint", str(ck), "--arch", "largest", "--bits", "w2a8"])
    assert res.exit_code == 0 and _acc(res.output) < result["accuracy"]
    # bad inputs -> CodesignError (the real app prints it on one line and exits 2)
    for args, msg in [
        (["evaluate", "--checkpoint", str(ck), "--bits", "w4a8", "--supported-bits", "8,32"], "weight bit-width 4"),
        (["evaluate", "--checkpoint", str(ck), "--bits", "w3a8"], "bit-width 3"),
        (["evaluate", "--checkpoint", str(ck), "--data", str(tmp_path / "none.npz")], "not found"),
        (["evaluate", "--checkpoint", str(ck), "--arch", '{"d0": 7}'], "d0=7"),
        (["evaluate", "--checkpoint", str(tmp_path / "missing.pt")], "not found"),
        (["train-supernet", "--space", "nope"], "unknown space"),
    ]:
        res = runner.invoke(app, args)
        assert isinstance(res.exception, CodesignError) and msg in str(res.exception), (args, res.output)


def test_cli_error_exit_code_through_real_app(tmp_path):
    """The project's app maps CodesignError to one line and exit 2."""
    from codesign.cli import main

    assert main(["evaluate", "--data", str(tmp_path / "missing.npz")]) == 2
