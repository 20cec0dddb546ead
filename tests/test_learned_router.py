"""The learned router: fitted on the calibration half, compared with the confidence rules held out."""

from __future__ import annotations

import numpy as np

from harness.plugins.routing import _learned as learned
from harness.plugins.routing._calibration import calibration_mask
from harness.plugins.routing._replay import PairedPredictions


def accuracy(gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    return {"accuracy": float(np.mean(probs.argmax(axis=1) == gold))}


def negation_blind_pair(n: int = 2000, seed: int = 0) -> PairedPredictions:
    """A small model that is sure of itself and wrong on most negated reviews; a large one right on all."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 2, n)
    negated = rng.random(n) < 0.2
    wrong = np.where(negated, rng.random(n) < 0.7, rng.random(n) < 0.05)
    sure = 0.6 + 0.4 * rng.random(n)  # confidence says nothing about being wrong
    predicted = np.where(wrong, 1 - gold, gold)
    small = np.where(predicted[:, None] == np.arange(2), sure[:, None], 1 - sure[:, None])
    large = np.eye(2)[gold] * 0.8 + 0.1
    texts = [("it is not what I wanted " if neg else "it is what I wanted ") + "x" * int(rng.integers(0, 50))
             for neg in negated]  # fmt: skip
    return PairedPredictions(ids=[str(i) for i in range(n)], gold=gold, small=small, large=large,
                             small_latency=np.ones(n), large_latency=np.ones(n), texts=texts)  # fmt: skip


def test_features_count_negations_and_length():
    probs = np.array([[0.9, 0.1], [0.5, 0.5]])
    features = learned.review_features(["I can't say it isn't fine, not bad", "ok"], probs)
    assert features.shape == (2, 7)
    assert features[0, -1] == np.log1p(3) and features[1, -1] == 0.0
    assert features[0, -2] > features[1, -2]


def test_learned_router_beats_confidence_where_errors_hide_in_the_text():
    pair = negation_blind_pair()
    half = calibration_mask(pair.ids, seed=0)
    rows = {
        r.router: r for r in learned.compare_routers(pair, half, accuracy, "accuracy", np.linspace(0, 1, 51))
    }
    assert set(rows) == {"confidence", "margin", "entropy", "learned"}
    assert rows["learned"].apgr > rows["confidence"].apgr + 0.1
    assert rows["learned"].share_for_80 < rows["confidence"].share_for_80
    held = pair.subset(~half)
    x, y = learned.held_out_curve(
        held, learned.max_probability(held.small), accuracy, "accuracy", np.linspace(0, 1, 51)
    )
    assert rows["confidence"].best_quality == max(y) and rows["confidence"].best_share == x[int(np.argmax(y))]


def test_learned_router_without_both_outcomes_escalates_by_order_only():
    pair = negation_blind_pair(200)
    pair.large = pair.small.copy()  # escalating never helps
    router = learned.fit_on_pair(pair)
    assert router.model is None and (router.score(pair.texts, pair.small, None) == 1.0).all()


def test_an_answer_naming_no_label_is_never_counted_right():
    """A generated answer that names no label is a row of zeros: escalating to it never helps, and the oracle
    treats it as wrong, even where the gold label is the first one (which argmax would give)."""
    from harness.plugins.routing._replay import oracle_order

    gold = np.array([0, 0, 1])
    small = np.array([[0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])  # wrong on every review
    large = np.array([[0.0, 0.0], [0.9, 0.1], [0.0, 0.0]])  # no label, right, no label
    assert learned.escalation_helps(gold, small, large).tolist() == [False, True, False]
    pair = PairedPredictions(ids=["a", "b", "c"], gold=gold, small=small, large=large,
                             small_latency=np.ones(3), large_latency=np.ones(3))  # fmt: skip
    assert oracle_order(pair)[0] == 1
