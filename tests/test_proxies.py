"""Zero-cost proxies and the accuracy predictor are estimates; their rank correlation with measured accuracy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hwmodels.errors import CodesignError
from codesign.proxies import AccuracyPredictor, naswot_score, proxy_scores, spearman, synflow_score
from codesign.spaces import get_space
from codesign.supernet import extract, train_supernet
from codesign.training import TrainConfig, accuracy

pytestmark = pytest.mark.slow   # trains networks




TINY = dict(stem_channels=16, stage_channels=(16, 24, 32), depths=(1, 2), widths=(0.5, 1.0), kernels=(3, 5))




def test_proxies_are_finite_deterministic_and_size_aware(splits):
    space = get_space("small-cnn", **TINY)
    big = space.build(space.largest(), 10, 1, 8, seed=0)
    small = space.build(space.smallest(), 10, 1, 8, seed=0)
    s_big, s_small = synflow_score(big, 1), synflow_score(small, 1)
    assert math.isfinite(s_big) and s_big == synflow_score(big, 1)
    assert s_big > s_small
    x = splits.train.x[:32]
    n_big, n_small = naswot_score(big, x), naswot_score(small, x)
    assert math.isfinite(n_big) and n_big > n_small
    # the proxies must not touch the model they score
    before = [p.clone() for p in big.parameters()]
    synflow_score(big, 1)
    assert all(torch.equal(a, b) for a, b in zip(before, big.parameters()))
    mb = get_space("mobilenetv3", stem_channels=8, first_channels=8, stage_channels=(16,), strides=(2,), se=(True,),
                   acts=("hswish",), head_channels=32, depths=(1, 2), kernels=(3,), expands=(2, 3),
                   widths=(1.0,), resolutions=(8, 12))
    scores = proxy_scores(mb, [mb.largest(), mb.smallest()], x, 10)
    assert all(math.isfinite(v) for vs in scores.values() for v in vs)


def test_predictor_and_proxies_rank_correlation_on_measured_accuracy(splits):
    space = get_space("small-cnn", **TINY)
    net = train_supernet(space, splits, TrainConfig(epochs=4, n_random=1, lr=5e-3))
    archs = [space.smallest(), space.largest()] + [space.sample(i) for i in range(14)]
    measured = [accuracy(extract(net, a, splits, calib_images=256), splits.val) for a in archs]
    assert max(measured) - min(measured) > 0.01  # the space really spans accuracies
    pred = AccuracyPredictor(space, kind="ridge").fit(archs[:10], measured[:10])
    est = pred.predict(archs)
    assert est.shape == (16,) and "not measured" in pred.label
    fit_rho = spearman(est[:10], measured[:10])
    assert fit_rho > 0.5, fit_rho
    scores = proxy_scores(space, archs, splits.train.x[:32], 10)
    for name, vals in scores.items():
        rho = spearman(vals, measured)
        assert -1.0 <= rho <= 1.0, name


def test_predictor_errors_and_spearman():
    space = get_space("small-cnn", **TINY)
    pred = AccuracyPredictor(space)
    with pytest.raises(CodesignError, match="not fitted"):
        pred.predict([space.largest()])
    with pytest.raises(CodesignError, match=">= 3 measured"):
        pred.fit([space.largest()], [0.9])
    with pytest.raises(CodesignError, match="unknown predictor"):
        AccuracyPredictor(space, kind="magic")
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isfinite(spearman([1, 1, 1], [1, 2, 3]))
