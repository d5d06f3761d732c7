"""Searches beyond one process, on real parts: a PostgreSQL server shared by two `codesign search`
processes, a local process pool whose worker is SIGKILLed mid-evaluation, the database stopped
mid-search, a real local Ray cluster (2 CPUs), and the bad input of each (one line, exit 2).

Each run is checked against one uninterrupted in-process search of the same config: the same
trials, numbered alike, with the same measured values and candidates -- so nothing was lost,
nothing measured or counted twice, and a shared or parallel search builds the study a single
process builds.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import optuna
import psutil
import pytest

from conftest import REPO, TINY_SPACE, run_cli, run_cli_process
from test_search import TINY

pytestmark = pytest.mark.slow   # searches

TRIALS = 6
STUDY = "joint-surrogate-s0"
ENV = {k: v for k, v in dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1").items() if k != "CODESIGN_DEBUG"}


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    p = root / "tiny.toml"
    p.write_text(TINY.format(seed=0, trials=TRIALS, algorithm="nsga2", ckpt=root / "ckpt", space=TINY_SPACE))
    return p


def _trials(url: str) -> dict:
    """number -> (state, rounded values, candidate) of the joint study's trials."""
    study = optuna.load_study(study_name=STUDY, storage=url)
    return {t.number: (t.state.name, tuple(round(v, 9) for v in t.values or ()),
                       json.dumps(t.user_attrs.get("candidate"), sort_keys=True)) for t in study.get_trials()}


@pytest.fixture(scope="module")
def reference(cfg, tmp_path_factory):
    """The uninterrupted single-process search (it also trains the supernet every other run reuses)."""
    out = tmp_path_factory.mktemp("ref") / "out"
    run_cli("search", str(cfg), "--out", str(out), "--strategy", "joint", check_rc=0)
    trials = _trials(f"sqlite:///{out / 'study.db'}")
    assert len(trials) == TRIALS and all(s == "COMPLETE" for s, *_ in trials.values())
    assert len({c for *_, c in trials.values()}) == TRIALS            # no candidate measured twice
    return trials


def _fresh_database(server_url: str, name: str) -> str:
    """A new, empty database on the server (each test gets its own study)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


def _launch(cfg, out, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "codesign", "search", str(cfg), "--out", str(out), "--strategy",
                             "joint", *extra], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _count(url: str, state: str) -> int:
    try:
        study = optuna.load_study(study_name=STUDY, storage=url)
        return sum(t.state.name == state for t in study.get_trials(deepcopy=False))
    except Exception:            # not created yet, or mid-write
        return 0


@pytest.fixture(scope="module")
def shared_study(cfg, postgres_url, tmp_path_factory):
    """Two `codesign search --storage URL --resume` processes started together on one PostgreSQL study."""
    url = _fresh_database(postgres_url, "codesign_shared")
    root = tmp_path_factory.mktemp("shared")
    procs = [_launch(cfg, root / name, "--storage", url, "--resume") for name in ("a", "b")]
    results = [p.communicate(timeout=600) for p in procs]
    return url, root, [(p.returncode, out, err) for p, (out, err) in zip(procs, results)]


def test_two_processes_share_one_postgres_study(shared_study, reference):
    url, root, results = shared_study
    for rc, _, err in results:
        assert rc == 0, err[-3000:]
    trials = _trials(url)
    assert trials == reference                 # trials completed == budget, none twice, same as one process
    owners = {t.system_attrs["codesign_owner"]["pid"] for t in optuna.load_study(study_name=STUDY, storage=url).trials}
    assert len(owners) == 2, "both processes measured trials"
    for name in ("a", "b"):                    # each finished the budget and wrote the artifacts
        summary = json.loads((root / name / "pareto.json").read_text())["summary"]
        assert summary["strategies"]["joint"]["trials"] == TRIALS
    study = optuna.load_study(study_name=STUDY, storage=url)    # readable as it is in optuna-dashboard
    assert study.metric_names == ["accuracy", "latency_ms", "energy_mj", "area_mm2"]
    assert {"candidate", "metrics"} <= set(study.trials[0].user_attrs)
    r = run_cli("report", str(root / "a"), "--storage", url, check_rc=0)    # rebuilt, and the study agrees
    assert "rebuilt" in r.stderr and "note:" not in r.stderr


def test_shared_study_refuses_another_config_and_a_fresh_start(shared_study, cfg, tmp_path):
    url = shared_study[0]
    r = run_cli("search", str(cfg), "--out", str(tmp_path / "x"), "--strategy", "joint", "--storage", url,
                "--resume", "--trials", "7")
    assert r.returncode == 2 and "made by a different config (changed: budget)" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_cli("search", str(cfg), "--out", str(tmp_path / "y"), "--strategy", "joint", "--storage", url)
    assert r.returncode == 2 and "pass --resume" in r.stderr, r.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()     # refused before anything was written


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("url, fragment", [
    ("postgresql//codesign@localhost/codesign", "is not a database URL"),
    ("nosuchdb://host/x", "unknown database kind"),
    ("postgresql://codesign:secret@127.0.0.1:{port}/codesign", "cannot connect to the database"),
    ("sqlite:////no/such/folder/study.db", "does not exist"),
])
def test_bad_storage_url_is_one_line(cfg, tmp_path, url, fragment):
    r = run_cli("search", str(cfg), "--out", str(tmp_path / "o"), "--storage", url.format(port=_free_port()))
    assert r.returncode == 2 and fragment in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "secret" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_ray_address_without_a_cluster_is_one_line(cfg, tmp_path):
    r = run_cli_process("search", str(cfg), "--out", str(tmp_path / "o"), "--ray", f"127.0.0.1:{_free_port()}")
    assert r.returncode == 2 and "no Ray cluster answers there" in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in r.stderr


def _workers(pid: int) -> list[psutil.Process]:
    """The pool's worker processes (spawned; not its resource tracker)."""
    return [c for c in psutil.Process(pid).children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]


def _running_sqlite(db) -> int:
    import sqlite3

    try:
        with sqlite3.connect(db, timeout=5) as c:
            return c.execute("select count(*) from trials where state = 'RUNNING'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_worker_sigkilled_mid_evaluation_loses_and_duplicates_nothing(cfg, reference, tmp_path):
    out = tmp_path / "pool"
    url = f"sqlite:///{out / 'study.db'}"
    proc = _launch(cfg, out, "--workers", "2")
    try:
        deadline, killed = time.time() + 300, None
        while proc.poll() is None and time.time() < deadline and killed is None:
            workers = _workers(proc.pid)
            if len(workers) == 2 and _running_sqlite(out / "study.db") == 2:   # both workers hold a trial
                killed = workers[0].pid
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.01)
        assert killed is not None, "never saw both workers measuring"
        _, err = proc.communicate(timeout=300)     # a finished search must also exit (no worker left blocking it)
    finally:
        for child in _workers(proc.pid) if proc.poll() is None else []:
            child.kill()
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "a worker died while measuring" in err      # the kill hit an evaluation, which was measured again
    assert _trials(url) == reference                   # zero lost, zero duplicated, same numbers and values


def test_database_stopped_mid_search_is_one_line_and_resumes(cfg, reference, tmp_path):
    from pg_server import PostgresServer, available_reason

    if (reason := available_reason()) is not None:      # this test needs a server of its own to stop
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI needs a PostgreSQL server: {reason}")
        pytest.skip(reason)
    server = PostgresServer()                 # its own server: this test stops it
    try:
        url = server.start()
        proc = _launch(cfg, tmp_path / "o", "--storage", url)
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline and _count(url, "COMPLETE") < 2:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        server.stop()                         # the database goes away mid-search
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err[-3000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: --storage") and "the database failed mid-search" in last, err[-3000:]
        assert "Traceback" not in err
        server.start()
        kept = {n: t for n, t in _trials(url).items() if t[0] == "COMPLETE"}
        assert 2 <= len(kept) < TRIALS and all(reference[n] == t for n, t in kept.items())
        run_cli("search", str(cfg), "--out", str(tmp_path / "o"), "--strategy", "joint", "--storage", url, "--resume",
                check_rc=0)
        assert _trials(url) == reference      # resumed: the same study as an uninterrupted search
    finally:
        server.remove()


def test_ray_local_search_same_study_after_a_worker_is_killed(cfg, reference, ray_local, tmp_path):
    """A real local Ray cluster (2 CPUs); one Ray worker SIGKILLed while it runs a measuring task:
    Ray retries the task, and the study is still exactly the uninterrupted one."""
    import threading

    killed, stop = [], threading.Event()

    def kill_one_measuring_worker():
        while not stop.is_set() and not killed:
            for proc in psutil.process_iter(["pid", "cmdline"]):
                if "ray::_measure_task" in " ".join(proc.info["cmdline"] or []):
                    os.kill(proc.info["pid"], signal.SIGKILL)
                    killed.append(proc.info["pid"])
                    break
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_measuring_worker, daemon=True)
    killer.start()
    out = tmp_path / "ray"
    try:
        r = run_cli("search", str(cfg), "--out", str(out), "--strategy", "joint", "--ray", "local", check_rc=0)
    finally:
        stop.set()
        killer.join()
    assert "2 at once (Ray tasks)" in " ".join(r.stderr.split())
    assert killed, "no Ray worker was seen measuring"
    assert _trials(f"sqlite:///{out / 'study.db'}") == reference
