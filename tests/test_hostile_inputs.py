"""Every malformed or hostile input in tests/hostile.py -> exit 2, exactly one line on stderr that
names the file (or option), no traceback, within 30 s and bounded memory, and the output folder
exactly as a previous run left it."""
import resource
import signal
from collections import Counter

import pytest

from conftest import run_cli
from hostile import all_cases

CASES = all_cases()
TIME_LIMIT_S = 30
MEMORY_LIMIT_MB = 1500


def test_corpus_size():
    by_entry = Counter(c.entry for c in CASES)
    print(f"\nhostile corpus: {len(CASES)} cases; " + ", ".join(f"{e} {n}" for e, n in sorted(by_entry.items())))
    assert len(CASES) >= 200
    assert set(by_entry) >= {"analyze", "check", "simulate", "dse", "calibrate", "profile", "search",
                             "train-supernet", "evaluate"}


def _snapshot(folder):
    return {p.relative_to(folder): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _alarm(signum, frame):
    raise TimeoutError(f"took more than {TIME_LIMIT_S} s")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_clear_line(case, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "previous-run.json").write_text('{"kept": true}')
    args = [str(a) for a in case.build(tmp_path)]
    before = _snapshot(out)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT_S)
    try:
        r = run_cli(*args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-1500:]
    assert "Traceback" not in r.stderr
    assert any(n in lines[0] for n in case.names), (case.names, lines[0])
    assert len(lines[0]) < 600, lines[0]
    assert _snapshot(out) == before, "the output folder changed"
    assert grown_mb < MEMORY_LIMIT_MB, f"peak memory grew by {grown_mb:.0f} MB"
