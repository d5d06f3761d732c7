import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
REPO = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def light_dir() -> Path:
    return LIGHT


def run_cli(*args: str, check_rc: int | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user or a CI pipeline would."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("CODESIGN_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "codesign", *args], capture_output=True, text=True,
                          env=env, timeout=600)
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc
