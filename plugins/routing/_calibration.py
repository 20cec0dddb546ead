"""Calibration for routing: temperature scaling, threshold picking, and the gap a router recovers.

A router threshold is only useful if it transfers: picked on one half of the
data, it should give about the same escalated share and quality on the
other. These functions are plain numpy so the sweep can replay thousands of
thresholds from cached predictions without touching a model.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

MAX_CANDIDATES = 201


def calibration_mask(ids: Sequence[str], seed: int) -> np.ndarray:
    """True for the calibration half of the examples, False for the held-out half.

    The halves come from a seeded hash of each id, so the same data and seed
    always give the same split whatever order the examples arrive in.
    """
    keys = [hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).hexdigest() for i in ids]
    order = np.argsort(np.asarray(keys), kind="stable")
    mask = np.zeros(len(ids), dtype=bool)
    mask[order[: len(ids) // 2]] = True
    return mask


def _log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax(log(p) / T): T > 1 softens over-confident probabilities, T < 1 sharpens them."""
    scaled = _log_probs(probs) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    e = np.exp(scaled)
    return e / e.sum(axis=1, keepdims=True)


def negative_log_likelihood(gold: np.ndarray, probs: np.ndarray) -> float:
    """Mean -log p(gold label)."""
    rows = np.arange(len(gold))
    return float(-_log_probs(probs)[rows, np.asarray(gold, dtype=np.int64)].mean())


def fit_temperature(gold: np.ndarray, probs: np.ndarray, *, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature minimising the negative log-likelihood of the gold labels.

    The probabilities are softmax outputs, so log(p) serves as the logits.
    The NLL is convex in 1/T, hence unimodal in log T, and a golden-section
    search over [low, high] finds its minimum without a gradient.
    """
    gold = np.asarray(gold, dtype=np.int64)
    if not len(gold):
        return 1.0
    logits = _log_probs(probs)

    def loss(log_t: float) -> float:
        scaled = logits / math.exp(log_t)
        scaled -= scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        return float((log_norm - scaled[np.arange(len(gold)), gold]).mean())

    ratio = (math.sqrt(5) - 1) / 2
    a, b = math.log(low), math.log(high)
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(80):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(d)
    return math.exp((a + b) / 2)


def fit_scale_and_bias(
    scores: np.ndarray, gold: np.ndarray, *, ridge: float = 1e-3
) -> tuple[float, np.ndarray]:
    """Scale a and per-label bias b making softmax(a * scores + b) fit the gold labels (least NLL).

    A language model's label scores are ranked well but placed badly: one
    label word is likelier whatever the review says, and the spread of the
    scores is not a probability scale. The bias moves the decision boundary
    where labelled reviews put it and the scale makes the probabilities
    honest, which a confidence router relies on. The small ridge keeps a
    bias finite when a label is missing from the sample.
    """
    from scipy.optimize import minimize

    scores = np.asarray(scores, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.int64)
    n, k = scores.shape
    onehot = np.eye(k)[gold]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] * scores + theta[1:]
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        error = np.exp(log_p) - onehot  # d NLL / d z, per row
        value = -(log_p * onehot).sum() / n + ridge * float(theta[1:] @ theta[1:])
        grad = np.concatenate([[(error * scores).sum() / n], error.sum(axis=0) / n + 2 * ridge * theta[1:]])
        return value, grad

    theta = minimize(loss, np.concatenate([[1.0], np.zeros(k)]), jac=True, method="L-BFGS-B").x
    bias = theta[1:] - theta[1:].mean()
    return float(theta[0]), bias


def expected_calibration_error(gold: np.ndarray, probs: np.ndarray) -> float:
    """ECE of the top probability in 15 equal-width bins (the tasks' definition)."""
    from harness.tasks.builtin_metrics import expected_calibration_error as ece

    return ece(gold, probs)


def candidate_thresholds(scores: np.ndarray, extra: Sequence[float] = ()) -> np.ndarray:
    """Thresholds that realise every distinct escalated share of `scores`, within [0, 1].

    Midpoints between neighbouring distinct scores transfer better to new data
    than the scores themselves; at most MAX_CANDIDATES are kept, evenly spread.
    """
    unique = np.unique(np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0))
    if not len(unique):
        return np.asarray(sorted(extra), dtype=np.float64)
    top = (unique[-1] + 1.0) / 2 if unique[-1] < 1.0 else 1.0
    points = np.concatenate([[unique[0]], (unique[1:] + unique[:-1]) / 2, [top]])
    if len(points) > MAX_CANDIDATES:
        points = points[np.linspace(0, len(points) - 1, MAX_CANDIDATES).round().astype(int)]
    return np.unique(np.concatenate([points, np.asarray(extra, dtype=np.float64)]))


def share_thresholds(scores: np.ndarray, shares: Sequence[float]) -> np.ndarray:
    """Thresholds at quantiles of the router's scores: one per target share escalated.

    A fine-tuned model is over-confident, so a grid of raw thresholds crowds
    into the first few percent escalated; quantiles spread the curve from 0%
    to 100% whatever the calibration (RouteLLM calibrates the same way).
    Share k/n sits midway between the k-th and (k+1)-th smallest score; tied
    scores escalate together, so the achieved share can fall short of the
    target. Share 0 gives threshold 0 and share 1 threshold 1 (every review).
    """
    ordered = np.sort(np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0))
    n = len(ordered)
    thresholds = []
    for share in shares:
        k = int(round(float(share) * n))
        if k <= 0:
            thresholds.append(0.0)
        elif k >= n:
            thresholds.append(1.0)
        else:
            thresholds.append(float((ordered[k - 1] + ordered[k]) / 2))
    return np.unique(np.asarray(thresholds, dtype=np.float64))


def pick_for_share(thresholds: np.ndarray, shares: np.ndarray, target: float) -> int:
    """Index of the threshold whose escalated share is closest to `target` (ties: less escalation)."""
    distance = np.abs(np.asarray(shares) - target)
    best = np.flatnonzero(distance == distance.min())
    return int(best[np.argmin(np.asarray(shares)[best])])


def pick_for_metric(shares: np.ndarray, values: np.ndarray, target: float) -> tuple[int, bool]:
    """Index of the cheapest threshold whose metric reaches `target`, and whether any does.

    When none reaches it, the best-scoring threshold is returned with False,
    so the caller can say the target was out of reach.
    """
    shares, values = np.asarray(shares), np.asarray(values, dtype=np.float64)
    ok = np.flatnonzero(values >= target)
    if len(ok):
        return int(ok[np.argmin(shares[ok])]), True
    defined = ~np.isnan(values)  # a metric undefined everywhere: the cheapest threshold
    best = np.flatnonzero(values == np.max(values[defined])) if defined.any() else np.arange(len(values))
    return int(best[np.argmin(shares[best])]), False


def gap_recovered(quality: np.ndarray, small: float, large: float) -> np.ndarray:
    """Share of the small-to-large quality gap recovered: 0 at small-only, 1 at large-only."""
    return (np.asarray(quality, dtype=np.float64) - small) / (large - small)


def _anchored(
    shares: Sequence[float], quality: Sequence[float], small: float, large: float
) -> tuple[np.ndarray, np.ndarray]:
    """The curve sorted by share, with escalating nothing (small-only) and everything (large-only)."""
    x = np.concatenate([[0.0], np.asarray(shares, dtype=np.float64), [1.0]])
    y = np.concatenate([[small], np.asarray(quality, dtype=np.float64), [large]])
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def apgr(shares: Sequence[float], quality: Sequence[float], small: float, large: float) -> float | None:
    """Average performance gap recovered (RouteLLM): the area under gap-recovered vs share escalated.

    The curve is anchored at share 0 (small-only, 0 recovered) and share 1
    (large-only, all recovered) and integrated with the trapezoid rule. None
    when the large model is not better than the small one: there is no gap.
    """
    if not large > small:
        return None
    x, y = _anchored(shares, quality, small, large)
    pgr = gap_recovered(y, small, large)
    return float(np.sum((x[1:] - x[:-1]) * (pgr[1:] + pgr[:-1]) / 2))


def share_to_recover(
    shares: Sequence[float], quality: Sequence[float], small: float, large: float, fraction: float
) -> float | None:
    """The smallest escalated share on the curve that recovers `fraction` of the gap (None: no gap)."""
    if not large > small:
        return None
    x, y = _anchored(shares, quality, small, large)
    reached = np.flatnonzero(gap_recovered(y, small, large) >= fraction - 1e-12)
    return float(x[reached].min())
