"""Certified routing thresholds: Learn-then-Test with fixed-sequence testing and exact binomial p-values.

A threshold picked because it reached 0.90 accuracy on calibration reviews
reaches it on new reviews only about half the time when its true accuracy
is near 0.90. Learn-then-Test (Angelopoulos et al., 2021) turns the choice
into multiple testing: each threshold t carries the null hypothesis "the
hybrid's error rate at t exceeds alpha = 1 - target", and the thresholds the
procedure rejects are certified, so that with probability at least 1 - delta
over the calibration sample every certified threshold meets the target on
the population the reviews come from.

The thresholds are tested in a fixed order by escalation share, from most
to least escalated, and testing stops at the first that fails; the last
certified threshold escalates least, and as a lower threshold escalates a
subset of the reviews a higher one does, it is also the cheapest in
dollars whatever each review costs (the sweep reports those dollars); each test
runs at level delta with no multiplicity penalty, so the grid can be as
fine as we like. The grid is fixed in advance (it never looks at the
calibration reviews), and so is the order: a seeded quarter of the
calibration reviews only picks where the sequence starts (the threshold
of best quality there: escalating everything when the large model is the
better one, less when it is worse overall but better on the small model's
unsure reviews), and the other three quarters run the tests. A review's loss is 0 or
1 (the hybrid got it wrong), so the error count at a threshold is binomial
and P(Binomial(n, alpha) <= errors) is an exact p-value: tighter than
Hoeffding-Bentkus, which is built for losses in [0, 1].

That promise is about the population: on a finite batch of new reviews
the accuracy scatters around the population's, so a threshold whose true
accuracy is just above the target misses it on about half of the batches.
A promise for a batch of m new reviews ("next month's 5,000") spends half
of delta on the population, certifying a stricter error rate alpha', and
half on the batch: alpha' is the largest rate at which a binomial batch of
m exceeds alpha with probability delta / 2 at most.

Per-class accuracy ("class_accuracy>=0.9": every class's accuracy, i.e. its
recall) tests each class on its own reviews and takes the largest p-value:
the null "some class misses" is a union, and the largest p-value is valid
for it with no correction. Macro-F1 is refused: it is a ratio of counts
whose denominators depend on the predictions, not a mean of per-review
losses, so no binomial bound applies to it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from harness import HarnessError

METRICS = ("accuracy", "class_accuracy")
ORDERING_SHARE = 0.25


def parse_guarantee(text: str) -> tuple[str, float]:
    """`accuracy>=0.9` -> ("accuracy", 0.9); macro-F1 and other metrics are refused with the reason."""
    name, sep, value = text.partition(">=")
    name = name.strip()
    try:
        target = float(value)
        if not sep or not name or not 0.0 < target < 1.0:
            raise ValueError
    except ValueError:
        raise HarnessError(
            f"--guarantee {text!r} must look like METRIC>=VALUE with VALUE in (0, 1), e.g. accuracy>=0.9"
        ) from None
    if name == "macro_f1":
        raise HarnessError(
            "macro_f1 cannot be certified: it is a ratio of counts, not a mean of per-review losses, so no "
            "binomial bound holds for it; certify accuracy or class_accuracy (every class's accuracy) instead"
        )
    if name not in METRICS:
        raise HarnessError(f"--guarantee can certify {' or '.join(METRICS)}, not {name!r}")
    return name, target


def threshold_grid() -> np.ndarray:
    """The fixed thresholds tested, most escalating first: 1 (every review), then down to 0.

    Steps of 0.001 across [0, 1], and steps of a few parts per billion to a
    thousandth just below 1, where an over-confident model's scores pile up.
    """
    near_one = 1.0 - np.logspace(-9, -3, 601)
    return np.unique(np.concatenate([np.linspace(0.0, 1.0, 1001), near_one]))[::-1]


def escalated_counts(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many reviews each threshold escalates (score below it; threshold 1 escalates all)."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    counts = np.searchsorted(ordered, thresholds, side="left")
    return np.where(thresholds >= 1.0, len(ordered), counts)


def error_counts(
    scores: np.ndarray, small_right: np.ndarray, large_right: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """The hybrid's errors at every threshold: the large model's on escalated reviews, the small one's on the rest."""
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")
    large_wrong = np.concatenate([[0], np.cumsum(~np.asarray(large_right, dtype=bool)[order])])
    small_wrong = np.concatenate([[0], np.cumsum(~np.asarray(small_right, dtype=bool)[order])])
    k = escalated_counts(scores, thresholds)
    return large_wrong[k] + small_wrong[-1] - small_wrong[k]


def binomial_p_value(errors: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """P(Binomial(n, alpha) <= errors): small when the error rate is credibly below alpha."""
    from scipy.stats import binom

    if n == 0:
        return np.ones(np.shape(errors))
    return np.asarray(binom.cdf(errors, n, alpha), dtype=np.float64)


def batch_alpha(alpha: float, batch: int, delta: float) -> float:
    """The population error rate at which a batch of `batch` reviews exceeds alpha with probability delta at most.

    The largest a with P(Binomial(batch, a) > alpha * batch) <= delta, by bisection.
    """
    from scipy.stats import binom

    allowed = int(np.floor(alpha * batch + 1e-9))
    low, high = 0.0, alpha
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if binom.sf(allowed, batch, mid) <= delta else (low, mid)
    return low


def batch_bound(population_bound: float, batch: int, level: float) -> float:
    """The accuracy a batch keeps with probability 1 - level when the population's is at least the bound."""
    from scipy.stats import binom

    return 1.0 - float(binom.ppf(1.0 - level, batch, 1.0 - population_bound)) / batch


def accuracy_lower_bound(errors: int, n: int, delta: float) -> float:
    """One-sided Clopper-Pearson lower bound on accuracy at level 1 - delta."""
    from scipy.stats import beta

    if n == 0:
        return 0.0
    return 0.0 if errors >= n else float(1.0 - beta.ppf(1.0 - delta, errors + 1, n - errors))


def reviews_needed(error_rate: float, alpha: float, delta: float, limit: int = 10**7) -> int | None:
    """About how many calibration reviews certify a threshold whose error rate is `error_rate`.

    The smallest n at which the observed errors, n * error_rate, give a
    p-value at most delta; None when the error rate is not below alpha (no
    sample size helps) or the answer exceeds `limit`.
    """
    if not error_rate < alpha:
        return None

    def passes(n: int) -> bool:
        return float(binomial_p_value(np.asarray(np.floor(n * error_rate)), n, alpha)) <= delta

    high = 1
    while not passes(high):
        high *= 2
        if high > limit:
            return None
    low = high // 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if passes(mid) else (mid, high)
    return high


@dataclass
class Groups:
    """The reviews each guarantee is checked on: all of them, or each class's own."""

    masks: list[np.ndarray]

    @classmethod
    def of(cls, metric: str, gold: np.ndarray, n_labels: int) -> Groups:
        gold = np.asarray(gold)
        if metric == "accuracy":
            return cls([np.ones(len(gold), dtype=bool)])
        return cls([gold == label for label in range(n_labels)])


def quality(
    metric: str, scores: np.ndarray, gold: np.ndarray, small_pred: np.ndarray, large_pred: np.ndarray,
    thresholds: np.ndarray, n_labels: int,
) -> np.ndarray:  # fmt: skip
    """Accuracy, or the lowest per-class accuracy, of the hybrid at every threshold."""
    small_right, large_right = small_pred == gold, large_pred == gold
    values = []
    for mask in Groups.of(metric, gold, n_labels).masks:
        if mask.any():
            errors = error_counts(scores[mask], small_right[mask], large_right[mask], thresholds)
            values.append(1.0 - errors / mask.sum())
    return np.min(values, axis=0)


@dataclass
class Certificate:
    """What Learn-then-Test certified on the calibration reviews (threshold None: nothing).

    `start` is the threshold the test sequence began at (picked on the
    ordering reviews); `observed_error` is the testing reviews' error rate
    there, and `reviews_needed` the calibration reviews that would certify it.
    """

    metric: str
    target: float
    delta: float
    n_calibration: int
    n_ordering: int
    batch: int | None
    start: float
    start_share: float
    threshold: float | None
    share: float | None
    calibration_quality: float | None
    bound: float | None
    p_value: float | None
    reviews_needed: int | None
    observed_error: float


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded quarter of the calibration reviews orders the tests; the rest runs them."""
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * ORDERING_SHARE)) if n >= 8 else 0
    return order[:cut], order[cut:]


def certify(
    metric: str,
    target: float,
    delta: float,
    scores: np.ndarray,
    gold: np.ndarray,
    small_pred: np.ndarray,
    large_pred: np.ndarray,
    n_labels: int,
    seed: int = 0,
    batch: int | None = None,
) -> Certificate:
    """The least escalating threshold certified to reach `target` with probability 1 - delta.

    The sequence starts where the ordering reviews put the best quality and
    walks down the grid (less and less escalation) on the testing reviews,
    stopping at the first threshold whose p-value exceeds delta. When
    nothing is certified, estimates how many calibration reviews the start
    would need at its observed error rate (per class for class_accuracy).
    With `batch`, the promise is for the accuracy of a batch of that many new
    reviews (hypergeometric p-values) instead of the population's.
    """
    if batch is not None and metric != "accuracy":
        raise HarnessError("a guarantee for a batch of new reviews covers accuracy only")
    if not 0.0 < delta < 1.0:
        raise HarnessError(f"--delta must be between 0 and 1, got {delta}")
    # For a batch, half of delta covers the population and half the batch's own scatter around it.
    level = delta if batch is None else delta / 2
    alpha = 1.0 - target if batch is None else batch_alpha(1.0 - target, batch, level)
    scores, gold = np.asarray(scores, dtype=np.float64), np.asarray(gold)
    small_pred, large_pred = np.asarray(small_pred), np.asarray(large_pred)
    grid = threshold_grid()
    ordering, testing = _split(len(gold), seed)
    start = 0
    if len(ordering):
        found = quality(metric, scores[ordering], gold[ordering], small_pred[ordering], large_pred[ordering],
                        grid, n_labels)  # fmt: skip
        start = int(np.argmax(found))  # the first best: on ties, the most escalating
    sequence = grid[start:]
    scores, gold, small_pred, large_pred = (
        scores[testing],
        gold[testing],
        small_pred[testing],
        large_pred[testing],
    )
    small_right, large_right = small_pred == gold, large_pred == gold
    counted = []  # (errors at every threshold of the sequence, reviews) per group
    for mask in Groups.of(metric, gold, n_labels).masks:
        errors = error_counts(scores[mask], small_right[mask], large_right[mask], sequence)
        counted.append((errors, int(mask.sum())))
    p_value = np.max([binomial_p_value(errors, n, alpha) for errors, n in counted], axis=0)
    failed = np.flatnonzero(p_value > level)
    passed = len(sequence) if not len(failed) else int(failed[0])
    rates = [float(errors[0]) / n if n else 1.0 for errors, n in counted]
    nothing = Certificate(
        metric=metric, target=target, delta=delta, n_calibration=len(gold) + len(ordering),
        n_ordering=len(ordering), batch=batch, start=float(grid[start]),
        start_share=float(escalated_counts(scores, grid[start : start + 1])[0]) / max(len(gold), 1),
        threshold=None, share=None, calibration_quality=None, bound=None, p_value=float(p_value[0]),
        reviews_needed=None, observed_error=max(rates),
    )  # fmt: skip
    if passed == 0:
        needed = _total_needed(
            [reviews_needed(rate, alpha, level) for rate in rates], [n for _, n in counted]
        )
        return replace(
            nothing, reviews_needed=None if needed is None else int(np.ceil(needed / (1 - ORDERING_SHARE)))
        )
    last = passed - 1
    value = quality(metric, scores, gold, small_pred, large_pred, sequence[last : last + 1], n_labels)[0]
    bound = min(accuracy_lower_bound(int(errors[last]), n, level) for errors, n in counted)
    return replace(
        nothing,
        threshold=float(sequence[last]),
        share=float(escalated_counts(scores, sequence[last : last + 1])[0]) / len(gold),
        calibration_quality=float(value),
        bound=bound if batch is None else batch_bound(bound, batch, level),
        p_value=float(p_value[last]),
    )


def _total_needed(per_group: list[int | None], sizes: list[int]) -> int | None:
    """Reviews in all, at the calibration's class mix, for every group to get the count it needs."""
    if any(count is None or size == 0 for count, size in zip(per_group, sizes, strict=True)):
        return None
    total = sum(sizes)
    return max(
        int(np.ceil(count * total / size)) for count, size in zip(per_group, sizes, strict=True) if count
    )


def best_on_calibration(
    metric: str, target: float, scores: np.ndarray, gold: np.ndarray, small_pred: np.ndarray,
    large_pred: np.ndarray, n_labels: int,
) -> float | None:  # fmt: skip
    """The uncertified pick: the least escalating grid threshold whose calibration quality reaches `target`."""
    grid = threshold_grid()
    values = quality(metric, np.asarray(scores, dtype=np.float64), np.asarray(gold), small_pred, large_pred,
                     grid, n_labels)  # fmt: skip
    reached = np.flatnonzero(values >= target)
    if not len(reached):
        return None
    shares = escalated_counts(scores, grid[reached])
    return float(grid[reached][_least(shares)])


def _least(shares: np.ndarray) -> int:
    """Index of the smallest share, the last such in grid order (the lowest threshold) on ties."""
    return int(len(shares) - 1 - np.argmin(shares[::-1]))
