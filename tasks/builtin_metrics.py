"""The built-in metrics, registered as plugins, and the numpy functions they are made of.

`evaluate.load` fetches metric scripts from the hub and fails offline, and the
metrics needed here are a few lines each; scikit-learn is used by the tests as
the reference, not at run time. Every function takes gold label indices [n]
and either predicted indices [n] or probabilities [n, k]; on no examples the
scores are NaN rather than a misleading 0 or 1. Each registered `Metric` names
the tasks that report it by default: the study's measures per task, macro-F1
and calibration for both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from harness import NO_LABEL, Metric, Register, ResampledFn, hookimpl, predictions

NAN = float("nan")


def confusion_matrix(gold: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts [k, k]: row = gold label, column = predicted label; a NO_LABEL prediction is in no column."""
    gold, pred = np.asarray(gold, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    answered = pred != NO_LABEL
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (gold[answered], pred[answered]), 1)
    return matrix


def accuracy(gold: np.ndarray, pred: np.ndarray) -> float:
    gold, pred = np.asarray(gold), np.asarray(pred)
    return float(np.mean(gold == pred)) if gold.size else NAN


def per_class_accuracy(gold: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Accuracy on the examples of each gold class (the class' recall); NaN for a class with none.

    For polarity this is the study's "accuracy on positives / negatives".
    """
    matrix = confusion_matrix(gold, pred, n_classes)
    support = np.bincount(np.asarray(gold, dtype=np.int64), minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def precision_recall_f1(
    gold: np.ndarray, pred: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support; an undefined ratio counts as 0, as in scikit-learn."""
    matrix = confusion_matrix(gold, pred, n_classes)
    true_pos = np.diag(matrix).astype(float)
    support = np.bincount(np.asarray(gold, dtype=np.int64), minlength=n_classes)
    predicted = matrix.sum(axis=0)
    precision = np.divide(true_pos, predicted, out=np.zeros(n_classes), where=predicted > 0)
    recall = np.divide(true_pos, support, out=np.zeros(n_classes), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(n_classes), where=total > 0)
    return precision, recall, f1, support


def macro_f1(gold: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean F1 over the classes that occur in the gold or predicted labels.

    A label that neither occurs nor is predicted (a category the data lacks)
    would add a meaningless 0, so it is left out, as scikit-learn does when
    not given an explicit label list.
    """
    gold, pred = np.asarray(gold), np.asarray(pred)
    if not gold.size:
        return NAN
    _, _, f1, support = precision_recall_f1(gold, pred, n_classes)
    seen = (support > 0) | (np.bincount(pred[pred != NO_LABEL], minlength=n_classes) > 0)
    return float(f1[seen].mean())


def top_k_accuracy(gold: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Share of examples whose gold label is among the k most probable (ties: lower index first).

    A gold label with probability 0 is never a hit: rows from generated
    answers give 0 to every label the answer did not name, and a tie among
    those must not put an unnamed label into the top k.
    """
    gold, probs = np.asarray(gold), np.asarray(probs)
    if not gold.size:
        return NAN
    ranked = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    named = probs[np.arange(len(gold)), gold] > 0
    return float(np.mean((ranked == gold[:, None]).any(axis=1) & named))


def average_precision(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the step precision-recall curve of one class; NaN when it has no positives.

    Examples with equal scores enter together, as at one threshold (the
    definition scikit-learn's `average_precision_score` uses).
    """
    positive, scores = np.asarray(positive, dtype=bool), np.asarray(scores, dtype=float)
    n_pos = int(positive.sum())
    if n_pos == 0:
        return NAN
    order = np.argsort(-scores, kind="stable")
    scores, positive = scores[order], positive[order]
    true_pos = np.cumsum(positive)
    # The last index of each run of equal scores is where that threshold's counts are complete.
    ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    tp = true_pos[ends]
    precision = tp / (ends + 1)
    recall_gain = np.diff(np.r_[0, tp]) / n_pos
    return float(np.sum(recall_gain * precision))


def mean_average_precision(gold: np.ndarray, probs: np.ndarray) -> float:
    """Average precision per class, averaged over the classes that occur in the gold labels."""
    gold, probs = np.asarray(gold), np.asarray(probs)
    scores = [average_precision(gold == c, probs[:, c]) for c in np.unique(gold)]
    return float(np.mean(scores)) if scores else NAN


def expected_calibration_error(gold: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """How far confidence (the top probability) is from accuracy, in 15 equal-width bins.

    Sum over bins of |accuracy - mean confidence| weighted by the bin's share
    of examples (Guo et al., 2017). Bin b holds confidences in (b/n, (b+1)/n];
    a confidence of 0 falls in the first bin.
    """
    gold, probs = np.asarray(gold), np.asarray(probs, dtype=float)
    if not gold.size:
        return NAN
    confidence = probs.max(axis=1)
    correct = predictions(probs) == gold
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(
        np.bincount(bins, weights=correct.astype(float), minlength=n_bins)
        - np.bincount(bins, weights=confidence, minlength=n_bins)
    )
    return float(gap.sum() / count.sum())


def resampled_confusion(gold: np.ndarray, pred: np.ndarray, n_classes: int, index: np.ndarray) -> np.ndarray:
    """`confusion_matrix` of every resample, a row of `index` [r, n]: counts [r, k, k] from one bincount."""
    gold, pred = gold[index], pred[index]
    answered = pred != NO_LABEL
    cell = (np.arange(len(index))[:, None] * n_classes + gold) * n_classes + pred
    counts = np.bincount(cell[answered], minlength=len(index) * n_classes * n_classes)
    return counts.reshape(len(index), n_classes, n_classes)


def resampled_support(gold: np.ndarray, n_classes: int, index: np.ndarray) -> np.ndarray:
    """Gold examples of each class in every resample: [r, k]."""
    cell = np.arange(len(index))[:, None] * n_classes + gold[index]
    return np.bincount(cell.ravel(), minlength=len(index) * n_classes).reshape(len(index), n_classes)


def resampled_macro_f1(gold: np.ndarray, pred: np.ndarray, n_classes: int, index: np.ndarray) -> np.ndarray:
    """`macro_f1` of every resample, a row of `index` [r, n], from per-resample confusion matrices."""
    matrix = resampled_confusion(gold, pred, n_classes, index)
    true_pos = np.diagonal(matrix, axis1=1, axis2=2).astype(float)
    support = resampled_support(gold, n_classes, index)
    predicted = matrix.sum(axis=1)
    zeros = np.zeros(true_pos.shape)
    precision = np.divide(true_pos, predicted, out=zeros.copy(), where=predicted > 0)
    recall = np.divide(true_pos, support, out=zeros.copy(), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=zeros, where=total > 0)
    seen = (support > 0) | (predicted > 0)
    return (f1 * seen).sum(axis=1) / seen.sum(axis=1)


def resampled_expected_calibration_error(
    gold: np.ndarray, probs: np.ndarray, index: np.ndarray, n_bins: int = 15
) -> np.ndarray:
    """`expected_calibration_error` of every resample, a row of `index` [r, n], from weighted bincounts."""
    confidence = probs.max(axis=1)
    correct = (predictions(probs) == gold).astype(float)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    cell = (np.arange(len(index))[:, None] * n_bins + bins[index]).ravel()
    size = len(index) * n_bins
    hits = np.bincount(cell, weights=correct[index].ravel(), minlength=size)
    sure = np.bincount(cell, weights=confidence[index].ravel(), minlength=size)
    return np.abs(hits - sure).reshape(len(index), n_bins).sum(axis=1) / index.shape[1]


def resampled_mean_average_precision(gold: np.ndarray, probs: np.ndarray, index: np.ndarray) -> np.ndarray:
    """`mean_average_precision` of every resample, a row of `index` [r, n], from each example's copy counts.

    A resample holds example i some number of times, its weight; each class's
    examples are ranked once, and a resample's precision and recall at each
    run of equal scores are weighted cumulative sums along that ranking. A run
    of scores the resample does not draw adds no recall, so it adds nothing.
    """
    rows, n = index.shape
    copies = np.bincount((np.arange(rows)[:, None] * n + index).ravel(), minlength=rows * n).reshape(rows, n)
    per_class = []
    for label in range(probs.shape[1]):
        order = np.argsort(-probs[:, label], kind="stable")
        scores, weights = probs[order, label], copies[:, order]
        true_pos = np.cumsum(weights * (gold[order] == label), axis=1)
        ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
        tp, seen = true_pos[:, ends], np.cumsum(weights, axis=1)[:, ends]
        n_pos = true_pos[:, -1:]
        gain = np.diff(tp, axis=1, prepend=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            terms = np.where(gain > 0, (gain / n_pos) * (tp / seen), 0.0)
            per_class.append(np.where(n_pos[:, 0] > 0, terms.sum(axis=1), np.nan))
    return np.nanmean(np.stack(per_class, axis=1), axis=1)


def _class_accuracy(index: int) -> Callable[[np.ndarray, np.ndarray, Sequence[str]], float]:
    def compute(gold: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> float:
        return float(per_class_accuracy(gold, predictions(probs), len(labels))[index])

    return compute


def _resampled_class_accuracy(index: int) -> ResampledFn:
    def compute(gold: np.ndarray, probs: np.ndarray, labels: Sequence[str], rows: np.ndarray) -> np.ndarray:
        matrix = resampled_confusion(gold, predictions(probs), len(labels), rows)
        support = resampled_support(gold, len(labels), rows)[:, index]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, matrix[:, index, index] / support, np.nan)

    return compute


def _top_k(k: int) -> Callable[[np.ndarray, np.ndarray, Sequence[str]], float]:
    def compute(gold: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> float:
        return top_k_accuracy(gold, probs, k)

    return compute


def _resampled_top_k(k: int) -> ResampledFn:
    def compute(gold: np.ndarray, probs: np.ndarray, labels: Sequence[str], rows: np.ndarray) -> np.ndarray:
        ranked = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        hit = (ranked == gold[:, None]).any(axis=1) & (probs.max(axis=1) > 0)
        return hit[rows].mean(axis=1)

    return compute


def _accuracy(gold: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> float:
    return accuracy(gold, predictions(probs))


def _resampled_accuracy(
    gold: np.ndarray, probs: np.ndarray, labels: Sequence[str], rows: np.ndarray
) -> np.ndarray:
    return (predictions(probs) == gold)[rows].mean(axis=1)


BUILTIN_METRICS = (
    Metric(
        "macro_f1",
        lambda gold, probs, labels: macro_f1(gold, predictions(probs), len(labels)),
        tasks=("polarity", "category"),
        description="unweighted mean F1 over the classes that occur",
        resampled=lambda gold, probs, labels, rows: resampled_macro_f1(
            gold, predictions(probs), len(labels), rows
        ),
    ),
    Metric(
        "accuracy",
        _accuracy,
        tasks=("polarity",),
        description="share of reviews whose top label is right",
        resampled=_resampled_accuracy,
    ),
    Metric(
        "accuracy_pos",
        _class_accuracy(1),
        tasks=("polarity",),
        max_labels=2,
        description="accuracy on the reviews of the second (positive) class",
        resampled=_resampled_class_accuracy(1),
    ),
    Metric(
        "accuracy_neg",
        _class_accuracy(0),
        tasks=("polarity",),
        max_labels=2,
        description="accuracy on the reviews of the first (negative) class",
        resampled=_resampled_class_accuracy(0),
    ),
    Metric(
        "top1",
        _accuracy,
        tasks=("category",),
        description="accuracy of the most probable label",
        resampled=_resampled_accuracy,
    ),
    Metric(
        "top2",
        _top_k(2),
        tasks=("category",),
        description="gold label among the 2 most probable",
        resampled=_resampled_top_k(2),
    ),
    Metric(
        "top3",
        _top_k(3),
        tasks=("category",),
        description="gold label among the 3 most probable",
        resampled=_resampled_top_k(3),
    ),
    Metric(
        "map",
        lambda gold, probs, labels: mean_average_precision(gold, probs),
        tasks=("category",),
        description="mean average precision over the classes that occur",
        resampled=lambda gold, probs, labels, rows: resampled_mean_average_precision(gold, probs, rows),
    ),
    Metric(
        "ece",
        lambda gold, probs, labels: expected_calibration_error(gold, probs),
        higher_is_better=False,
        tasks=("polarity", "category"),
        description="expected calibration error of the top probability, 15 bins",
        resampled=lambda gold, probs, labels, rows: resampled_expected_calibration_error(gold, probs, rows),
    ),
)


@hookimpl
def register_metrics(register: Register[Metric]) -> None:
    for metric in BUILTIN_METRICS:
        register(metric.name, metric, description=metric.description)
