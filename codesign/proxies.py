"""Cheap rankers: zero-cost proxies and an accuracy predictor.  They give ESTIMATES, never accuracies.

They may pre-rank or prune candidates before the expensive, measured evaluation; nothing they
return may be shown to a user or written to a result as an accuracy.  Every return value here
is labelled as an estimate (``ESTIMATE_LABEL``) and their rank correlation with measured
accuracy is reported in ``benchmarks/RESULTS.md``.

* synflow (Tanaka et al. 2020; Abdelfattah et al. 2021): data-free, sum |theta * dR/dtheta| of
  the linearised network on an all-ones input.
* NASWOT (Mellor et al. 2021): log-determinant of the kernel of binary activation codes of a
  batch of images at initialisation.
* ``AccuracyPredictor``: a scikit-learn regressor on ``space.encode(arch)`` fit on measured samples.
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from codesign.data import resize
from hwmodels.errors import CodesignError
from codesign.spaces.base import Arch, SearchSpace

ESTIMATE_LABEL = "estimate (not measured)"


def synflow_score(module: nn.Module, in_channels: int, resolution: int | None = None) -> float:
    """log of the synflow saliency (an estimate; larger ranks higher).  Data-free."""
    net = copy.deepcopy(module).double().eval()
    res = resolution or getattr(module, "input_resolution", None) or 8
    with torch.no_grad():
        for p in net.state_dict().values():
            p.abs_()
    net.zero_grad()
    out = net(torch.ones(1, in_channels, res, res, dtype=torch.float64))
    out.sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in net.parameters() if p.grad is not None)
    return math.log(total) if total > 0 else float("-inf")


def naswot_score(module: nn.Module, x: torch.Tensor) -> float:
    """NASWOT log|K_H| of ReLU/Hardswish activation codes on a batch ``x`` (an estimate; larger ranks higher)."""
    net = copy.deepcopy(module).train()
    codes: list[torch.Tensor] = []

    def hook(_m, _inp, out):
        codes.append((out.detach().flatten(1) > 0).double())

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.ReLU, nn.Hardswish))]
    if not handles:
        raise CodesignError("NASWOT needs ReLU or Hardswish modules in the network")
    try:
        with torch.no_grad():
            net(resize(x, getattr(module, "input_resolution", None)))
    finally:
        for h in handles:
            h.remove()
    c = torch.cat(codes, 1)
    k = c @ c.T + (1 - c) @ (1 - c).T
    return float(torch.linalg.slogdet(k)[1])


def proxy_scores(space: SearchSpace, archs: Sequence[Arch], x: torch.Tensor, num_classes: int,
                 seed: int = 0) -> dict[str, list[float]]:
    """synflow and NASWOT estimates of each arch at (seeded) initialisation."""
    out: dict[str, list[float]] = {"synflow": [], "naswot": []}
    res = int(x.shape[-1])
    for arch in archs:
        net = space.build(arch, num_classes, int(x.shape[1]), res, seed=seed)
        out["synflow"].append(synflow_score(net, int(x.shape[1])))
        out["naswot"].append(naswot_score(net, x))
    return out


class AccuracyPredictor:
    """Regressor from an architecture encoding to accuracy, fit on MEASURED samples; predicts estimates."""

    label = f"predicted accuracy, {ESTIMATE_LABEL}"

    def __init__(self, space: SearchSpace, kind: str = "rf", seed: int = 0,
                 features: Callable[[Arch], np.ndarray] | None = None):
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
        from sklearn.linear_model import RidgeCV

        self.space, self.features = space, features or space.encode
        models = {"rf": lambda: RandomForestRegressor(n_estimators=300, min_samples_leaf=2, random_state=seed),
                  "gbr": lambda: GradientBoostingRegressor(n_estimators=200, max_depth=2, random_state=seed),
                  "ridge": lambda: RidgeCV(alphas=np.logspace(-3, 3, 13))}
        if kind not in models:
            raise CodesignError(f"unknown predictor kind '{kind}' (use {', '.join(models)})")
        self.model = models[kind]()
        self.fitted = False

    def _x(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.stack([self.features(a) for a in archs])

    def fit(self, archs: Sequence[Arch], measured: Sequence[float]) -> "AccuracyPredictor":
        if len(archs) != len(measured) or len(archs) < 3:
            raise CodesignError(f"predictor needs >= 3 measured samples with one accuracy each "
                                f"(got {len(archs)} archs, {len(measured)} accuracies)")
        self.model.fit(self._x(archs), np.asarray(measured, dtype=np.float64))
        self.fitted = True
        return self

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Estimated accuracies (for ranking only)."""
        if not self.fitted:
            raise CodesignError("predictor is not fitted: call fit() on measured accuracies first")
        return self.model.predict(self._x(archs))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (how well an estimate ranks like the measurement)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.ptp(x) == 0 or np.ptp(y) == 0:  # a constant ranking carries no order: no correlation
        return 0.0
    r = spearmanr(x, y).statistic
    return float(r) if np.isfinite(r) else 0.0
