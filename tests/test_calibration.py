"""Calibration maths: temperature scaling, the calibration split, threshold picking, APGR."""

from __future__ import annotations

import numpy as np
import pytest

from harness.plugins.routing import _calibration as calibration


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sampled_task(n: int = 4000, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gold labels drawn from softmax(logits): those probabilities are calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 2
    true = softmax(logits)
    gold = np.array([rng.choice(k, p=row) for row in true])
    return gold, logits


def test_apgr_and_gap_shares_on_a_hand_computed_curve():
    # small 0.6, large 0.8; points (0.25, 0.7) and (0.5, 0.75) recover 50% and 75% of the gap.
    # Trapezoids over (0, 0), (0.25, 0.5), (0.5, 0.75), (1, 1):
    # 0.25 * 0.25 + 0.25 * 0.625 + 0.5 * 0.875 = 0.0625 + 0.15625 + 0.4375 = 0.65625
    shares, quality = [0.5, 0.25], [0.75, 0.7]
    assert calibration.apgr(shares, quality, 0.6, 0.8) == pytest.approx(0.65625)
    assert calibration.share_to_recover(shares, quality, 0.6, 0.8, 0.5) == pytest.approx(0.25)
    assert calibration.share_to_recover(shares, quality, 0.6, 0.8, 0.8) == pytest.approx(1.0)


def test_apgr_of_a_random_router_is_one_half_and_of_no_gap_is_none():
    shares = np.linspace(0.1, 0.9, 9)
    assert calibration.apgr(shares, 0.6 + 0.2 * shares, 0.6, 0.8) == pytest.approx(0.5)
    assert calibration.apgr(shares, np.full(9, 0.7), 0.7, 0.7) is None
    assert calibration.share_to_recover(shares, np.full(9, 0.7), 0.8, 0.7, 0.5) is None


def test_fitted_temperature_undoes_overconfidence_and_lowers_ece():
    gold, logits = sampled_task()
    overconfident = softmax(logits * 2.5)  # the same ranking, temperature 0.4
    temperature = calibration.fit_temperature(gold, overconfident)
    assert temperature == pytest.approx(2.5, rel=0.1)
    grid = np.exp(np.linspace(np.log(0.5), np.log(10), 400))
    nll = [
        calibration.negative_log_likelihood(gold, calibration.apply_temperature(overconfident, t))
        for t in grid
    ]
    assert temperature == pytest.approx(grid[int(np.argmin(nll))], rel=0.02)
    scaled = calibration.apply_temperature(overconfident, temperature)
    assert (scaled.argmax(axis=1) == overconfident.argmax(axis=1)).all()
    before = calibration.expected_calibration_error(gold, overconfident)
    after = calibration.expected_calibration_error(gold, scaled)
    assert after < before / 2


def test_temperature_one_changes_nothing():
    _, logits = sampled_task(n=50)
    probs = softmax(logits)
    assert np.allclose(calibration.apply_temperature(probs, 1.0), probs)


def test_calibration_mask_is_half_seeded_and_independent_of_order():
    ids = [f"r{i}" for i in range(101)]
    mask = calibration.calibration_mask(ids, seed=1)
    assert mask.sum() == 50
    shuffled = list(reversed(ids))
    again = dict(zip(shuffled, calibration.calibration_mask(shuffled, seed=1), strict=True))
    assert all(again[i] == m for i, m in zip(ids, mask, strict=True))
    assert (calibration.calibration_mask(ids, seed=2) != mask).any()


def test_candidate_thresholds_realise_every_share_and_pick_the_closest():
    scores = np.array([0.55, 0.6, 0.6, 0.7, 0.95, 1.0])
    candidates = calibration.candidate_thresholds(scores)
    shares = np.array([np.mean(scores < t) for t in candidates])
    assert set(np.round(shares, 6)) == {0.0, round(1 / 6, 6), 0.5, round(4 / 6, 6), round(5 / 6, 6)}
    assert candidates.max() <= 1.0
    chosen = calibration.pick_for_share(candidates, shares, 0.45)
    assert shares[chosen] == 0.5
    assert np.mean(scores < candidates[chosen]) == 0.5


def test_pick_for_metric_takes_the_cheapest_threshold_that_reaches_the_target():
    shares = np.array([0.0, 0.1, 0.3, 0.6])
    values = np.array([0.80, 0.86, 0.90, 0.91])
    assert calibration.pick_for_metric(shares, values, 0.88) == (2, True)
    assert calibration.pick_for_metric(shares, values, 0.95) == (3, False)


def test_scale_and_bias_recover_the_distortion_of_calibrated_logits():
    gold, logits = sampled_task(n=6000)
    bias = np.array([0.8, -0.5, -0.3])
    scale, fitted_bias = calibration.fit_scale_and_bias(logits / 2.5 - bias, gold)
    assert scale == pytest.approx(2.5, rel=0.08)
    np.testing.assert_allclose(fitted_bias, scale * bias - (scale * bias).mean(), atol=0.1)


def test_scale_and_bias_stay_finite_when_a_label_is_missing():
    scores = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.2], [0.2, 0.9, 0.1]])
    scale, bias = calibration.fit_scale_and_bias(scores, np.array([1, 0, 1]))
    assert np.isfinite(scale) and np.isfinite(bias).all()


def test_share_thresholds_sit_at_quantiles_and_reach_both_ends():
    from harness.plugins.routing._calibration import share_thresholds

    scores = np.concatenate([np.linspace(0.5, 0.99, 70), np.ones(30)])
    thresholds = share_thresholds(scores, [0.0, 0.25, 0.5, 0.7, 0.8, 1.0])
    shares = [float(np.mean(scores < t)) if t < 1 else 1.0 for t in thresholds]
    assert shares == [0.0, 0.25, 0.5, 0.7, 1.0]  # 0.8 falls among the tied 1.0s: it is reached only by 1
