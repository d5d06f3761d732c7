import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
REPO = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(Path(__file__).parent))

# the small space and data every test search uses (trains in seconds on digits)
TINY_SPACE = """[space]
name = "small-cnn"
options = { stage_channels = [8, 16], strides = [1, 2], depths = [1, 2], widths = [0.5, 1.0], kernels = [3] }
[data]
source = "digits"
"""


@pytest.fixture(scope="session")
def light_dir() -> Path:
    return LIGHT


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, check_rc: int | None = None) -> CliResult:
    """Run the CLI in-process (``codesign.cli.main``), capturing what it prints, as a user would see it."""
    from codesign.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    result = CliResult(rc, out.getvalue(), err.getvalue())
    if check_rc is not None:
        assert rc == check_rc, (rc, result.stdout[-2000:], result.stderr[-2000:])
    return result


def run_cli_process(*args: str, check_rc: int | None = None, path: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run the real ``python -m codesign`` in a subprocess (for what only a fresh process shows);
    ``path``: folders put in front of the import path (e.g. a plug-in's)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*map(str, path), str(REPO)]))
    env.pop("CODESIGN_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "codesign", *args], capture_output=True, text=True,
                          env=env, timeout=600)
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one torch thread is fastest on a shared 2-core machine; restore it afterwards."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="session")
def splits():
    """scikit-learn's bundled digits, split deterministically (nothing is downloaded)."""
    from codesign.data import load_splits

    return load_splits("digits", seed=0)


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server's URL: CODESIGN_TEST_POSTGRES_URL (.ci/run starts one), else one started
    here by .ci/postgres.sh; skipped with the reason where none can start, but failed under CI."""
    url = os.environ.get("CODESIGN_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    from pg_server import PostgresServer, available_reason

    reason = available_reason()
    server = PostgresServer()
    if reason is None:
        try:
            server.start()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            reason = f"could not start PostgreSQL: {' '.join(str(e).split())[:300]}"
    if reason is not None:
        server.remove()
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI needs a PostgreSQL server: {reason}")
        pytest.skip(reason)
    yield server.url
    server.remove()


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray cluster (2 CPUs) for the whole session: ray.init is slow."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium driven by Playwright (tests/browser.py): skipped without one, failed on CI."""
    from browser import launch_browser

    with launch_browser() as b:
        yield b


def pytest_terminal_summary(terminalreporter):
    """The hostile-input corpus's size in every run that ran it (tests/test_hostile_inputs.py)."""
    ran = [r for r in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
           if "test_hostile_inputs.py::test_hostile_input_is_one_clear_line" in r.nodeid]
    if ran:
        from collections import Counter

        from hostile import all_cases

        cases = all_cases()
        by_entry = Counter(c.entry for c in cases)
        terminalreporter.write_line(f"hostile-input corpus: {len(cases)} cases ({len(ran)} run here): "
                                    + ", ".join(f"{e} {n}" for e, n in sorted(by_entry.items())))
