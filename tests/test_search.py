"""`codesign search` end to end on digits, kill-and-resume, determinism and bad configs."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import pytest

from conftest import REPO, TINY_SPACE, run_cli

pytestmark = pytest.mark.slow   # searches: supernet training and trials

TINY = """
seed = {seed}
algorithm = "{algorithm}"
objectives = ["accuracy", "latency_ms", "energy_mj", "area_mm2"]
{space}
[supernet]
epochs = 3
checkpoint_dir = "{ckpt}"
[target]
name = "systolic"
ranges = {{ rows = [4, 8, 16], cols = [4, 8, 16], ifmap_sram_kb = [4, 8], filter_sram_kb = [4, 8], ofmap_sram_kb = [4, 8], dataflow = ["ws", "os"], dram_bandwidth_words = [4, 16] }}
[quantization]
bits = [4, 8, 16]
[constraints]
max_sram_kb = 20
[budget]
trials = {trials}
minutes = 10
"""


@pytest.fixture(scope="module")
def make_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    ckpt = root / "ckpt"

    def make(name="cfg", seed=0, trials=6, algorithm="nsga2", extra=""):
        p = root / f"{name}.toml"
        p.write_text(TINY.format(seed=seed, trials=trials, algorithm=algorithm, ckpt=ckpt, space=TINY_SPACE) + extra)
        return p
    return make


@pytest.fixture(scope="module")
def finished_run(make_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    proc = run_cli("search", str(make_config()), "--out", str(out), "--strategy", "all", check_rc=0)
    return out, proc


def test_end_to_end_artifacts(finished_run):
    out, proc = finished_run
    for f in ("pareto.csv", "pareto.json", "model.onnx", "model.qdq.onnx", "accelerator.toml", "report.html",
              "study.db", "design.json"):
        assert (out / f).stat().st_size > 0, f
    data = json.loads((out / "pareto.json").read_text())
    s = data["summary"]["strategies"]
    assert set(s) == {"joint", "sequential", "random"}
    assert s["joint"]["trials"] == 6 and s["sequential"]["trials"] == 6 and s["random"]["trials"] == 6
    assert all(0 <= v["hypervolume"] for v in s.values())
    for m in data["front"]:
        assert 0 < m["accuracy"] <= 1 and m["latency_ms"] > 0 and m["area_mm2"] > 0
        assert m["hw"]["ifmap_sram_kb"] + m["hw"]["filter_sram_kb"] + m["hw"]["ofmap_sram_kb"] <= 20
        assert 0 < m["test_accuracy"] <= 1
    design = json.loads((out / "design.json").read_text())
    # the QDQ file runs in onnxruntime and its measured accuracy matches the fake-quantized one
    assert abs(design["accuracy_test_qdq_onnxruntime"] - design["accuracy_test_fake_quant"]) <= 0.01
    sess = ort.InferenceSession(str(out / "model.qdq.onnx"), providers=["CPUExecutionProvider"])
    shape = [1 if isinstance(d, str) else d for d in sess.get_inputs()[0].shape]
    assert sess.run(None, {sess.get_inputs()[0].name: np.zeros(shape, np.float32)})[0].shape[-1] == 10
    # accelerator.toml is a target usable with --target
    spec = "input=" + "x".join(map(str, shape))          # model.onnx keeps a dynamic batch dimension
    ana = run_cli("analyze", str(out / "model.onnx"), "--target", str(out / "accelerator.toml"),
                  "--input-shape", spec, "--json", "-", check_rc=0)
    assert json.loads(ana.stdout)["cost_model"] == "systolic"
    assert "plotly" in (out / "report.html").read_text()[:2_000_000]


def test_same_seed_same_front(finished_run, make_config, tmp_path):
    out, _ = finished_run
    again = tmp_path / "again"
    run_cli("search", str(make_config()), "--out", str(again), "--strategy", "joint", check_rc=0)
    first = [m for m in json.loads((out / "pareto.json").read_text())["front"] if m["strategy"] == "joint"]
    second = json.loads((again / "pareto.json").read_text())["front"]
    key = lambda m: (m["trial"], round(m["accuracy"], 6), round(m["latency_ms"], 9))
    assert sorted(map(key, first)) == sorted(map(key, second))


def _complete(db):
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as c:
            return c.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_sigkill_then_resume_loses_no_trial(make_config, tmp_path):
    cfg = make_config("resume", trials=8)
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "codesign", "search", str(cfg), "--out", str(out), "--strategy", "joint"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "study.db"
    deadline = time.time() + 400
    while _complete(db) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _complete(db)
    assert 3 <= before < 8
    with sqlite3.connect(db) as c:
        kept = c.execute("select number, value from trials join trial_values using(trial_id) "
                         "where state='COMPLETE' and objective=0").fetchall()
    # resuming without --resume is refused (no silent overwrite)
    refused = run_cli("search", str(cfg), "--out", str(out), "--strategy", "joint")
    assert refused.returncode == 2 and "--resume" in refused.stderr
    run_cli("search", str(cfg), "--out", str(out), "--strategy", "joint", "--resume", check_rc=0)
    assert _complete(db) == 8
    with sqlite3.connect(db) as c:
        after = dict(c.execute("select number, value from trials join trial_values using(trial_id) "
                               "where state='COMPLETE' and objective=0").fetchall())
    assert all(after[n] == v for n, v in kept)
    assert json.loads((out / "pareto.json").read_text())["summary"]["strategies"]["joint"]["trials"] == 8
    # a resumed study continues as an uninterrupted one would: same trials, none measured twice
    whole = tmp_path / "whole"
    run_cli("search", str(cfg), "--out", str(whole), "--strategy", "joint", check_rc=0)
    with sqlite3.connect(whole / "study.db") as c:
        uninterrupted = dict(c.execute("select number, value from trials join trial_values using(trial_id) "
                                       "where state='COMPLETE' and objective=0").fetchall())
    assert sorted(after.values()) == sorted(uninterrupted.values())
    with sqlite3.connect(db) as c:
        candidates = [v for (v,) in c.execute("select a.value_json from trial_user_attributes a join trials t "
                                              "using(trial_id) where a.key = 'candidate' and t.state = 'COMPLETE'")]
    assert len(set(candidates)) == len(candidates)


@pytest.mark.parametrize("extra, fragment", [
    ("\n[bogus]\nx = 1\n", "'bogus': unknown key"),
    ("\ntrials_per_phase = 3\n", "'budget.trials_per_phase': unknown key"),   # lands in the last table
])
def test_bad_config_unknown_key(make_config, tmp_path, extra, fragment):
    cfg = make_config("bad_key", extra=extra)
    proc = run_cli("search", str(cfg), "--out", str(tmp_path / "o"))
    _one_line(proc, fragment)


def _one_line(proc, *frags):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-500:])
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for f in frags:
        assert f in proc.stderr, proc.stderr


def test_bad_configs(make_config, tmp_path):
    impossible = make_config("impossible").read_text().replace("max_sram_kb = 20", "max_sram_kb = 5")
    p = tmp_path / "impossible.toml"
    p.write_text(impossible)
    _one_line(run_cli("search", str(p), "--out", str(tmp_path / "o1")), "max_sram_kb", "impossible")
    empty = make_config("empty").read_text().replace("bits = [4, 8, 16]", "bits = []")
    p = tmp_path / "empty.toml"
    p.write_text(empty)
    _one_line(run_cli("search", str(p), "--out", str(tmp_path / "o2")), "quantization", "empty")
    empty_range = make_config("empty_range").read_text().replace('dataflow = ["ws", "os"]', "dataflow = []")
    p = tmp_path / "empty_range.toml"
    p.write_text(empty_range)
    _one_line(run_cli("search", str(p), "--out", str(tmp_path / "o3")), "target.ranges.dataflow", "empty")
    missing = make_config("missing").read_text().replace('source = "digits"', f'source = "{tmp_path}/nope.npz"')
    p = tmp_path / "missing.toml"
    p.write_text(missing)
    _one_line(run_cli("search", str(p), "--out", str(tmp_path / "o4")), "nope.npz")
    _one_line(run_cli("search", str(tmp_path / "absent.toml"), "--out", str(tmp_path / "o5")), "not found")
    bad_bits = make_config("bad_bits").read_text().replace("bits = [4, 8, 16]", "bits = [3, 8]")
    p = tmp_path / "bad_bits.toml"
    p.write_text(bad_bits)
    _one_line(run_cli("search", str(p), "--out", str(tmp_path / "o6")), "quantization.bits", "3")


def test_summary_reports_predictor_and_hardware_tradeoffs(finished_run):
    out, _ = finished_run
    data = json.loads((out / "pareto.json").read_text())
    joint = data["summary"]["strategies"]["joint"]
    assert joint["hardware_tradeoff_points"] > 0       # exact best accelerators for the measured networks
    norm = data["summary"]["hypervolume_normalisation"]
    assert norm["reference_point"] == 1.1 and set(norm["per_objective"]) == {"accuracy", "latency_ms", "energy_mj",
                                                                             "area_mm2"}
    assert all(m["accuracy_kind"] == "measured" for m in data["front"])
    html = (out / "report.html").read_text()
    assert "Hypervolume: objectives minimised" in html


def test_two_stage_fidelity_and_random_floor(make_config, tmp_path):
    """Low-fidelity trials cost a fraction of the budget and never reach a front; the random floor runs."""
    cfg = make_config("fidelity", trials=8, extra="\n[search]\nfidelity = \"two-stage\"\ninitial = 6\n")
    out = tmp_path / "two-stage"
    run_cli("search", str(cfg), "--out", str(out), "--strategy", "joint", check_rc=0)
    with sqlite3.connect(out / "study.db") as c:
        costs = [json.loads(v) for (v,) in c.execute(
            "select a.value_json from trial_user_attributes a join trials t using(trial_id) "
            "where a.key = 'cost' and t.state = 'COMPLETE'")]
    assert 8 <= sum(costs) < 9 and all(0 < x <= 1 for x in costs)
    front = json.loads((out / "pareto.json").read_text())["front"]
    assert front and all(m.get("fidelity", "full") == "full" for m in front)
    floor = tmp_path / "random"
    run_cli("search", str(make_config("floor", trials=4)), "--out", str(floor), "--strategy", "random", check_rc=0)
    assert json.loads((floor / "pareto.json").read_text())["summary"]["strategies"]["random"]["trials"] == 4


def test_report_opens_in_a_real_browser_and_rebuilds_identically(finished_run, browser, tmp_path):
    """report.html in headless chromium: no console errors or requests, every panel of every plot has
    data, axes span it, the chosen design's tables are there; `codesign report DIR` rebuilds the
    same page and fronts from what the search saved, without running anything."""
    from browser import assert_clean, assert_plots_have_data, inspect_page

    out, _ = finished_run
    page = inspect_page(browser, out / "report.html", tmp_path / "search_report.png")
    assert_clean(page)
    assert_plots_have_data(page)
    titles = " | ".join(p["title"] for p in page.plots)
    for expected in ("every objective pair", "fronts across all objectives", "convergence", "roofline"):
        assert expected in titles, titles
    pairs = next(p for p in page.plots if "every objective pair" in p["title"])
    assert len(pairs["subplots"]) == 6                     # 4 objectives: one panel per pair
    for s in ("joint", "sequential", "random"):            # the three strategies on the same axes
        assert sum(t["name"] == f"{s}: Pareto front" for t in pairs["traces"]) == 6
    stars = [t for t in pairs["traces"] if t["name"] == "chosen design"]
    assert len(stars) == 6 and all(t["points"] == 1 for t in stars)   # one star per panel
    roof = next(p for p in page.plots if "roofline" in p["title"])
    assert all(a["type"] == "log" for a in roof["axes"].values())
    tables = {t["id"] for t in page.tables}
    assert {"strategies", "accuracy", "architecture", "accelerator", "layers", "files"} <= tables
    layers = next(t for t in page.tables if t["id"] == "layers")
    assert layers["first_row"][:5] == ["layer", "op", "MACs", "weight bits", "activation bits"]
    assert (tmp_path / "search_report.png").stat().st_size > 10_000

    from codesign.report.search_report import convergence_curves
    from codesign.search.saved import load

    inputs = load(out)
    curves = convergence_curves(inputs.rows, inputs.objectives)
    summary = json.loads((out / "pareto.json").read_text())["summary"]["strategies"]
    for s, pts in curves.items():          # each curve ends at the strategy's reported hypervolume
        assert pts[-1][1] == pytest.approx(summary[s]["hypervolume"], rel=1e-9)
        assert all(a[1] <= b[1] + 1e-12 for a, b in zip(pts, pts[1:]))     # a front only grows

    before = {f: (out / f).read_bytes() for f in ("report.html", "pareto.json", "pareto.csv")}
    (out / "report.html").unlink()
    run_cli("report", str(out), check_rc=0)
    assert {f: (out / f).read_bytes() for f in before} == before


def test_report_of_a_folder_without_a_search_is_a_clear_error(tmp_path):
    r = run_cli("report", str(tmp_path), check_rc=2)
    assert "report_data.json not found" in r.stderr and "Traceback" not in r.stderr


def test_report_of_a_500_trial_study_stays_small_and_opens(finished_run, browser, tmp_path):
    """Size scales with the study: 500 measured trials per strategy (three strategies, eight hardware
    trade-off points each) -- the tiny run's rows repeated with jittered metrics -- stay under 5 MB
    with plotly inlined, and the page still renders every panel."""
    import dataclasses

    from browser import assert_clean, assert_plots_have_data, inspect_page
    from codesign.report.search_report import write_search_report
    from codesign.search.saved import load

    out, _ = finished_run
    inputs = load(out)
    rng = np.random.default_rng(0)
    rows = {}
    for s in ("joint", "sequential", "random"):
        base = [r for r in inputs.rows["joint"] if not r.derived]
        grown = []
        for n in range(500):
            r = base[n % len(base)]
            m = {**r.metrics, **{k: r.metrics[k] * float(rng.uniform(0.5, 2.0)) for k in ("latency_ms", "energy_mj", "area_mm2")},
                 "accuracy": float(min(1.0, r.metrics["accuracy"] * rng.uniform(0.8, 1.2)))}
            grown.append(dataclasses.replace(r, strategy=s, number=n, metrics=m))
            grown += [dataclasses.replace(r, strategy=s, number=n, derived=True,
                                          metrics={**m, "latency_ms": m["latency_ms"] * float(rng.uniform(0.7, 1.4))})
                      for _ in range(8)]
        rows[s] = grown
    summary = json.loads((out / "pareto.json").read_text())["summary"]
    big = write_search_report(tmp_path / "big.html", dataclasses.replace(inputs, rows=rows), summary)
    assert big.stat().st_size < 5_000_000, big.stat().st_size
    page = inspect_page(browser, big, tmp_path / "big.png")
    assert_clean(page)
    assert_plots_have_data(page)
