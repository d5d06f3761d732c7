"""The package structure holds: import-linter's contracts (pyproject.toml) pass on the tree, and
they do fail when a forbidden import is added (so the check can fail)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run([*LINT, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_contracts_hold_on_the_tree():
    proc = _lint(REPO, REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_contracts_fail_on_a_forbidden_import(tmp_path):
    for pkg in ("hwmodels", "codesign"):
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    roofline = tmp_path / "hwmodels" / "roofline.py"
    roofline.write_text(roofline.read_text() + "\nfrom codesign.search import config  # a cost model reaching up\n")
    frontend = tmp_path / "codesign" / "frontends" / "onnx_frontend.py"
    frontend.write_text(frontend.read_text() + "\nimport codesign.cli  # a frontend reaching up\n")
    proc = _lint(tmp_path, tmp_path)
    assert proc.returncode != 0
    assert "hwmodels stands alone: it imports nothing of codesign BROKEN" in proc.stdout
    assert "hwmodels.roofline -> codesign.search.config" in proc.stdout
    assert "codesign layers" in proc.stdout and "codesign.frontends.onnx_frontend -> codesign.cli" in proc.stdout
