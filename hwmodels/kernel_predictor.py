"""Per-kernel-class latency regressors trained from the kernel store (nn-Meter's kernel predictors).

For each kernel class (``nchwc.Conv/depthwise``, ``gemm``, ``nchwc.ReorderOutput``...) a
gradient-boosted tree ensemble maps log shape features (MACs, input/output/weight elements,
channels, spatial sizes, kernel, stride, groups, fused activation, fused residual) to the
log of the latency *relative to a simple roofline-like base* (MACs at a nominal rate plus
bytes at a nominal bandwidth plus a constant).  Learning the ratio rather than the raw
latency keeps predictions sane outside the profiled range (trees extrapolate flat; the
base carries the scale).  Classes with few samples use their median ratio; classes never
measured fall back to their family's (``nchwc.Conv``) and then to all kernels' median ratio.

Deterministic: rows are read in signature order, the trees use a fixed ``random_state`` and
no subsampling, so a given store always yields the same predictions.

Nothing here can run code from a file.  ``fit`` turns each fitted sklearn ensemble into plain
arrays at once (``TreeArrays``: per node its children, split feature, threshold and leaf value,
plus the ensemble's initial prediction and learning rate) and every prediction -- fitted or
loaded -- walks those arrays with numpy, exactly as sklearn's own predictor does (features cast
to float32, ``x <= threshold`` goes left, ``raw += learning_rate * leaf`` tree by tree), so a
loaded predictor gives the fitted one's predictions bit for bit.  ``save``/``load`` store the
arrays in an ``.npz`` (``np.savez``; read with ``allow_pickle=False``) with the small metadata
(classes, medians, families) as one JSON string; ``load`` checks every key, dtype, shape and
index and raises ``ValueError`` on anything else.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FEATURES = ("macs", "in_elems", "out_elems", "w_elems", "c", "k", "h", "w", "p", "q", "r", "s", "stride",
            "groups", "act", "has_sum", "n_inputs", "w0", "w1", "pq", "c16", "k16")
MIN_TREE_SAMPLES = 12
_NOMINAL_MAC_PER_US = 20000.0       # 20 GMAC/s
_NOMINAL_BYTES_PER_US = 20000.0     # 20 GB/s
FORMAT = "codesign.kernel_predictor"
FORMAT_VERSION = 1
_TREE_KEYS = ("roots", "left", "right", "feature", "threshold", "value")


def base_us(f: dict) -> float:
    elems = f.get("in_elems", 0) + f.get("out_elems", 0) + f.get("w_elems", 0)
    return 1.0 + f.get("macs", 0) / _NOMINAL_MAC_PER_US + 4.0 * elems / _NOMINAL_BYTES_PER_US


def feature_vector(f: dict) -> list[float]:
    return [math.log1p(max(float(f.get(k, 0)), 0.0)) for k in FEATURES] + [math.log(base_us(f))]


def _regressor(params: dict):
    """The ensemble ``fit`` trains per kernel class (``params``: ``KernelPredictor.params``)."""
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(loss="huber", subsample=1.0, random_state=0, min_samples_leaf=2, **params)


def class_data(records) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{kind: (X, y)}``: the features and log latency ratios ``fit`` trains each class on, in signature order."""
    rows: dict[str, list] = {}
    for r in sorted(records, key=lambda r: (r.kind, r.sig_hash)):
        rows.setdefault(r.kind, []).append(r)
    return {kind: (np.array([feature_vector(r.features) for r in recs], dtype=np.float64),
                   np.array([math.log(r.us) - math.log(base_us(r.features)) for r in recs], dtype=np.float64))
            for kind, recs in rows.items()}


@dataclass
class TreeArrays:
    """A fitted gradient-boosted ensemble as plain numbers.

    The trees' nodes are packed one tree after another; ``roots[t]`` is tree ``t``'s first node.
    ``left``/``right`` are (packed) child indices, -1 at leaves; ``feature``/``threshold`` the split
    of an inner node (0 at leaves); ``value`` the node's output (used at leaves).  Prediction is
    ``init + sum_t learning_rate * value[leaf_t(x)]``, added tree by tree as sklearn does.
    """

    init: float
    learning_rate: float
    roots: np.ndarray
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray

    @classmethod
    def from_sklearn(cls, gbr, X: np.ndarray) -> "TreeArrays":
        """The arrays of a fitted ``GradientBoostingRegressor`` (single output); ``X``: a row to read its init from."""
        init = float(gbr._raw_predict_init(np.asarray(X[:1], dtype=np.float32))[0, 0])
        parts = {k: [] for k in _TREE_KEYS}
        offset = 0
        for est in gbr.estimators_[:, 0]:
            t = est.tree_
            leaf = t.children_left < 0
            parts["roots"].append(np.array([offset], dtype=np.int64))
            parts["left"].append(np.where(leaf, -1, t.children_left + offset).astype(np.int64))
            parts["right"].append(np.where(leaf, -1, t.children_right + offset).astype(np.int64))
            parts["feature"].append(np.where(leaf, 0, t.feature).astype(np.int64))
            parts["threshold"].append(np.where(leaf, 0.0, t.threshold).astype(np.float64))
            parts["value"].append(np.asarray(t.value, dtype=np.float64).reshape(t.node_count, -1)[:, 0].copy())
            offset += t.node_count
        return cls(init, float(gbr.learning_rate), **{k: np.concatenate(v) for k, v in parts.items()})

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in _TREE_KEYS}

    @classmethod
    def from_arrays(cls, init, learning_rate, arrays: dict, n_features: int) -> "TreeArrays":
        """Checked: every index in range, every child after its parent and inside its own tree (so
        each walk ends), all numbers finite; ``ValueError`` otherwise."""
        init, lr = _finite(init, "init"), _finite(learning_rate, "learning_rate")
        a = {}
        for k in _TREE_KEYS:
            v = arrays[k]
            want = "f" if k in ("threshold", "value") else "i"
            if not isinstance(v, np.ndarray) or v.ndim != 1 or v.dtype.kind != want:
                raise ValueError(f"tree array {k!r}: expected 1-d {'float' if want == 'f' else 'int'}, "
                                 f"got {getattr(v, 'dtype', type(v))} {getattr(v, 'shape', '')}")
            a[k] = v.astype(np.float64 if want == "f" else np.int64)
        n, roots = len(a["left"]), a["roots"]
        if n == 0 or any(len(a[k]) != n for k in _TREE_KEYS[1:]):
            raise ValueError("tree arrays of different or zero lengths")
        if len(roots) == 0 or roots[0] != 0 or np.any(np.diff(roots) <= 0) or roots[-1] >= n:
            raise ValueError("tree roots out of order or out of range")
        ends = np.repeat(np.append(roots[1:], n), np.diff(np.append(roots, n)))   # each node's tree end
        idx = np.arange(n)
        left, right, feat = a["left"], a["right"], a["feature"]
        inner = left >= 0
        if np.any(left[~inner] != -1) or np.any(right[~inner] != -1):
            raise ValueError("tree leaves must have no children")
        for child in (left[inner], right[inner]):
            if np.any(child <= idx[inner]) or np.any(child >= ends[inner]):
                raise ValueError("tree child index out of range")
        if np.any(feat[inner] < 0) or np.any(feat[inner] >= n_features) or np.any(feat[~inner] != 0):
            raise ValueError("tree feature index out of range")
        if not (np.all(np.isfinite(a["threshold"])) and np.all(np.isfinite(a["value"]))):
            raise ValueError("tree thresholds and values must be finite")
        return cls(init, lr, **a)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """sklearn's ``predict_stages``, vectorised over rows and trees."""
        Xf = np.ascontiguousarray(X, dtype=np.float32)
        raw = np.full(len(Xf), self.init, dtype=np.float64)
        if len(Xf) == 0:
            return raw
        rows = np.arange(len(Xf))[:, None]
        node = np.repeat(self.roots[None, :], len(Xf), axis=0)
        for _ in range(len(self.left)):            # children come after parents: ends in <= n steps
            left = self.left[node]
            inner = left >= 0
            if not inner.any():
                break
            go_left = Xf[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, left, self.right[node]), node)
        leaves = self.value[node]
        for t in range(leaves.shape[1]):
            raw += self.learning_rate * leaves[:, t]
        return raw


def _finite(x, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{what}: expected a finite number, got {x!r}")
    return float(x)


@dataclass
class _ClassModel:
    kind: str
    n: int
    median_log_ratio: float
    trees: TreeArrays | None = None

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.trees is None:
            return np.full(len(X), self.median_log_ratio)
        return self.trees.predict(X)


class KernelPredictor:
    """``KernelPredictor.fit(records)`` then ``predict_us(kind, features)``; ``save(path)`` /
    ``KernelPredictor.load(path)`` (an ``.npz`` of plain numbers, see the module docstring)."""

    def __init__(self, n_estimators: int = 300, max_depth: int = 4, learning_rate: float = 0.05):
        self.params = dict(n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate)
        self.classes: dict[str, _ClassModel] = {}
        self.families: dict[str, float] = {}
        self.global_ratio = 0.0
        self.n_records = 0

    def fit(self, records) -> "KernelPredictor":
        data = class_data(records)
        self.n_records = sum(len(y) for _, y in data.values())
        fam: dict[str, list[float]] = {}
        every: list[float] = []
        for kind, (X, y) in data.items():
            model = _ClassModel(kind, len(y), float(np.median(y)))
            if len(y) >= MIN_TREE_SAMPLES:
                gbr = _regressor(self.params).fit(X, y)
                model.trees = TreeArrays.from_sklearn(gbr, X)
            self.classes[kind] = model
            fam.setdefault(kind.split("/")[0], []).extend(y.tolist())
            every.extend(y.tolist())
        self.families = {k: float(np.median(v)) for k, v in fam.items()}
        self.global_ratio = float(np.median(every)) if every else 0.0
        return self

    # -- storage: plain numbers only ------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """``{"meta": <JSON string>, "class<i>.<array>": ...}`` -- what ``np.savez`` stores."""
        classes, out = [], {}
        for i, m in enumerate(self.classes.values()):
            c = {"kind": m.kind, "n": int(m.n), "median_log_ratio": float(m.median_log_ratio), "trees": m.trees is not None}
            if m.trees is not None:
                c.update(init=m.trees.init, learning_rate=m.trees.learning_rate)
                out.update({f"class{i}.{k}": v for k, v in m.trees.arrays().items()})
            classes.append(c)
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "features": list(FEATURES), "params": self.params,
                "n_records": int(self.n_records), "global_ratio": float(self.global_ratio),
                "families": {k: float(v) for k, v in self.families.items()}, "classes": classes}
        out["meta"] = np.array(json.dumps(meta, allow_nan=False))
        return out

    @classmethod
    def from_arrays(cls, arrays: dict) -> "KernelPredictor":
        """The inverse of ``to_arrays``; ``ValueError`` on anything it did not write."""
        try:
            return cls._from_arrays(arrays)
        except ValueError:
            raise
        except (KeyError, TypeError, AttributeError, IndexError, json.JSONDecodeError) as e:
            raise ValueError(f"not a kernel predictor: {type(e).__name__}: {e}") from None

    @classmethod
    def _from_arrays(cls, arrays: dict) -> "KernelPredictor":
        meta_a = arrays["meta"]
        if not isinstance(meta_a, np.ndarray) or meta_a.shape != () or meta_a.dtype.kind != "U":
            raise ValueError("meta: expected one JSON string")
        meta = json.loads(str(meta_a))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise ValueError("not a kernel predictor file of this version")
        if meta.get("features") != list(FEATURES):
            raise ValueError("kernel predictor trained on other features")
        params = meta["params"]
        if not isinstance(params, dict) or set(params) != {"n_estimators", "max_depth", "learning_rate"}:
            raise ValueError("params: unexpected keys")
        pred = cls(int(_finite(params["n_estimators"], "n_estimators")), int(_finite(params["max_depth"], "max_depth")),
                   _finite(params["learning_rate"], "learning_rate"))
        n_rec = meta["n_records"]
        if not isinstance(n_rec, int) or isinstance(n_rec, bool) or n_rec < 0:
            raise ValueError("n_records: expected a count")
        pred.n_records = n_rec
        pred.global_ratio = _finite(meta["global_ratio"], "global_ratio")
        fams = meta["families"]
        if not isinstance(fams, dict):
            raise ValueError("families: expected an object")
        pred.families = {str(k): _finite(v, f"families[{k!r}]") for k, v in fams.items()}
        classes = meta["classes"]
        if not isinstance(classes, list):
            raise ValueError("classes: expected a list")
        expected = {"meta"}
        n_features = len(FEATURES) + 1
        for i, c in enumerate(classes):
            if not isinstance(c, dict) or not isinstance(c["kind"], str) or not isinstance(c["trees"], bool):
                raise ValueError(f"class {i}: malformed")
            n = c["n"]
            if not isinstance(n, int) or isinstance(n, bool) or n < 0 or c["kind"] in pred.classes:
                raise ValueError(f"class {i}: bad count or repeated kind")
            model = _ClassModel(c["kind"], n, _finite(c["median_log_ratio"], "median_log_ratio"))
            if c["trees"]:
                keys = {k: f"class{i}.{k}" for k in _TREE_KEYS}
                expected.update(keys.values())
                model.trees = TreeArrays.from_arrays(c["init"], c["learning_rate"],
                                                     {k: arrays[v] for k, v in keys.items()}, n_features)
            pred.classes[model.kind] = model
        if set(arrays) != expected:
            raise ValueError(f"unexpected arrays: {sorted(set(arrays) ^ expected)[:5]}")
        return pred

    def save(self, path) -> None:
        """Write ``to_arrays`` to ``path`` (an open binary file or a path, written as named)."""
        if isinstance(path, (str, Path)):
            with open(path, "wb") as fh:
                np.savez(fh, **self.to_arrays())
        else:
            np.savez(path, **self.to_arrays())

    @classmethod
    def load(cls, path) -> "KernelPredictor":
        """Read a ``save``d file with ``allow_pickle=False``; ``ValueError`` (or ``OSError``) if it is anything else."""
        try:
            z = np.load(path, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError):
            raise
        except Exception as e:                      # zipfile.BadZipFile, EOFError, zlib.error, ...
            raise ValueError(f"unreadable kernel predictor file: {type(e).__name__}: {e}") from None
        return cls.from_arrays(arrays)

    # -- prediction ---------------------------------------------------------------------
    def source(self, kind: str) -> str:
        if kind in self.classes:
            return "regressor" if self.classes[kind].trees is not None else "class-median"
        return "family-median" if kind.split("/")[0] in self.families else "global-median"

    def predict_us(self, kind: str, features: dict) -> float:
        return float(self.predict_many(kind, [features])[0])

    def predict_many(self, kind: str, features: list[dict]) -> np.ndarray:
        X = np.array([feature_vector(f) for f in features], dtype=np.float64).reshape(len(features), len(FEATURES) + 1)
        base = np.array([base_us(f) for f in features], dtype=np.float64)
        if kind in self.classes:
            log_ratio = self.classes[kind].predict(X)
        else:
            log_ratio = np.full(len(X), self.families.get(kind.split("/")[0], self.global_ratio))
        return base * np.exp(log_ratio)
