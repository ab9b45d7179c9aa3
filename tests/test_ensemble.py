import numpy as np
import pytest

from salttune.ensemble import (
    COMBINERS,
    Linear,
    combiners_for,
    combine,
    cross_validate,
    fit_greedy,
    fit_mean,
    fit_ridge,
    fit_single,
    tune_cutoffs,
)
from salttune.errors import SalttuneError
from salttune.metric import competition_score


def planted(n=60, size=12, seed=0):
    """Truth masks (a third empty) and three members: good, mediocre, noise."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((n, size, size), bool)
    for i in range(n):
        if i % 3:
            r = rng.integers(2, size)
            truth[i, :r, : rng.integers(2, size)] = True
    good = np.clip(truth * 0.8 + rng.normal(0.1, 0.15, truth.shape), 0, 1)
    mid = np.clip(truth * 0.55 + rng.normal(0.2, 0.25, truth.shape), 0, 1)
    noise = rng.random(truth.shape)
    return np.stack([good, mid, noise]).astype(np.float16), truth


def test_linear_combiners():
    probs, truth = planted()
    np.testing.assert_allclose(fit_mean(probs, truth).weights, [1 / 3] * 3)
    single = fit_single(probs, truth)
    assert single.info["member"] == 0
    np.testing.assert_allclose(combine(probs, single), probs[0].astype(np.float32))
    greedy = fit_greedy(probs, truth)
    assert greedy.weights[0] == greedy.weights.max() and greedy.weights[2] == 0  # never picks the noise
    ridge = fit_ridge(probs, truth, positive=True)
    assert ridge.weights[0] > ridge.weights[1] >= 0 and ridge.weights[2] < 0.05


def test_ridge_recovers_a_known_mix():
    rng = np.random.default_rng(1)
    probs = rng.random((3, 40, 10, 10)).astype(np.float16)
    target = 0.6 * probs[0].astype(np.float32) + 0.3 * probs[1].astype(np.float32) + 0.05
    comb = fit_ridge(probs, target, alpha=1e-6, positive=False)
    np.testing.assert_allclose(comb.weights, [0.6, 0.3, 0.0], atol=5e-3)
    assert comb.bias == pytest.approx(0.05, abs=5e-3)


def test_tune_cutoffs_finds_threshold_and_min_area():
    truth = np.zeros((4, 10, 10), bool)
    truth[0, :5, :5] = True
    truth[1, :6, :6] = True
    p = truth * 0.42 + 0.0  # salt at 0.42: only thresholds below it find it
    p[2, 0, 0] = 0.9  # a lone false-positive pixel: min_area >= 10 removes it
    t, a, s = tune_cutoffs(p, truth)
    assert t < 0.42 and a >= 10 and s == 1.0


def test_cross_validation_scores_only_held_out_images():
    probs, truth = planted(n=90)
    res = cross_validate(fit_single, probs, truth, k=3)
    # the out-of-fold predictions are exactly what the fold's fitted combiner does on unseen images
    assert res["score"] == pytest.approx(competition_score(res["oof_pred"], truth))
    assert res["final"].info["member"] == 0
    noise_only = cross_validate(fit_mean, probs[2:], truth, k=3)
    assert noise_only["score"] < res["score"]


def test_combiner_registry():
    probs, truth = planted()
    for name, c in COMBINERS.items():  # every entry fits (M,) weights and has a label for the report
        assert c.fit(probs, truth).weights.shape == (3,) and c.label, name
    assert combiners_for("auto") == ["mean", "greedy", "ridge"]  # all but the single-snapshot baseline
    assert combiners_for("ridge") == ["ridge"]
    with pytest.raises(SalttuneError, match="'vote' is unknown; allowed: auto, single, mean, greedy, ridge"):
        combiners_for("vote")
