"""A third-party plug-in works everywhere a built-in one does.

The test builds a throw-away plug-in distribution (a package plus its .dist-info metadata with
entry points) in a temporary folder, puts it on the path of a fresh ``python -m codesign``
process, and uses its target and cost model through `analyze`, `check`, `search`, `targets` and `--version`.
"""
import json
import textwrap

import pytest

from conftest import LIGHT, REPO, TINY_SPACE, run_cli_process

PLUGIN = '''
from pathlib import Path

from hwmodels.base import LayerCost, NetworkCost


def target_path():
    return Path(__file__).with_name("plugin_device.toml")


class MacsModel:
    """Latency = MACs / the target's widest peak; no energy estimate (None, not 0)."""

    name = "plugin-macs"

    def __init__(self, **options):
        self.options = options

    def estimate(self, workload, target, bits=None):
        rate = max(target.peak_gmacs.values()) * 1e9
        layers = [LayerCost(l.name, l.op, l.op_class, l.macs, l.weight_bytes, l.act_bytes, l.macs / rate, None,
                            "compute" if l.macs else "free") for l in workload.layers()]
        return NetworkCost(workload.name, target.name, self.name, layers, sum(c.latency_s for c in layers), None,
                           workload.macs, workload.params, workload.weight_bytes, workload.not_modelled)
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    pkg = root / "codesign_testplugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    host = (REPO / "targets" / "host.toml").read_text()
    (pkg / "plugin_device.toml").write_text(host.replace('name = "host"', 'name = "plugin-device"'))
    info = root / "codesign_testplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: codesign-testplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[codesign.cost_models]\nplugin-macs = codesign_testplugin:MacsModel\n\n"
        "[codesign.targets]\nplugin-device = codesign_testplugin:target_path\n")
    return root


def _run(plugin_path, *args, check_rc=None):
    return run_cli_process(*args, check_rc=check_rc, path=(plugin_path,))


@pytest.mark.slow
def test_plugin_target_and_cost_model_work_like_built_ins(plugin_path):
    model = str(LIGHT / "light_squeezenet.onnx")
    out = _run(plugin_path, "analyze", model, "--target", "plugin-device", "--cost-model", "plugin-macs",
               "--json", "-", check_rc=0)
    data = json.loads(out.stdout)
    assert data["target"] == "plugin-device" and data["cost_model"] == "plugin-macs"
    assert data["energy_mj"] is None
    from hwmodels.targets import load_target

    peak = max(load_target("host").peak_gmacs.values()) * 1e9     # the plug-in target is host's figures renamed
    assert data["latency_ms"] == pytest.approx(data["macs"] / peak * 1e3, rel=1e-9)
    over = _run(plugin_path, "check", model, "-t", "plugin-device", "--cost-model", "plugin-macs",
                "--max-latency-ms", str(data["latency_ms"] / 2), check_rc=1)
    assert "OVER" in over.stdout
    no_energy = _run(plugin_path, "check", model, "-t", "plugin-device", "--cost-model", "plugin-macs",
                     "--max-energy-mj", "1")
    assert no_energy.returncode == 2 and "does not estimate energy" in no_energy.stderr
    listed = json.loads(_run(plugin_path, "targets", "--json", check_rc=0).stdout)
    mine = [t for t in listed if t["name"] == "plugin-device"]
    assert mine and mine[0]["origin"] == "plug-in codesign-testplugin"
    version = _run(plugin_path, "--version", check_rc=0).stdout
    assert "plug-in cost model 'plugin-macs' from codesign-testplugin" in version
    assert "plug-in target 'plugin-device' from codesign-testplugin" in version


def test_registered_cost_model_is_found_by_name():
    from hwmodels import get_cost_model, list_cost_models, register_cost_model
    from hwmodels.errors import CodesignError

    class Constant:
        name = "constant"

        def estimate(self, workload, target, bits=None):
            raise NotImplementedError

    register_cost_model("test-constant", Constant)
    assert "test-constant" in list_cost_models()
    assert isinstance(get_cost_model("test-constant"), Constant)
    with pytest.raises(CodesignError, match="built in"):
        register_cost_model("roofline", Constant)
    with pytest.raises(CodesignError, match="unknown cost model 'nope'"):
        get_cost_model("nope")


SEARCH = """
seed = 0
objectives = ["accuracy", "latency_ms"]
{space}
[supernet]
epochs = 2
checkpoint_dir = "{ckpt}"
[target]
name = "plugin-device"
cost_model = "plugin-macs"
[quantization]
bits = [8]
[budget]
trials = 3
minutes = 10
"""


@pytest.mark.slow
def test_plugin_target_and_cost_model_in_search(plugin_path, tmp_path):
    cfg = tmp_path / "plugin.toml"
    cfg.write_text(SEARCH.format(ckpt=tmp_path / "ckpt", space=TINY_SPACE))
    out = tmp_path / "out"
    _run(plugin_path, "search", str(cfg), "--out", str(out), "--strategy", "joint", check_rc=0)
    front = json.loads((out / "pareto.json").read_text())["front"]
    assert front
    from hwmodels.targets import load_target

    peak = max(load_target("host").peak_gmacs.values()) * 1e9
    for member in front:       # the plug-in's own figure: MACs / peak, nothing of the built-in models
        assert member["latency_ms"] == pytest.approx(member["macs"] / peak * 1e3, rel=1e-6)
