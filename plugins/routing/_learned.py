"""A learned router, and the held-out comparison that says whether it beats the confidence rules.

The confidence router escalates what the small model is unsure of, but
escalating only pays where the small model is wrong and the large one right.
The learned router predicts exactly that, with a logistic regression fitted
on the calibration half from the small model's probabilities (top
probability, margin, entropy, the probabilities themselves) and cheap review
features (length, count of negations, which small models misread). Its score
is 1 - P(escalating helps), so it escalates below a threshold like the other
routers, and every router is compared on the held-out half only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.plugins.routing import _calibration as calibration
from harness.plugins.routing._replay import MetricFn, PairedPredictions, hybrid_probs
from harness.plugins.routing.routers import entropy_confidence, max_probability, top_two_margin

NEGATION = re.compile(
    r"\b(?:not|no|never|nothing|none|nobody|neither|nor|cannot|without|hardly)\b|n't\b", re.I
)
RULES = {"confidence": max_probability, "margin": top_two_margin, "entropy": entropy_confidence}


def review_features(texts: Sequence[str], probs: np.ndarray) -> np.ndarray:
    """One row per review: the small model's probability features, then log length and negations."""
    probs = np.asarray(probs, dtype=np.float64)
    lengths = np.log1p([len(text) for text in texts])
    negations = np.asarray([len(NEGATION.findall(text)) for text in texts], dtype=np.float64)
    return np.column_stack([probs, max_probability(probs), top_two_margin(probs), entropy_confidence(probs),
                            lengths, np.log1p(negations)])  # fmt: skip


def escalation_helps(pair: PairedPredictions) -> np.ndarray:
    """True where the small model is wrong and the large one right."""
    return (pair.small.argmax(axis=1) != pair.gold) & (pair.large.argmax(axis=1) == pair.gold)


class LearnedRouter:
    """Logistic regression on review features; score = 1 - predicted chance that escalating helps."""

    def __init__(self, pair: PairedPredictions) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        helps = escalation_helps(pair)
        self.model = None
        if 0 < helps.sum() < len(helps):  # with one outcome only, nothing to learn: every score is equal
            self.model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
            self.model.fit(review_features(pair.texts, pair.small), helps)

    def score(self, pair: PairedPredictions) -> np.ndarray:
        if self.model is None:
            return np.ones(len(pair))
        return 1.0 - self.model.predict_proba(review_features(pair.texts, pair.small))[:, 1]


@dataclass
class RouterScore:
    """A router's held-out APGR and the share it escalates for 50% and 80% of the gap."""

    router: str
    apgr: float | None
    share_for_50: float | None
    share_for_80: float | None


def held_out_curve(
    pair: PairedPredictions, scores: np.ndarray, metric_fn: MetricFn, metric: str, shares: Sequence[float]
) -> tuple[list[float], list[float]]:
    """Share escalated and quality when escalating the lowest scores, at every share of the grid."""
    from harness.plugins.routing._guarantee import escalate_at

    x, y = [], []
    for threshold in calibration.share_thresholds(scores, shares):
        escalate = escalate_at(scores, float(threshold))
        x.append(float(escalate.mean()))
        y.append(metric_fn(pair.gold, hybrid_probs(pair, escalate))[metric])
    return x, y


def compare_routers(
    pair: PairedPredictions,
    calibration_half: np.ndarray,
    metric_fn: MetricFn,
    metric: str,
    shares: Sequence[float],
) -> list[RouterScore]:
    """The rule routers and the learned one (fitted on the calibration half), scored on the held-out half."""
    calib, held = pair.subset(calibration_half), pair.subset(~calibration_half)
    low = metric_fn(held.gold, held.small)[metric]
    high = metric_fn(held.gold, held.large)[metric]
    scores = {name: rule(held.small) for name, rule in RULES.items()}
    scores["learned"] = LearnedRouter(calib).score(held)
    rows = []
    for name, score in scores.items():
        x, y = held_out_curve(held, score, metric_fn, metric, shares)
        rows.append(RouterScore(
            router=name, apgr=calibration.apgr(x, y, low, high),
            share_for_50=calibration.share_to_recover(x, y, low, high, 0.5),
            share_for_80=calibration.share_to_recover(x, y, low, high, 0.8),
        ))  # fmt: skip
    return rows
