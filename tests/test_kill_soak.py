"""Results survive faults: a search SIGKILLed at 10 seeded-random moments -- during supernet
training, during evaluations, while the artifacts are written -- and resumed each time with
``--resume`` keeps every completed evaluation, leaves study.db intact, and ends with the same
trials, numbered alike, the same fronts and complete, consistent artifacts as an uninterrupted
run with the same seed.

Kill moments are drawn from a fixed seed, but where a kill lands still depends on the clock, so
every assertion holds wherever it lands; the phases they landed in are printed (``pytest -s``).
"""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from conftest import REPO, TINY_SPACE, run_cli
from test_search import TINY

pytestmark = pytest.mark.slow   # searches: supernet training and trials, 11 launches

TRIALS = 8
# what each kill waits for in its launch, in the order a search meets them; 3 + 4 + 3 = 10 kills
TARGETS = ["training"] * 3 + ["evaluating"] * 4 + ["artifacts"] * 3
RANK = {"starting": 0, "training": 1, "evaluating": 2, "artifacts": 3}
ARTIFACTS = ["pareto.json", "pareto.csv", "model.onnx", "model.qdq.onnx", "accelerator.toml", "model_tvm.so",
             "design.json", "report_data.json", "report.html"]
# one torch thread per process: the reference and the soak run side by side on a 2-core machine
ENV = {k: v for k, v in dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1").items() if k != "CODESIGN_DEBUG"}


def _config(root: Path, name: str) -> Path:
    """The tiny search, with its own fresh checkpoint folder (its supernet is trained inside the run)."""
    p = root / f"{name}.toml"
    p.write_text(TINY.format(seed=0, trials=TRIALS, algorithm="nsga2", ckpt=root / f"ckpt-{name}", space=TINY_SPACE))
    return p


def _launch(cfg: Path, out: Path, log: Path, resume: bool) -> subprocess.Popen:
    args = [sys.executable, "-m", "codesign", "search", str(cfg), "--out", str(out)] + ["--resume"] * resume
    with open(log, "w") as f:
        return subprocess.Popen(args, env=ENV, stdout=f, stderr=subprocess.STDOUT)


def _connect(db: Path):
    return closing(sqlite3.connect(db, timeout=30))


def _complete_count(db: Path, default: int) -> int:
    if not db.exists():
        return 0
    try:
        with _connect(db) as c:
            return c.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:        # mid-write, or not created yet: keep the last count
        return default


def _trials(db: Path) -> dict:
    """(study, trial number) -> (state, rounded objective values, user attributes) of every trial."""
    if not db.exists():
        return {}
    with _connect(db) as c:
        rows = c.execute("select s.study_name, t.number, t.state, t.trial_id from trials t "
                         "join studies s using(study_id)").fetchall()
        values, attrs = {}, {}
        for tid, obj, v in c.execute("select trial_id, objective, value from trial_values order by objective"):
            values.setdefault(tid, []).append(round(v, 9))
        for tid, k, v in c.execute("select trial_id, key, value_json from trial_user_attributes"):
            attrs.setdefault(tid, {})[k] = json.loads(v)
    return {(s, n): (state, tuple(values.get(tid, ())), attrs.get(tid, {})) for s, n, state, tid in rows}


def _completed(db: Path) -> dict:
    """(study, number) -> (values, candidate) of the COMPLETE trials: what a kill must never lose."""
    return {k: (v, json.dumps(a.get("candidate"), sort_keys=True))
            for k, (state, v, a) in _trials(db).items() if state == "COMPLETE"}


def _integrity(db: Path) -> None:
    if db.exists():
        with _connect(db) as c:
            assert c.execute("pragma integrity_check").fetchall() == [("ok",)]


class Watch:
    """What one launch has done so far, from the files it writes (polled every 50 ms)."""

    def __init__(self, out: Path, ckpt: Path, log: Path):
        self.out, self.ckpt, self.log, self.t0 = out, ckpt, log, time.time_ns()
        self.db = out / "study.db"
        self.complete_at_start = self.complete = _complete_count(self.db, 0)

    def trained(self) -> bool:
        return any(self.ckpt.glob("*.pt"))

    def written(self) -> list[str]:
        """Artifacts this launch wrote, oldest first."""
        done = [(p.stat().st_mtime_ns, f) for f in ARTIFACTS if (p := self.out / f).exists()]
        return [f for t, f in sorted(done) if t >= self.t0]

    def stage(self) -> str:
        self.complete = _complete_count(self.db, self.complete)
        if self.written():
            return "artifacts"
        if self.complete > self.complete_at_start:
            return "evaluating"
        if not self.trained() and "epoch 1/" in self.log.read_text():
            return "training"
        return "starting"

    def landed(self) -> str:
        """Where the kill landed, read from what the killed process left."""
        self.complete = _complete_count(self.db, self.complete)
        if not self.trained():
            return "training" if "epoch 1/" in self.log.read_text() else "starting (before training)"
        if w := self.written():
            if w[-1] == "report.html" and not (self.out / ".lock").exists():
                return "exiting (every artifact written, .lock removed)"
            return f"artifacts (last written: {w[-1]})"
        running = [k for k, (state, *_) in _trials(self.db).items() if state == "RUNNING"]
        if running:
            return "evaluating (trial %s #%d running)" % running[0]
        if self.complete > self.complete_at_start:
            return "evaluating (between trials)"
        return "setting up (supernet loaded, no new trial yet)"


def _kill_once(cfg, out, ckpt, log, resume, target, delay, need):
    """Launch; wait until the launch reaches ``target`` (``need``: how many new trials, or which
    artifact written), sleep ``delay``, SIGKILL.  Returns (where it landed, seconds, pid), or None
    if the search finished first."""
    proc = _launch(cfg, out, log, resume)
    watch, t = Watch(out, ckpt, log), time.monotonic()
    deadline = t + 300
    while proc.poll() is None and time.monotonic() < deadline:
        stage = watch.stage()
        if RANK[stage] > RANK[target] or stage == target and (
                target == "training" or target == "evaluating" and watch.complete - watch.complete_at_start >= need
                or target == "artifacts" and need in watch.written()):
            break
        time.sleep(0.05)
    if proc.poll() is None:
        time.sleep(delay)
    if proc.poll() is not None:
        assert proc.returncode == 0, (proc.returncode, log.read_text()[-3000:])
        return None
    assert time.monotonic() < deadline, f"never reached {target}: " + log.read_text()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return watch.landed(), time.monotonic() - t, proc.pid


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    root = tmp_path_factory.mktemp("soak")
    t0 = time.monotonic()
    ref_out = root / "ref"
    reference = _launch(_config(root, "ref"), ref_out, root / "ref.log", resume=False)   # side by side
    cfg, out, ckpt = _config(root, "kill"), root / "kill", root / "ckpt-kill"
    db = out / "study.db"
    rng = random.Random(20240607)
    # artifact kills, one in each step: (file it waits for, longest delay): exporting the ONNX files,
    # compiling the TVM module (seconds), writing report.html (half a second)
    after = [("pareto.json", 0.1), ("accelerator.toml", 3.0), ("report_data.json", 0.3)]
    kept: dict = {}
    landed = []
    for i, target in enumerate(TARGETS):
        need, longest = after.pop(0) if target == "artifacts" else (rng.randint(1, 3), 0.0)
        delay = {"training": rng.uniform(0, 1.2), "evaluating": rng.uniform(0, 0.8),
                 "artifacts": rng.uniform(0, longest)}[target]
        for attempt in range(4):
            log = root / f"kill-{i}-{attempt}.log"
            res = _kill_once(cfg, out, ckpt, log, i > 0 or attempt > 0, target, delay, need)
            if res is not None:
                break
            print(f"  kill {i + 1}: the search finished before it; again with half the delay")
            delay /= 2
        assert res is not None, "the search kept finishing before the kill"
        where, secs, pid = res
        landed.append(where)
        aim = f"{target}, {need} new trial(s)" if target == "evaluating" else \
            f"{target}, after {need}" if target == "artifacts" else target
        print(f"kill {i + 1:2d} (aimed at {aim}, +{delay:.2f}s): {where}; after {secs:.1f}s; "
              f"{_complete_count(db, 0)} trials complete")
        # after every kill: the database is intact and no completed evaluation is lost or changed
        _integrity(db)
        now = _completed(db)
        lost = {k: v for k, v in kept.items() if now.get(k) != v}
        assert not lost, f"kill {i + 1} lost or changed completed trials: {lost}"
        kept = now
    # what a kill between writing a temporary file and renaming it leaves (a window that random kills
    # rarely hit): the resume must clear it
    stray = out / f".pareto.json.{pid}.tmp"
    stray.write_text('{"half": ')
    final_log = root / "final.log"
    final = _launch(cfg, out, final_log, resume=True)
    assert final.wait(timeout=400) == 0, final_log.read_text()[-3000:]
    assert reference.wait(timeout=400) == 0, (root / "ref.log").read_text()[-3000:]
    print(f"soak: 10 kills and the final resume in {time.monotonic() - t0:.0f}s")
    return {"root": root, "out": out, "ref": ref_out, "kept": kept, "landed": landed}


def test_results_survive_sigkill_at_random_moments(soak):
    out, ref = soak["out"], soak["ref"]
    db = out / "study.db"
    landed = soak["landed"]
    assert len(landed) == 10
    print("kills landed in: " + ", ".join(f"{k} x{n}" for k, n in Counter(w.split(" (")[0] for w in landed).items()))

    _integrity(db)
    final = _completed(db)
    assert all(final.get(k) == v for k, v in soak["kept"].items())       # every completed evaluation kept

    # artifacts complete and consistent
    for f in ARTIFACTS + ["study.db", "config.json"]:
        assert (out / f).stat().st_size > 0, f
    assert not (out / ".lock").exists()
    assert not list(out.rglob(".*.tmp")), list(out.rglob(".*.tmp"))       # no stray temporary file
    data = json.loads((out / "pareto.json").read_text())
    trials = _trials(db)
    for m in data["front"]:          # every front member is a COMPLETE trial of its strategy, as measured
        match = [a for (s, n), (state, _, a) in trials.items()
                 if s.startswith(m["strategy"]) and n == m["trial"] and state == "COMPLETE"]
        assert any(a["metrics"]["accuracy"] == m["accuracy"] for a in match), m
    design = json.loads((out / "design.json").read_text())
    assert any((m["strategy"], m["trial"]) == (design["strategy"], design["trial"]) for m in data["front"])
    assert json.loads((out / "report_data.json").read_text())

    # each strategy spent exactly its budget: no trial lost, none counted twice
    for s in ("joint", "sequential"):
        v = data["summary"]["strategies"][s]
        assert v["trials"] == TRIALS and v["budget"]["spent"] == TRIALS and not v["budget"]["stopped_by_wall_clock"]
        cost = sum(a.get("cost", 1.0) for (name, _), (state, _, a) in trials.items()
                   if name.startswith(s) and state == "COMPLETE")
        assert cost == TRIALS, (s, cost)

    # the same measured candidates as the uninterrupted run (no duplicates beyond its own), the same
    # trials under the same numbers, and nothing left interrupted
    reference = _completed(ref / "study.db")
    assert Counter(c for _, c in final.values()) == Counter(c for _, c in reference.values())
    assert final == reference
    assert Counter(state for state, *_ in trials.values()) == Counter(state for state, *_ in _trials(ref / "study.db").values())

    # same seed -> same fronts and the same chosen design after any number of interruptions
    key = lambda m: (m["strategy"], m["trial"], round(m["accuracy"], 6), round(m["latency_ms"], 9))
    ref_data = json.loads((ref / "pareto.json").read_text())
    joint = lambda d: sorted(key(m) for m in d["front"] if m["strategy"] == "joint")
    assert joint(data) and joint(data) == joint(ref_data)
    assert sorted(map(key, data["front"])) == sorted(map(key, ref_data["front"]))
    ref_design = json.loads((ref / "design.json").read_text())
    paths = ("accelerator", "tvm_module")
    assert {k: v for k, v in design.items() if k not in paths} == {k: v for k, v in ref_design.items() if k not in paths}

    # the report rebuilds from what the search saved
    run_cli("report", str(out), check_rc=0)


# runs `codesign search`, SIGKILLing itself right after the N-th trial it queues (N = KILL_AFTER_QUEUED;
# "predicted:N": the N-th proposal of the surrogate): moments a random kill rarely hits
INJECT = """
import os, runpy, signal, sys
import optuna
kind, _, n = os.environ.get("KILL_AFTER_QUEUED", "").rpartition(":")   # unset: no kill
count = [0]
real = optuna.Study.enqueue_trial
def enqueue(self, params=None, user_attrs=None, skip_if_exists=False):
    real(self, params, user_attrs=user_attrs, skip_if_exists=skip_if_exists)
    count[0] += not kind or kind in (user_attrs or {})
    if count[0] == int(n or 0):
        os.kill(os.getpid(), signal.SIGKILL)
optuna.Study.enqueue_trial = enqueue
sys.argv = ["codesign", *sys.argv[1:]]
runpy.run_module("codesign", run_name="__main__", alter_sys=True)
"""


def test_kill_while_queueing_loses_no_queued_trial(soak):
    """Killed after the first of the two corners is queued, then after two of the surrogate's four
    proposals: the resumes queue the rest, so the study ends with the same trials, numbered alike,
    and the same front as the uninterrupted run (a resume used to skip the half-queued start and
    measure only the queued part of a batch before proposing anew)."""
    root, ref = soak["root"], soak["ref"]
    out, db, study = root / "inject", root / "inject" / "study.db", "joint-surrogate-s0"
    args = [sys.executable, "-c", INJECT, "search", str(root / "ref.toml"), "--out", str(out), "--strategy", "joint"]
    for i, when in enumerate(["1", "predicted:2"]):
        proc = subprocess.run(args + ["--resume"] * (i > 0), env=dict(ENV, KILL_AFTER_QUEUED=when),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        _integrity(db)
    with _connect(db) as c:
        queued = [json.loads(v) for (v,) in c.execute(
            "select a.value_json from trial_user_attributes a join trials using(trial_id) join studies s "
            "using(study_id) where s.study_name = ? and a.key = 'predicted'", (study,))]
    assert len(queued) == 2                    # the kill landed half-way through queueing the batch
    proc = subprocess.run(args + ["--resume"], env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mine = {k: v for k, v in _completed(db).items() if k[0] == study}
    assert mine == {k: v for k, v in _completed(ref / "study.db").items() if k[0] == study}
    key = lambda m: (m["trial"], round(m["accuracy"], 6), round(m["latency_ms"], 9))
    joint = lambda d: sorted(key(m) for m in json.loads((d / "pareto.json").read_text())["front"]
                             if m["strategy"] == "joint")
    assert joint(out) == joint(ref)


def test_checkpoint_killed_while_saving_is_not_trusted(tmp_path):
    """A process SIGKILLed half-way through saving the supernet leaves no checkpoint at its path, so the
    next run trains again instead of refusing a half-written file on every resume."""
    from codesign.data import load_splits
    from codesign.spaces import get_space
    from codesign.supernet import load_checkpoint, train_or_load
    from codesign.training import TrainConfig

    script = f"""
import io, os, signal, torch
from codesign.data import load_splits
from codesign.spaces import get_space
from codesign.supernet import train_or_load
from codesign.training import TrainConfig
real = torch.save
def dying_save(obj, f, *a, **k):           # half the bytes reach the file, then the process dies
    buf = io.BytesIO()
    real(obj, buf, *a, **k)
    with open(f, "wb") as fh:
        fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = dying_save
space = get_space("small-cnn", stage_channels=[8, 16], strides=[1, 2], depths=[1, 2], widths=[0.5, 1.0], kernels=[3])
train_or_load(space, load_splits("digits", seed=0), TrainConfig(epochs=1), {str(tmp_path)!r})
"""
    proc = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not list(tmp_path.glob("*.pt"))
    space = get_space("small-cnn", stage_channels=[8, 16], strides=[1, 2], depths=[1, 2], widths=[0.5, 1.0], kernels=[3])
    _, path, reused = train_or_load(space, load_splits("digits", seed=0), TrainConfig(epochs=1), tmp_path)
    assert not reused
    load_checkpoint(path)
    assert train_or_load(space, load_splits("digits", seed=0), TrainConfig(epochs=1), tmp_path)[2]
