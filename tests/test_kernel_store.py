"""The kernel store: round trips, corruption detection and rebuild, interrupted profiles."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from hwmodels.kernel_store import (SCHEMA_VERSION, CorruptStoreWarning, KernelRecord, KernelStore,
                                   machine_fingerprint, signature_hash)

ROOT = Path(__file__).resolve().parents[1]


def _rec(i: int, us: float = 10.0, kind: str = "nchwc.Conv/dense") -> KernelRecord:
    sig = {"op": "com.microsoft.nchwc:Conv", "inputs": [[1, 16, 8 + i, 8 + i]], "attrs": {"group": 1}}
    return KernelRecord(signature_hash(sig), kind, sig["op"], sig, {"macs": 1000 * (i + 1)}, us, 0.5, 30,
                        "onnxruntime", "m1", 1, "all")


def test_quiet_flag_keeps_the_faster_time(tmp_path):
    """A kernel keeps its fastest time; it counts as measured quietly once any measurement was."""
    with KernelStore(tmp_path / "k.sqlite") as s:
        key = ("onnxruntime", "m1", 1, "all")
        busy = _rec(0, 8.0)
        s.put(busy, keep_faster=True)
        quiet_slower = _rec(0, 9.0)
        quiet_slower.quiet = True
        s.put(quiet_slower, keep_faster=True)
        r = s.get(busy.sig_hash, *key)
        assert r.us == 8.0 and r.quiet and s.count(*key, quiet_only=True) == 1
        s.mark_block("b1", *key, quiet=False)
        assert s.has_block("b1", *key) and not s.has_block("b1", *key, quiet_only=True)
        s.mark_block("b1", *key, quiet=True)
        s.mark_block("b1", *key, quiet=False)       # a later busy measurement does not undo a quiet one
        assert s.has_block("b1", *key, quiet_only=True)
        s.set_profile_cost_s(*key, 0.05)
        assert s.profile_cost_s(*key) == 0.05 and s.profile_cost_s("tvm", "m1", 1, "llvm") is None


def test_round_trip_and_keys(tmp_path):
    with KernelStore(tmp_path / "k.sqlite") as s:
        for i in range(3):
            s.put(_rec(i, 10.0 + i))
        r = s.get(_rec(1).sig_hash, "onnxruntime", "m1", 1, "all")
        assert r is not None and r.us == 11.0 and r.signature["inputs"] == [[1, 16, 9, 9]]
        # every part of the key matters
        assert s.get(_rec(1).sig_hash, "onnxruntime", "m2", 1, "all") is None
        assert s.get(_rec(1).sig_hash, "onnxruntime", "m1", 2, "all") is None
        assert s.get(_rec(1).sig_hash, "tvm", "m1", 1, "all") is None
        assert s.count("onnxruntime", "m1", 1, "all") == 3
        s.put(_rec(1, 99.0))   # re-measuring replaces
        assert s.count() == 3 and s.get(_rec(1).sig_hash, "onnxruntime", "m1", 1, "all").us == 99.0
        h1 = s.content_hash("onnxruntime", "m1", 1, "all")
        s.put_overhead("onnxruntime", "m1", 1, "all", 12.0, -3.0, 8)
        assert s.get_overhead("onnxruntime", "m1", 1, "all") == (12.0, -3.0)
    with KernelStore(tmp_path / "k.sqlite") as s:   # persisted, reused across runs
        assert s.count() == 3 and s.content_hash("onnxruntime", "m1", 1, "all") == h1
        assert [r.sig_hash for r in s.records("onnxruntime", "m1", 1, "all")] == sorted(r.sig_hash for r in s.records("onnxruntime", "m1", 1, "all"))


def test_fingerprint_is_stable_and_backend_specific():
    assert machine_fingerprint("onnxruntime") == machine_fingerprint("onnxruntime")
    assert machine_fingerprint("onnxruntime") != machine_fingerprint("tvm")


def test_default_path_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CODESIGN_KERNEL_CACHE", str(tmp_path / "env.sqlite"))
    with KernelStore() as s:
        assert s.path == tmp_path / "env.sqlite"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "schema", "bad_row", "missing_table"])
def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, damage):
    path = tmp_path / "k.sqlite"
    with KernelStore(path) as s:
        for i in range(50):
            s.put(_rec(i))
    if damage == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    elif damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3] + b"\x00" * 100 + data[len(data) // 2:])
    else:
        conn = sqlite3.connect(path)
        if damage == "schema":
            conn.execute("UPDATE meta SET value='0' WHERE key='schema_version'")
        elif damage == "bad_row":
            conn.execute("UPDATE kernels SET signature='{not json' WHERE rowid=3")
        else:
            conn.execute("DROP TABLE overheads")
        conn.commit()
        conn.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = KernelStore(path)
    assert any(issubclass(w.category, CorruptStoreWarning) for w in caught), [str(w.message) for w in caught]
    assert s.rebuilt_from is not None and s.rebuilt_from.exists()
    assert s.count() == 0          # no answers from damaged data
    s.put(_rec(0))                  # and the rebuilt store works
    assert s.count() == 1
    s.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a healthy store opens without a warning
        KernelStore(path).close()


def test_schema_version_written(tmp_path):
    KernelStore(tmp_path / "k.sqlite").close()
    conn = sqlite3.connect(tmp_path / "k.sqlite")
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    conn.close()


def test_interrupted_profile_keeps_measurements(tmp_path):
    """A KeyboardInterrupt mid-profile keeps every finished block; a rerun skips them."""
    from hwmodels.kernel_backend import get_backend
    from hwmodels.kernel_profiling import run_profile
    from hwmodels.kernel_sampling import random_blocks

    blocks = random_blocks(6, seed=11)
    store = KernelStore(tmp_path / "k.sqlite")
    backend = get_backend("onnxruntime")
    backend.repeats, backend.warmup = 5, 1

    def stop_after_three(done, total, label):
        if done == 3:
            raise KeyboardInterrupt

    summary = run_profile(store, backend, blocks, on_progress=stop_after_three, measure_overhead=False, gate=False)
    assert summary["interrupted"] and summary["profiled"] == 3
    n = summary["stored_total"]
    assert n >= 3
    store.close()
    store = KernelStore(tmp_path / "k.sqlite")   # survives reopening
    assert store.count() == n
    again = run_profile(store, backend, blocks, measure_overhead=False, gate=False)
    assert not again["interrupted"] and again["already_known"] == 3 and again["profiled"] == 3
    assert store.count() >= n
    store.close()


def test_killed_profile_process_leaves_a_usable_store(tmp_path):
    """SIGINT (Ctrl-C) and then SIGKILL of a running `codesign profile`: the cache stays valid."""
    cache = tmp_path / "k.sqlite"
    # Ctrl-C as a terminal delivers it; a harness that starts the tests in the background hands its
    # children SIGINT ignored (POSIX shells do that for `&` jobs), so the child takes it back first
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from codesign.cli import main; "
            f"sys.exit(main(['profile', '--cache', {str(cache)!r}, '--samples', '400', '--repeats', '5', "
            "'--warmup', '1', '--budget-s', '120']))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for sig in (signal.SIGINT, signal.SIGKILL):
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        count = 0
        while time.time() < deadline:
            time.sleep(0.5)
            if cache.exists():
                try:
                    conn = sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5)
                    count = conn.execute("SELECT COUNT(*) FROM kernels").fetchone()[0]
                    conn.close()
                except sqlite3.Error:
                    count = 0
            if count >= 3:
                break
        proc.send_signal(sig)
        err = proc.communicate(timeout=60)[1].decode()
        if sig == signal.SIGINT:
            assert proc.returncode == 130, err
            assert "interrupted" in err
        assert count >= 3
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # no corruption warning: the store is intact
            with KernelStore(cache) as s:
                assert s.count() >= count
