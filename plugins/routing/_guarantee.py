"""The sweep's --guarantee: a threshold certified on the calibration half, checked on the held-out half.

Also the coverage experiment that shows the certificate is worth having:
over many random calibration/held-out splits of the same reviews, how often
the certified threshold and the uncertified best-on-calibration pick meet
the target on the held-out half.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness.metrics import predictions
from harness.plugins.routing import _certify as certify
from harness.plugins.routing._replay import MetricFn, PairedPredictions, Point, evaluate, held_out_intervals


def escalate_at(scores: np.ndarray, threshold: float) -> np.ndarray:
    """The reviews a threshold router escalates (threshold 1: all of them)."""
    return np.ones(len(scores), dtype=bool) if threshold >= 1.0 else np.asarray(scores) < threshold


@dataclass
class _Arrays:
    """What certification reads from a pair: the router's scores, gold labels and both models' answers."""

    scores: np.ndarray
    gold: np.ndarray
    small: np.ndarray
    large: np.ndarray
    labels: int

    @classmethod
    def of(cls, pair: PairedPredictions, score: Callable[[np.ndarray], np.ndarray]) -> _Arrays:
        return cls(np.asarray(score(pair.small), dtype=np.float64), pair.gold, predictions(pair.small),
                   predictions(pair.large), pair.small.shape[1])  # fmt: skip

    def take(self, index: np.ndarray) -> _Arrays:
        return _Arrays(
            self.scores[index], self.gold[index], self.small[index], self.large[index], self.labels
        )

    def quality(self, metric: str, threshold: float) -> float:
        value = certify.quality(metric, self.scores, self.gold, self.small, self.large,
                                np.asarray([threshold]), self.labels)  # fmt: skip
        return float(value[0])

    def share(self, threshold: float) -> float:
        return float(escalate_at(self.scores, threshold).mean())


@dataclass
class CertifiedResult:
    """A certificate from the calibration half and what its threshold, and the uncertified pick, do held out."""

    certificate: certify.Certificate
    held_out: Point | None
    held_out_quality: float | None
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    best_on_calibration: float | None = None
    best_on_calibration_share: float | None = None
    best_on_calibration_held_out: float | None = None


def certify_on_halves(
    pair: PairedPredictions,
    calibration_half: np.ndarray,
    score: Callable[[np.ndarray], np.ndarray],
    guarantee: tuple[str, float],
    delta: float,
    metric_fn: MetricFn,
    *,
    resamples: int,
    seed: int,
    batch: int | None = None,
) -> CertifiedResult:
    """Certify on the calibration half; measure the certified and best-on-calibration thresholds held out."""
    metric, target = guarantee
    arrays = _Arrays.of(pair, score)
    calib, held = arrays.take(calibration_half), arrays.take(~calibration_half)
    certificate = certify.certify(metric, target, delta, calib.scores, calib.gold, calib.small, calib.large,
                                  calib.labels, seed, batch)  # fmt: skip
    naive = certify.best_on_calibration(metric, target, calib.scores, calib.gold, calib.small, calib.large,
                                        calib.labels)  # fmt: skip
    result = CertifiedResult(certificate, None, None, best_on_calibration=naive)
    if naive is not None:
        result.best_on_calibration_share = calib.share(naive)
        result.best_on_calibration_held_out = held.quality(metric, naive)
    if certificate.threshold is not None:
        held_pair = pair.subset(~calibration_half)
        escalate = escalate_at(held.scores, certificate.threshold)
        result.held_out = evaluate(held_pair, escalate, metric_fn, "certified", certificate.threshold)
        result.held_out_quality = held.quality(metric, certificate.threshold)
        result.intervals = held_out_intervals(held_pair, escalate, metric_fn, resamples=resamples, seed=seed)
    return result


@dataclass
class Tally:
    """How often one way of picking promised the target, how often the held-out half missed it, and its cost."""

    promised: int = 0
    missed: int = 0
    shares: list[float] = field(default_factory=list)

    def add(self, held: _Arrays, metric: str, target: float, threshold: float | None) -> None:
        if threshold is not None:
            self.promised += 1
            self.missed += held.quality(metric, threshold) < target
            self.shares.append(held.share(threshold))

    @property
    def share(self) -> float | None:
        return float(np.mean(self.shares)) if self.shares else None


@dataclass
class CoverageRow:
    """One delta over many random splits: the population certificate, the batch one, the calibration pick."""

    delta: float
    splits: int
    batch: int
    certified: Tally
    batch_certified: Tally
    best_on_calibration: Tally


def coverage(
    pair: PairedPredictions,
    score: Callable[[np.ndarray], np.ndarray],
    guarantee: tuple[str, float],
    deltas: list[float],
    splits: int,
    seed: int,
) -> list[CoverageRow]:
    """Certify and pick on a random half, check both on the other half; the same splits for every delta.

    A miss is a split where the pick claimed the target (a certificate, or a
    calibration value reaching it) and the held-out half falls short. The
    batch certificate (a batch the size of the held-out half, accuracy only)
    promises misses in at most delta of the splits; the population one
    promises the population's accuracy, which a finite half scatters around.
    """
    metric, target = guarantee
    arrays = _Arrays.of(pair, score)
    n = len(pair)
    rng = np.random.default_rng(seed)
    halves = [(arrays.take(order[: n // 2]), arrays.take(order[n // 2 :])) for order in
              (rng.permutation(n) for _ in range(splits))]  # fmt: skip
    naive = Tally()
    for calib, held in halves:
        naive.add(held, metric, target, certify.best_on_calibration(
            metric, target, calib.scores, calib.gold, calib.small, calib.large, calib.labels))  # fmt: skip
    batch = n - n // 2
    rows = []
    for delta in deltas:
        plain, batched = Tally(), Tally()
        for calib, held in halves:
            args = (calib.scores, calib.gold, calib.small, calib.large, calib.labels, seed)
            plain.add(held, metric, target, certify.certify(metric, target, delta, *args).threshold)
            if metric == "accuracy":
                batched.add(
                    held, metric, target, certify.certify(metric, target, delta, *args, batch).threshold
                )
        rows.append(CoverageRow(delta, splits, batch, plain, batched, naive))
    return rows
