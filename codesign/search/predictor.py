"""Quantization-aware accuracy predictor: (architecture, bit map) -> predicted accuracy.

Trained only on the search's own measured evaluations (supernet sub-network, fake-quant,
validation split), like APQ's predictor but with features that carry across architectures
and bit maps instead of one-hot layer ids:

- the architecture's choice vector (``space.encode``) and its size (log MACs, log params);
- per bit group: the weight and activation width (log2);
- HAWQ-style quantization noise: sum over present layers of the layer's measured 2-bit
  sensitivity x 4^-(b - 2) (uniform quantization noise power falls 4x per extra bit), for
  weights and activations, and the narrowest width in the network.

A bootstrap ensemble of small gradient-boosted trees (scikit-learn) gives a mean and a
spread; the spread drives exploration in the surrogate search.  The trees are monotone where
physics says so (more bits never lower accuracy, more quantization noise never raises it),
which is what lets tens of samples generalise to bit maps never measured.  Every figure it produces is
an estimate, labelled so; front members' accuracies are always measured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from codesign.search.bitgroups import Sensitivity
from codesign.search.encoding import Candidate


@dataclass
class PredictorQuality:
    """Out-of-fold (K-fold) error of the predictor on its own training data."""

    n: int
    mae: float            # mean absolute error, accuracy points x 100
    spearman: float

    def to_json(self) -> dict:
        return {"samples": self.n, "oof_mae_points": self.mae, "oof_spearman": self.spearman}


class Features:
    """The feature vector of a candidate; layer facts come from ``layer_info(arch)``."""

    def __init__(self, space, groups: dict[str, list[str]], sensitivity: Sensitivity | None, layer_info):
        self.space, self.groups, self.sensitivity, self.layer_info = space, groups, sensitivity, layer_info

    def monotone(self) -> list[int]:
        """Per feature: +1 accuracy non-decreasing in it, -1 non-increasing, 0 free."""
        n_arch = len(self.space.encode(self.space.largest()))
        return [0] * (n_arch + 2) + [1] * (2 * len(self.groups)) + [-1, -1, -1, 1]

    def __call__(self, cand: Candidate) -> np.ndarray:
        macs, params, present = self.layer_info(cand.arch)
        arch = self.space.encode(cand.arch)
        fallback = max(cand.bits.values(), default=(8, 8))
        group_bits = []
        for slots in self.groups.values():
            w, a = cand.bits.get(slots[0], fallback)
            group_bits += [math.log2(w), math.log2(a)]
        noise_w = noise_a = 0.0
        narrowest = 32
        for slot in present:
            w, a = cand.bits.get(slot, fallback)
            narrowest = min(narrowest, w, a)
            if self.sensitivity is not None:
                noise_w += max(self.sensitivity.weight.get(slot, 0.0), 0.0) * 4.0 ** -(w - 2)
                noise_a += max(self.sensitivity.activation.get(slot, 0.0), 0.0) * 4.0 ** -(a - 2)
        return np.concatenate([arch, [math.log(max(macs, 1)), math.log(max(params, 1))], group_bits,
                               [noise_w, noise_a, noise_w + noise_a, math.log2(narrowest)]])


class AccuracyPredictor:
    """Bootstrap ensemble of gradient-boosted trees on ``Features``; deterministic for a seed."""

    def __init__(self, features: Features, members: int = 5, seed: int = 0):
        self.features, self.members, self.seed = features, members, seed
        self.models: list = []

    def fit(self, cands: list[Candidate], acc: list[float]) -> "AccuracyPredictor":
        x = np.stack([self.features(c) for c in cands])
        y = np.asarray(acc, float)
        self.models = _fit_ensemble(x, y, self.members, self.seed, self.features.monotone())
        return self

    def predict(self, cands: list[Candidate]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread (std over members) of the predicted accuracy."""
        x = np.stack([self.features(c) for c in cands])
        preds = np.stack([m.predict(x) for m in self.models])
        return preds.mean(axis=0), preds.std(axis=0)

    def quality(self, cands: list[Candidate], acc: list[float], folds: int = 5) -> PredictorQuality:
        """K-fold out-of-fold MAE (points) and Spearman rank correlation."""
        from scipy.stats import spearmanr
        from sklearn.model_selection import KFold

        x = np.stack([self.features(c) for c in cands])
        y = np.asarray(acc, float)
        k = min(folds, len(y))
        if k < 2:
            return PredictorQuality(len(y), float("nan"), float("nan"))
        oof = np.empty_like(y)
        for train, test in KFold(k, shuffle=True, random_state=self.seed).split(x):   # one model per fold
            models = _fit_ensemble(x[train], y[train], 1, self.seed, self.features.monotone())
            oof[test] = models[0].predict(x[test])
        rho = spearmanr(oof, y).statistic if np.ptp(y) > 0 and np.ptp(oof) > 0 else float("nan")
        return PredictorQuality(len(y), float(np.mean(np.abs(oof - y)) * 100), float(rho))


def _fit_ensemble(x: np.ndarray, y: np.ndarray, members: int, seed: int, monotone: list[int]) -> list:
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(seed)
    models = []
    for i in range(members):
        idx = rng.integers(0, len(y), len(y)) if members > 1 else np.arange(len(y))
        model = HistGradientBoostingRegressor(max_iter=120, max_depth=3, learning_rate=0.08, min_samples_leaf=2,
                                              l2_regularization=1e-3, monotonic_cst=monotone, random_state=seed + i)
        models.append(model.fit(x[idx], y[idx]))
    return models
