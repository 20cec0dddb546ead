"""Metrics: checked against values worked out by hand and against scikit-learn on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from harness.tasks import builtin_metrics as metrics

# A small 3-class case worked out by hand.
GOLD = np.array([0, 0, 1, 1, 2, 2])
PROBS = np.array(
    [
        [0.7, 0.2, 0.1],  # gold 0, predicted 0
        [0.3, 0.6, 0.1],  # gold 0, predicted 1; gold second
        [0.1, 0.8, 0.1],  # gold 1, predicted 1
        [0.5, 0.3, 0.2],  # gold 1, predicted 0; gold second
        [0.2, 0.3, 0.5],  # gold 2, predicted 2
        [0.6, 0.3, 0.1],  # gold 2, predicted 0; gold third
    ]
)
PRED = np.array([0, 1, 1, 0, 2, 0])


def test_hand_computed_counts_and_rates() -> None:
    assert metrics.predictions(PROBS).tolist() == PRED.tolist()
    assert metrics.confusion_matrix(GOLD, PRED, 3).tolist() == [[1, 1, 0], [1, 1, 0], [1, 0, 1]]
    assert metrics.accuracy(GOLD, PRED) == pytest.approx(3 / 6)
    assert metrics.per_class_accuracy(GOLD, PRED, 3).tolist() == pytest.approx([0.5, 0.5, 0.5])
    precision, recall, f1, support = metrics.precision_recall_f1(GOLD, PRED, 3)
    # Class 0: predicted 3 times, right once; class 1: predicted twice, right once; class 2: once, right.
    assert precision.tolist() == pytest.approx([1 / 3, 1 / 2, 1])
    assert recall.tolist() == pytest.approx([1 / 2, 1 / 2, 1 / 2])
    assert f1.tolist() == pytest.approx([0.4, 0.5, 2 / 3])
    assert support.tolist() == [2, 2, 2]
    assert metrics.macro_f1(GOLD, PRED, 3) == pytest.approx((0.4 + 0.5 + 2 / 3) / 3)


def test_hand_computed_top_k() -> None:
    assert metrics.top_k_accuracy(GOLD, PROBS, 1) == pytest.approx(3 / 6)
    assert metrics.top_k_accuracy(GOLD, PROBS, 2) == pytest.approx(5 / 6)
    assert metrics.top_k_accuracy(GOLD, PROBS, 3) == 1.0


def test_hand_computed_average_precision() -> None:
    # Class 0 scores, descending: 0.7 (+), 0.6 (-), 0.5 (-), 0.3 (+), 0.2, 0.1: AP = 1/2 * 1 + 1/2 * 2/4.
    assert metrics.average_precision(GOLD == 0, PROBS[:, 0]) == pytest.approx(0.75)
    # Class 1: 0.8 (+), 0.6 (-), then 0.3 three times (one +): the tie counts as one threshold, 2/5.
    assert metrics.average_precision(GOLD == 1, PROBS[:, 1]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 5)
    # Class 2: 0.5 (+), 0.2, then 0.1 four times (one +): 1/2 * 1 + 1/2 * 2/6.
    assert metrics.average_precision(GOLD == 2, PROBS[:, 2]) == pytest.approx(0.5 + 0.5 * 2 / 6)
    expected = (0.75 + 0.7 + (0.5 + 1 / 6)) / 3
    assert metrics.mean_average_precision(GOLD, PROBS) == pytest.approx(expected)
    assert math.isnan(metrics.average_precision(np.zeros(3, dtype=bool), np.ones(3)))


def test_hand_computed_expected_calibration_error() -> None:
    gold = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.65, 0.35]])
    # Bin (0.867, 0.933]: confidence 0.9 twice, both right: gap 0.1 on 2 of 4 examples.
    # Bin (0.533, 0.6]: confidence 0.6, right: gap 0.4 on 1. Bin (0.6, 0.667]: 0.65, wrong: gap 0.65 on 1.
    expected = (2 * 0.1 + 0.4 + 0.65) / 4
    assert metrics.expected_calibration_error(gold, probs) == pytest.approx(expected)
    # A single wide bin pools them: accuracy 3/4, mean confidence 0.7625.
    assert metrics.expected_calibration_error(gold, probs, n_bins=1) == pytest.approx(abs(0.75 - 0.7625))
    confident_and_right = np.eye(3)[[0, 1, 2, 1]]
    assert metrics.expected_calibration_error(np.array([0, 1, 2, 1]), confident_and_right) == 0.0


def test_no_examples_give_nan_not_a_score() -> None:
    empty, no_probs = np.array([], dtype=int), np.zeros((0, 3))
    assert math.isnan(metrics.accuracy(empty, empty))
    assert math.isnan(metrics.macro_f1(empty, empty, 3))
    assert math.isnan(metrics.top_k_accuracy(empty, no_probs, 2))
    assert math.isnan(metrics.mean_average_precision(empty, no_probs))
    assert math.isnan(metrics.expected_calibration_error(empty, no_probs))
    assert np.isnan(metrics.per_class_accuracy(np.array([0, 0]), np.array([0, 1]), 2)[1])


def random_case(seed: int, n: int = 200, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, k - 1, size=n)  # the last class never occurs in gold
    probs = rng.dirichlet(np.ones(k), size=n)
    probs[np.arange(n), gold] += rng.random(n) * 0.5  # better than chance
    return gold, probs / probs.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(5))
def test_against_scikit_learn(seed: int) -> None:
    gold, probs = random_case(seed)
    k = probs.shape[1]
    pred = metrics.predictions(probs)
    labels = list(range(k))
    assert np.array_equal(
        metrics.confusion_matrix(gold, pred, k), skm.confusion_matrix(gold, pred, labels=labels)
    )
    assert metrics.accuracy(gold, pred) == pytest.approx(skm.accuracy_score(gold, pred))
    assert metrics.macro_f1(gold, pred, k) == pytest.approx(skm.f1_score(gold, pred, average="macro"))
    ours = metrics.precision_recall_f1(gold, pred, k)
    theirs = skm.precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    for mine, reference in zip(ours, theirs, strict=True):
        assert np.allclose(mine, reference)
    for top in (1, 2, 3):
        reference = skm.top_k_accuracy_score(gold, probs, k=top, labels=labels)
        assert metrics.top_k_accuracy(gold, probs, top) == pytest.approx(reference)
    present = np.unique(gold)
    reference_map = np.mean([skm.average_precision_score(gold == c, probs[:, c]) for c in present])
    assert metrics.mean_average_precision(gold, probs) == pytest.approx(reference_map)


@pytest.mark.parametrize("seed", range(3))
def test_average_precision_with_tied_scores_matches_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    positive = rng.random(100) < 0.3
    scores = rng.integers(0, 6, size=100) / 5 + positive * 0.2  # many ties
    reference = skm.average_precision_score(positive, scores)
    assert metrics.average_precision(positive, scores) == pytest.approx(reference)


def test_macro_f1_counts_a_wrongly_predicted_absent_class() -> None:
    gold, pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    assert metrics.macro_f1(gold, pred, 4) == pytest.approx(skm.f1_score(gold, pred, average="macro"))
    assert metrics.macro_f1(gold, pred, 4) == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_a_row_that_names_no_label_is_wrong_for_every_metric_whatever_the_gold():
    gold = np.array([0, 0, 1, 1])
    probs = np.array([[0.0, 0.0], [0.8, 0.2], [0.3, 0.7], [0.0, 0.0]])  # rows 0 and 3: unparseable
    pred = metrics.predictions(probs)
    np.testing.assert_array_equal(pred, [metrics.NO_LABEL, 0, 1, metrics.NO_LABEL])
    assert metrics.accuracy(gold, pred) == 0.5
    np.testing.assert_array_equal(metrics.per_class_accuracy(gold, pred, 2), [0.5, 0.5])
    # scikit-learn with an extra "no label" class it is told to leave out of the average
    expected = skm.f1_score(gold, pred, labels=[0, 1], average="macro")
    assert metrics.macro_f1(gold, pred, 2) == pytest.approx(expected)
    assert metrics.top_k_accuracy(gold, probs, 2) == 0.5
    # A generated answer naming Music only: Books ties with the other unnamed labels at 0 and is no hit.
    named_one = np.array([[0.0, 1.0, 0.0, 0.0]])
    assert metrics.top_k_accuracy(np.array([0]), named_one, 3) == 0.0
    assert metrics.top_k_accuracy(np.array([1]), named_one, 1) == 1.0
    assert metrics.expected_calibration_error(gold, probs) == pytest.approx(
        (abs(0 - 0) * 2 + abs(1 - 0.8) + abs(1 - 0.7)) / 4
    )
