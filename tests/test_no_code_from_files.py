"""Nothing executed from files: the measured model's cached regressors are plain numbers (an .npz
read with allow_pickle=False), a planted malicious pickle is never run, a damaged cache is refitted,
and no source file in codesign/, hwmodels/ or benchmarks/ unpickles, evals or execs anything."""
import ast
import os
import pathlib
import pickle
import random
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hwmodels import kernel_predictor as kp
from hwmodels import measured as measured_mod
from hwmodels.kernel_predictor import KernelPredictor
from hwmodels.kernel_store import KernelRecord, machine_fingerprint
from hwmodels.measured import MeasuredModel

warnings.filterwarnings("ignore", message=".*NchwcTransformer.*")
ROOT = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this creates ``marker`` (a harmless stand-in for ``os.system``)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def _payload(marker) -> bytes:
    return pickle.dumps(Payload(marker))


def test_the_payload_really_runs_when_unpickled(tmp_path):
    """The planted file is a live exploit: unpickling it does create the marker."""
    marker = tmp_path / "ran"
    pickle.loads(_payload(marker))
    assert marker.exists()


# --- the file format on its own: synthetic records, no profiling ---------------------------------

def _records(seed=0):
    rng = random.Random(seed)
    out = []
    for kind, n in [("nchwc.Conv/depthwise", 40), ("gemm", 25), ("nchwc.Conv/pointwise", 14), ("pool", 5)]:
        for i in range(n):
            f = dict(macs=rng.randint(1, 10**7), in_elems=rng.randint(1, 10**5), out_elems=rng.randint(1, 10**5),
                     w_elems=rng.randint(0, 10**4), c=rng.choice([8, 16, 32]), k=rng.choice([8, 16, 32]),
                     h=rng.choice([4, 8, 16]), stride=rng.choice([1, 2]), act=rng.choice([0, 1]))
            out.append(KernelRecord(f"{kind}-{i:03d}", kind, "op", {}, f, us=rng.uniform(1, 500)))
    return out


@pytest.fixture(scope="module")
def fitted():
    return KernelPredictor(n_estimators=60).fit(_records())


def _rows(X: np.ndarray, seed=1) -> np.ndarray:
    """The training rows, noisy copies, rows far outside the range and rows exactly on split thresholds."""
    rng = np.random.default_rng(seed)
    lo, hi = X.min(0), X.max(0)
    return np.vstack([X, X + rng.normal(0, 0.3, X.shape), rng.uniform(lo - 2, hi + 2, (200, X.shape[1])),
                      np.repeat(X[:1], 5, 0) * 0, np.repeat(X[:1], 5, 0) * 10])


def _max_rel(a, b) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def _check_against_sklearn(pred: KernelPredictor, records, loaded: KernelPredictor) -> dict:
    """Per class: max relative difference of the array walk vs sklearn's own predict, and fitted vs loaded."""
    figures = {}
    for kind, (X, y) in kp.class_data(records).items():
        rows = _rows(X)
        ours, theirs = pred.classes[kind].predict(rows), loaded.classes[kind].predict(rows)
        assert _max_rel(ours, theirs) <= 1e-9
        fig = {"loaded": _max_rel(theirs, ours)}
        if len(y) >= kp.MIN_TREE_SAMPLES:
            assert pred.classes[kind].trees is not None and loaded.source(kind) == "regressor"
            sk = kp._regressor(pred.params).fit(X, y).predict(rows)
            fig["sklearn"] = _max_rel(ours, sk)
            assert fig["sklearn"] <= 1e-9, kind
        else:
            assert loaded.source(kind) == "class-median"
        figures[kind] = fig
    return figures


def test_round_trip_and_sklearn_equality(fitted, tmp_path):
    path = tmp_path / "p.npz"
    fitted.save(path)
    loaded = KernelPredictor.load(path)
    figs = _check_against_sklearn(fitted, _records(), loaded)
    assert len(figs) == 4
    assert loaded.families == fitted.families and loaded.global_ratio == fitted.global_ratio
    assert loaded.n_records == fitted.n_records and loaded.params == fitted.params
    feats = [r.features for r in _records(seed=7)]
    for kind in [*fitted.classes, "nchwc.Conv/other", "never.seen"]:   # class, family and global fallbacks
        assert fitted.source(kind) == loaded.source(kind)
        np.testing.assert_array_equal(fitted.predict_many(kind, feats), loaded.predict_many(kind, feats))
    assert fitted.predict_many("gemm", []).shape == (0,)
    with np.load(path, allow_pickle=False) as z:                      # plain numbers and one string
        assert all(z[k].dtype.kind in "iuf" or (k == "meta" and z[k].dtype.kind == "U") for k in z.files)


def _tampered(fitted, path: Path, **changes) -> Path:
    arrays = fitted.to_arrays()
    for k, v in changes.items():
        if v is None:
            del arrays[k]
        else:
            arrays[k] = v
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def test_load_refuses_anything_else(fitted, tmp_path):
    good = tmp_path / "good.npz"
    fitted.save(good)
    raw = good.read_bytes()
    arrays = fitted.to_arrays()
    i = next(i for i, m in enumerate(fitted.classes.values()) if m.trees is not None)
    left = arrays[f"class{i}.left"]
    cyc = left.copy()
    cyc[np.argmax(cyc >= 0)] = 0                                      # a child pointing back at the root
    obj = np.array([{"a": 1}], dtype=object)
    bad = {
        "truncated": raw[: len(raw) // 2],
        "random": np.random.default_rng(0).bytes(4096),
        "empty": b"",
        "pickle": _payload(tmp_path / "ran"),
        "npy": None,
    }
    for name, data in bad.items():
        p = tmp_path / f"{name}.npz"
        if data is None:
            with open(p, "wb") as fh:
                np.save(fh, np.zeros(3))                              # a bare .npy, not an archive
        else:
            p.write_bytes(data)
        with pytest.raises((ValueError, OSError)):
            KernelPredictor.load(p)
    tampered = {
        "missing": {f"class{i}.value": None},
        "extra": {"surplus": np.zeros(2)},
        "short": {f"class{i}.threshold": arrays[f"class{i}.threshold"][:-1]},
        "2d": {f"class{i}.left": left[:, None]},
        "float index": {f"class{i}.left": left.astype(float)},
        "cycle": {f"class{i}.left": cyc},
        "out of range": {f"class{i}.right": np.where(left >= 0, 10**9, -1)},
        "feature": {f"class{i}.feature": np.where(left >= 0, 999, 0)},
        "nan value": {f"class{i}.value": np.full_like(arrays[f"class{i}.value"], np.nan)},
        "meta not json": {"meta": np.array("{not json")},
        "meta numbers": {"meta": np.arange(3)},
        "object": {"meta": obj},
        "other version": {"meta": np.array(str(arrays["meta"]).replace('"version": 1', '"version": 99'))},
    }
    for name, change in tampered.items():
        with pytest.raises((ValueError, OSError)):
            KernelPredictor.load(_tampered(fitted, tmp_path / f"t-{name}.npz", **change))
    assert not (tmp_path / "ran").exists()
    KernelPredictor.load(good)                                       # and the good one still loads


# --- the measured model's cache on a real kernel store -------------------------------------------

class Tiny(torch.nn.Module):
    def __init__(self, c=8, k=12):
        super().__init__()
        self.a = torch.nn.Sequential(torch.nn.Conv2d(3, c, 3, 1, 1), torch.nn.ReLU())
        self.b = torch.nn.Conv2d(c, k, 3, 2, 1, groups=1)
        self.fc = torch.nn.Linear(k, 10)

    def forward(self, x):
        return self.fc(self.b(self.a(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A real kernel store (one tiny net's kernels + 30 random samples) and a different net to estimate."""
    from codesign.frontends.onnx_frontend import load_onnx
    from codesign.frontends.torch_frontend import export_onnx
    from codesign.profiling import profile_blocks
    from hwmodels.kernel_backend import get_backend
    from hwmodels.kernel_profiling import run_profile
    from hwmodels.kernel_store import KernelStore

    t0 = time.perf_counter()
    d = tmp_path_factory.mktemp("nocode")
    torch.manual_seed(0)
    seen = export_onnx(Tiny().eval(), torch.randn(1, 3, 16, 16), d / "seen.onnx")
    unseen = export_onnx(Tiny(6, 20).eval(), torch.randn(1, 3, 24, 24), d / "unseen.onnx")
    store = KernelStore(d / "cache" / "k.sqlite")
    backend = get_backend("onnxruntime")
    backend.repeats = 10
    summary = run_profile(store, backend, profile_blocks(backend, [seen], samples=30, seed=3), passes=1,
                          measure_overhead=False)
    assert summary["failed"] == 0
    print(f"store built in {time.perf_counter() - t0:.1f}s")
    yield store, load_onnx(unseen)
    store.close()


def _key():
    return "onnxruntime", machine_fingerprint("onnxruntime"), 1, "all"


def _estimate(store, wl):
    from hwmodels.targets import load_target

    measured_mod._PREDICTORS.clear()              # read the file again, not the in-memory predictor
    cost = MeasuredModel(store=store).estimate(wl, load_target("host"))
    return cost.latency_s, [l.latency_s for l in cost.layers]


def _cache_files(store, suffix):
    return sorted(store.path.parent.glob(f"{store.path.name}.*.predictor.{suffix}"))


def _side(store) -> Path:
    b, m, t, v = _key()
    return store.path.with_name(f"{store.path.name}.{b}-{m}-{t}-{v}-{store.content_hash(*_key())}.predictor.npz")


@pytest.fixture
def fits(monkeypatch):
    calls = []
    real_fit = KernelPredictor.fit

    def counting(self, records):
        calls.append(1)
        return real_fit(self, records)

    monkeypatch.setattr(KernelPredictor, "fit", counting)
    return calls


@pytest.mark.slow
def test_planted_pickle_is_never_run(real, tmp_path, fits):
    store, wl = real
    measured_mod._PREDICTORS.clear()
    for f in _cache_files(store, "npz"):
        f.unlink()
    baseline = _estimate(store, wl)                                   # fitted, then written
    assert len(fits) == 1 and _cache_files(store, "npz") == [_side(store)]
    ests, _, _ = MeasuredModel(store=store).kernel_estimates(wl, 1)
    assert any(e.source == "regressor" for e in ests), [e.source for e in ests]   # the regressors matter
    assert _estimate(store, wl) == baseline and len(fits) == 1        # read back from the file: same figures
    marker = tmp_path / "executed"
    b, m, t, v = _key()
    old = store.path.with_name(f"{store.path.name}.{b}-{m}-{t}-{v}-{store.content_hash(*_key())}.predictor.pkl")
    old.write_bytes(_payload(marker))                                 # where the old version read it
    _side(store).write_bytes(_payload(marker))                        # and where this one reads
    assert _estimate(store, wl) == baseline
    assert not marker.exists()
    assert len(fits) == 2 and not old.exists()                        # refitted; the pickle deleted
    KernelPredictor.load(_side(store))                                # replaced by a good file


@pytest.mark.slow
def test_damaged_cache_is_refitted(real, fits):
    store, wl = real
    baseline = _estimate(store, wl)
    side = _side(store)
    good = side.read_bytes()
    damaged = {"truncated": good[: len(good) // 3], "random": os.urandom(len(good) // 4), "empty": b"",
               "wrong keys": None}
    for name, data in damaged.items():
        if data is None:
            with open(side, "wb") as fh:
                np.savez(fh, meta=np.array("{}"), left=np.arange(4))
        else:
            side.write_bytes(data)
        n = len(fits)
        assert _estimate(store, wl) == baseline, name
        assert len(fits) == n + 1, name
        assert KernelPredictor.load(side) is not None                 # rewritten whole


@pytest.mark.slow
def test_real_store_predictor_equals_sklearn(real, tmp_path):
    store, _ = real
    recs = store.records(*_key())
    pred = KernelPredictor().fit(recs)
    pred.save(tmp_path / "p.npz")
    figs = _check_against_sklearn(pred, recs, KernelPredictor.load(tmp_path / "p.npz"))
    assert any("sklearn" in f for f in figs.values())
    print({k: v for k, v in figs.items()})


# --- the source tree: nothing that runs code from a file -----------------------------------------

_PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve", "jsonpickle"}


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _is_const(node, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Calls that can run code from data: unpickling (pickle/dill/joblib/marshal/shelve loads),
    ``torch.load`` without ``weights_only=True``, ``np.load`` without ``allow_pickle=False``,
    ``allow_pickle=True`` anywhere, ``yaml.load``/``unsafe_load``, bare ``eval``/``exec``
    (a method such as ``module.eval()`` is fine)."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}                   # local name -> module it stands for
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name):
            full = aliases.get(f.id, f.id)
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            full = f"{aliases.get(f.value.id, f.value.id)}.{f.attr}"
        elif isinstance(f, ast.Attribute):
            full = f"?.{f.attr}"
        else:
            continue
        where = f"{filename}:{node.lineno}"
        mod, _, attr = full.rpartition(".")
        top = mod.split(".")[0]
        ap = _kw(node, "allow_pickle")
        if ap is not None and not _is_const(ap, False):
            found.append(f"{where}: allow_pickle not False")
        if full in ("eval", "exec", "builtins.eval", "builtins.exec"):
            found.append(f"{where}: {full}()")
        elif top in _PICKLERS and attr in ("load", "loads", "load_all", "Unpickler", "open", "decode"):
            found.append(f"{where}: {full}()")
        elif full == "torch.load":
            if not _is_const(_kw(node, "weights_only"), True):
                found.append(f"{where}: torch.load without weights_only=True")
        elif full == "numpy.load":
            if not _is_const(ap, False):
                found.append(f"{where}: np.load without allow_pickle=False")
        elif top == "yaml" and attr in ("load", "load_all", "unsafe_load", "full_load", "unsafe_load_all"):
            found.append(f"{where}: {full}() (use yaml.safe_load)")
        elif full in ("pandas.read_pickle", "pd.read_pickle") or attr == "read_pickle":
            found.append(f"{where}: read_pickle()")
    return found


def test_the_checker_catches_what_it_should():
    bad = [
        "pickle.load(f)", "L(b)", "pk.loads(b)", "torch.load(p)", "torch.load(p, weights_only=False)",
        "np.load(p)", "np.load(p, allow_pickle=True)", "numpy.load(p, allow_pickle=flag)", "load(p)",
        "eval('1')", "exec('x=1')", "builtins.eval(s)", "yaml.load(s)", "yaml.unsafe_load(s)", "joblib.load(p)",
        "shelve.open(p)", "marshal.loads(b)", "pd.read_pickle(p)", "dill.loads(b)", "f(allow_pickle=True)",
    ]
    head = ("import pickle as pk, pickle, torch, yaml, joblib, shelve, marshal, dill, builtins, numpy\n"
            "import numpy as np\nimport pandas as pd\nfrom pickle import loads as L\nfrom torch import load\n")
    src = head + "\n".join(bad) + "\n"
    flagged = {int(f.split(":")[1]) - head.count("\n") - 1 for f in unsafe_calls(src)}
    assert flagged == set(range(len(bad))), [bad[i] for i in set(range(len(bad))) - flagged]
    good = """
import torch
import numpy as np
net.eval(); model.eval(); self.eval(); torch.load(p, weights_only=True); np.load(p, allow_pickle=False)
ex = tvm.compile(mod); re.compile("x"); json.loads(s); tomllib.loads(s); onnx.load(p); pickle_name = "x"
"""
    assert unsafe_calls(good) == []


# Unpickling that reads no file: the search's own trained problem, pickled by the parent process and
# sent to its pool workers over the pool's pipe (as multiprocessing does with every task).
IPC_ONLY = {"codesign/search/workers.py": "cloudpickle.loads()"}


def test_no_code_from_files_in_the_source_tree():
    found = []
    for top in ("codesign", "hwmodels", "benchmarks"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            found += [f for f in unsafe_calls(path.read_text(), rel) if not (rel in IPC_ONLY and f.endswith(IPC_ONLY[rel]))]
    assert found == []
