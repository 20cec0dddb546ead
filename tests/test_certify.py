"""Certified thresholds: the promise holds on new data in at least 1 - delta of calibration samples."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.plugins.routing import _certify as certify


def population(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """An over-confident small model whose errors hide among its high scores, and a better large one.

    Gold is binary; the small model is right with probability equal to its
    score, which piles up near 1; the large model is right 95% of the time.
    """
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 2, n)
    scores = 0.5 + 0.5 * rng.beta(1.5, 0.6, n)
    small_right = rng.random(n) < scores
    large_right = rng.random(n) < 0.95
    return {
        "scores": scores,
        "gold": gold,
        "small": np.where(small_right, gold, 1 - gold),
        "large": np.where(large_right, gold, 1 - gold),
    }


def sample(data: dict[str, np.ndarray], index: np.ndarray) -> list[np.ndarray]:
    return [data[key][index] for key in ("scores", "gold", "small", "large")]


def test_error_counts_match_a_direct_count():
    data = population(300, seed=1)
    thresholds = np.array([1.0, 0.99, 0.9, 0.75, 0.5, 0.0])
    errors = certify.error_counts(data["scores"], data["small"] == data["gold"], data["large"] == data["gold"],
                                  thresholds)  # fmt: skip
    for t, count in zip(thresholds, errors, strict=True):
        escalate = np.ones(300, dtype=bool) if t >= 1 else data["scores"] < t
        hybrid = np.where(escalate, data["large"], data["small"])
        assert count == np.sum(hybrid != data["gold"])


@pytest.mark.parametrize("delta", [0.2, 0.1, 0.05])
def test_certified_threshold_holds_in_at_least_1_minus_delta_of_samples_and_beats_the_calibration_pick(delta):
    data = population(200_000)
    grid = certify.threshold_grid()
    truth = certify.quality("accuracy", data["scores"], data["gold"], data["small"], data["large"], grid, 2)
    small_accuracy = np.mean(data["small"] == data["gold"])
    target = 0.9
    assert small_accuracy < target < truth[0]  # escalation is needed, and escalating everything is enough
    rng = np.random.default_rng(7)
    trials, certified, misses, naive_misses = 300, 0, 0, 0
    for _ in range(trials):
        scores, gold, small, large = sample(data, rng.choice(len(data["gold"]), 1000, replace=False))
        result = certify.certify("accuracy", target, delta, scores, gold, small, large, 2)
        if result.threshold is not None:
            certified += 1
            assert result.bound >= target and result.p_value <= delta
            misses += truth[np.flatnonzero(grid == result.threshold)[0]] < target
        naive = certify.best_on_calibration("accuracy", target, scores, gold, small, large, 2)
        if naive is not None:
            naive_misses += truth[np.flatnonzero(grid == naive)[0]] < target
    assert certified > trials // 2  # the guarantee is not met by certifying nothing
    assert misses <= delta * trials
    assert naive_misses > max(misses, delta * trials)


@pytest.mark.parametrize("delta", [0.2, 0.1, 0.05])
def test_a_batch_certificate_holds_on_the_held_out_half_of_random_splits(delta):
    pool = population(1000, seed=11)
    rng = np.random.default_rng(3)
    trials, certified, misses, population_misses = 300, 0, 0, 0
    for _ in range(trials):
        order = rng.permutation(1000)
        calibration, held = sample(pool, order[:500]), sample(pool, order[500:])
        result = certify.certify("accuracy", 0.9, delta, *calibration, 2, batch=500)
        plain = certify.certify("accuracy", 0.9, delta, *calibration, 2)
        for found, counter in ((result, "batch"), (plain, "population")):
            if found.threshold is None:
                continue
            quality = certify.quality("accuracy", *held, np.array([found.threshold]), 2)[0]
            if counter == "batch":
                certified += 1
                misses += quality < 0.9
                assert found.bound >= 0.9
            else:
                population_misses += quality < 0.9
    assert certified > trials // 2
    assert misses <= delta * trials
    assert population_misses > misses  # a promise for the population is not one for a finite batch


def test_certified_threshold_escalates_more_as_delta_shrinks():
    data = population(2000, seed=3)
    args = (data["scores"], data["gold"], data["small"], data["large"], 2)
    shares = [certify.certify("accuracy", 0.9, delta, *args).share for delta in (0.3, 0.1, 0.01)]
    assert shares[0] <= shares[1] <= shares[2] < 1.0


def test_a_large_model_worse_overall_is_still_used_where_it_helps():
    # The large model is 80% right everywhere: worse than the small one on average, better on its unsure reviews.
    data = population(200_000, seed=5)
    rng = np.random.default_rng(5)
    data["large"] = np.where(rng.random(200_000) < 0.8, data["gold"], 1 - data["gold"])
    grid = certify.threshold_grid()
    truth = certify.quality("accuracy", data["scores"], data["gold"], data["small"], data["large"], grid, 2)
    small_only, best = truth[-1], truth.max()
    assert truth[0] < small_only < best
    target = (small_only + best) / 2
    result = certify.certify("accuracy", target, 0.1, *sample(data, np.arange(20_000)), 2)
    assert result.threshold is not None and 0.0 < result.share < 0.5
    assert truth[np.flatnonzero(grid == result.threshold)[0]] >= target


def periodic(n: int) -> list[np.ndarray]:
    """The small model always wrong, the large one wrong on every 20th review (5%)."""
    gold = np.zeros(n, dtype=np.int64)
    large = (np.arange(n) % 20 == 0).astype(np.int64)
    return [np.linspace(0, 1, n), gold, np.ones(n, dtype=np.int64), large]


def test_nothing_certified_says_how_many_reviews_would_do():
    tiny = certify.certify("accuracy", 0.9, 0.1, *periodic(40), 2)
    assert tiny.threshold is None and tiny.start_share == 1.0  # the small model is always wrong
    testing = 40 - tiny.n_ordering
    rate = tiny.observed_error
    assert 0 < rate < 0.1 and (rate * testing).is_integer()
    per_testing_review = certify.reviews_needed(rate, 0.1, 0.1)
    assert tiny.reviews_needed == int(np.ceil(per_testing_review / (1 - certify.ORDERING_SHARE))) > 40
    enough = certify.certify("accuracy", 0.9, 0.1, *periodic(4 * tiny.reviews_needed), 2)
    assert enough.threshold is not None and enough.bound >= 0.9
    beyond = certify.certify("accuracy", 0.96, 0.1, *periodic(10_000), 2)
    assert beyond.threshold is None and beyond.reviews_needed is None


def test_reviews_needed_is_the_smallest_sample_whose_p_value_passes():
    n = certify.reviews_needed(0.05, 0.1, 0.1)
    assert n is not None
    assert certify.binomial_p_value(np.floor(n * 0.05), n, 0.1) <= 0.1
    assert certify.binomial_p_value(np.floor((n - 1) * 0.05), n - 1, 0.1) > 0.1
    assert certify.reviews_needed(0.1, 0.1, 0.1) is None


def test_class_accuracy_holds_every_class_to_the_target():
    # Class 1 is rare, and the large model is always wrong on it: escalating lifts overall accuracy to 0.95
    # but no threshold lifts the worse class above the small model's 0.9.
    gold = np.array([0] * 950 + [1] * 50)
    scores = np.linspace(0, 1, 1000)
    small = np.where(np.arange(1000) % 10 == 0, 1 - gold, gold)  # 10% wrong everywhere
    large = np.where(gold == 1, 0, gold)
    overall = certify.certify("accuracy", 0.9, 0.1, scores, gold, small, large, 2)
    per_class = certify.certify("class_accuracy", 0.93, 0.1, scores, gold, small, large, 2)
    assert overall.threshold is not None
    assert per_class.threshold is None and per_class.reviews_needed is None


def test_guarantee_parsing_refuses_macro_f1_with_the_reason():
    with pytest.raises(HarnessError, match="accuracy only"):
        certify.certify("class_accuracy", 0.9, 0.1, *periodic(100), 2, batch=50)
    assert certify.parse_guarantee("accuracy>=0.9") == ("accuracy", 0.9)
    assert certify.parse_guarantee("class_accuracy >= 0.8") == ("class_accuracy", 0.8)
    with pytest.raises(HarnessError, match="ratio of counts"):
        certify.parse_guarantee("macro_f1>=0.9")
    for bad in ("accuracy=0.9", "accuracy>=1.5", "recall>=0.9", ">=0.9"):
        with pytest.raises(HarnessError):
            certify.parse_guarantee(bad)
