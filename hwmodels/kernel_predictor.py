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
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FEATURES = ("macs", "in_elems", "out_elems", "w_elems", "c", "k", "h", "w", "p", "q", "r", "s", "stride",
            "groups", "act", "has_sum", "n_inputs", "w0", "w1", "pq", "c16", "k16")
MIN_TREE_SAMPLES = 12
_NOMINAL_MAC_PER_US = 20000.0       # 20 GMAC/s
_NOMINAL_BYTES_PER_US = 20000.0     # 20 GB/s


def base_us(f: dict) -> float:
    elems = f.get("in_elems", 0) + f.get("out_elems", 0) + f.get("w_elems", 0)
    return 1.0 + f.get("macs", 0) / _NOMINAL_MAC_PER_US + 4.0 * elems / _NOMINAL_BYTES_PER_US


def feature_vector(f: dict) -> list[float]:
    return [math.log1p(max(float(f.get(k, 0)), 0.0)) for k in FEATURES] + [math.log(base_us(f))]


@dataclass
class _ClassModel:
    kind: str
    n: int
    median_log_ratio: float
    trees: object | None = None

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.trees is None:
            return np.full(len(X), self.median_log_ratio)
        return self.trees.predict(X)


class KernelPredictor:
    """``KernelPredictor.fit(records)`` then ``predict_us(kind, features)``."""

    def __init__(self, n_estimators: int = 300, max_depth: int = 4, learning_rate: float = 0.05):
        self.params = dict(n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate)
        self.classes: dict[str, _ClassModel] = {}
        self.families: dict[str, float] = {}
        self.global_ratio = 0.0
        self.n_records = 0

    def fit(self, records) -> "KernelPredictor":
        from sklearn.ensemble import GradientBoostingRegressor

        rows: dict[str, list] = {}
        for r in sorted(records, key=lambda r: (r.kind, r.sig_hash)):
            rows.setdefault(r.kind, []).append(r)
        self.n_records = sum(len(v) for v in rows.values())
        fam: dict[str, list[float]] = {}
        every: list[float] = []
        for kind, recs in rows.items():
            X = np.array([feature_vector(r.features) for r in recs])
            y = np.array([math.log(r.us) - math.log(base_us(r.features)) for r in recs])
            model = _ClassModel(kind, len(recs), float(np.median(y)))
            if len(recs) >= MIN_TREE_SAMPLES:
                gbr = GradientBoostingRegressor(loss="huber", subsample=1.0, random_state=0,
                                                min_samples_leaf=2, **self.params)
                gbr.fit(X, y)
                model.trees = gbr
            self.classes[kind] = model
            fam.setdefault(kind.split("/")[0], []).extend(y.tolist())
            every.extend(y.tolist())
        self.families = {k: float(np.median(v)) for k, v in fam.items()}
        self.global_ratio = float(np.median(every)) if every else 0.0
        return self

    def source(self, kind: str) -> str:
        if kind in self.classes:
            return "regressor" if self.classes[kind].trees is not None else "class-median"
        return "family-median" if kind.split("/")[0] in self.families else "global-median"

    def predict_us(self, kind: str, features: dict) -> float:
        return float(self.predict_many(kind, [features])[0])

    def predict_many(self, kind: str, features: list[dict]) -> np.ndarray:
        X = np.array([feature_vector(f) for f in features])
        base = np.array([base_us(f) for f in features])
        if kind in self.classes:
            log_ratio = self.classes[kind].predict(X)
        else:
            log_ratio = np.full(len(X), self.families.get(kind.split("/")[0], self.global_ratio))
        return base * np.exp(log_ratio)
