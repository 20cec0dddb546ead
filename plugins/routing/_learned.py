"""Learned routers, and the held-out comparison that says whether they beat the confidence rules.

The confidence router escalates what the small model is unsure of, but
escalating only pays where the small model is wrong and the large one right.
The learned routers predict exactly that, with a logistic regression fitted
on calibration reviews: `learned` from the small model's probabilities (top
probability, margin, entropy, the probabilities themselves) and cheap review
features (length, count of negations, which small models misread);
`embedding` from the same features plus the small model's review embedding
(a classifier's [CLS] state, reduced to its main directions on the
calibration reviews, as a few hundred reviews cannot fit hundreds of
weights). A router's score is 1 - P(escalating helps), so it escalates below
a threshold like the other routers; the sweep compares every router on the
held-out half only, and a hybrid fits its router on a calibration part of
the train split, never on the reviews it scores.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import HarnessError, ModelOutput, predictions
from harness.plugins.routing import _calibration as calibration
from harness.plugins.routing._replay import MetricFn, PairedPredictions, hybrid_probs
from harness.plugins.routing.routers import entropy_confidence, max_probability, top_two_margin

NEGATION = re.compile(
    r"\b(?:not|no|never|nothing|none|nobody|neither|nor|cannot|without|hardly)\b|n't\b", re.I
)
RULES = {"confidence": max_probability, "margin": top_two_margin, "entropy": entropy_confidence}
EMBEDDING_COMPONENTS = 16


def review_features(texts: Sequence[str], probs: np.ndarray) -> np.ndarray:
    """One row per review: the small model's probability features, then log length and negations."""
    probs = np.asarray(probs, dtype=np.float64)
    lengths = np.log1p([len(text) for text in texts])
    negations = np.asarray([len(NEGATION.findall(text)) for text in texts], dtype=np.float64)
    return np.column_stack([probs, max_probability(probs), top_two_margin(probs), entropy_confidence(probs),
                            lengths, np.log1p(negations)])  # fmt: skip


def escalation_helps(gold: np.ndarray, small: np.ndarray, large: np.ndarray) -> np.ndarray:
    """True where the small model is wrong and the large one right."""
    return (predictions(small) != gold) & (predictions(large) == gold)


class HelpPredictor:
    """Logistic regression on review features (and embeddings); score = 1 - predicted chance escalating helps."""

    def __init__(self, embeddings: bool = False) -> None:
        self.embeddings = embeddings
        self.reduce: Any = None
        self.model: Any = None

    def _features(self, texts: Sequence[str], probs: np.ndarray, vectors: np.ndarray | None) -> np.ndarray:
        features = review_features(texts, probs)
        if not self.embeddings:
            return features
        if vectors is None:
            raise HarnessError("the embedding router needs a small model that returns review embeddings "
                               "(the classifiers do); this one returns none")  # fmt: skip
        return np.hstack([features, self.reduce.transform(np.asarray(vectors, dtype=np.float64))])

    def fit(
        self, texts: Sequence[str], probs: np.ndarray, vectors: np.ndarray | None, helps: np.ndarray
    ) -> dict[str, Any]:
        """Fit on calibration reviews; returns what the fit saw, for results.json."""
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.embeddings and vectors is not None:
            components = max(1, min(EMBEDDING_COMPONENTS, len(texts) - 1, np.asarray(vectors).shape[1]))
            self.reduce = make_pipeline(StandardScaler(), PCA(components, random_state=0))
            self.reduce.fit(np.asarray(vectors, dtype=np.float64))
        features = self._features(texts, probs, vectors)
        self.model = None
        if 0 < helps.sum() < len(helps):  # with one outcome only, nothing to learn: every score is equal
            self.model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
            self.model.fit(features, helps)
        weights = [] if self.model is None else self.model[-1].coef_.ravel().round(6).tolist()
        return {
            "calibration_reviews": len(texts),
            "escalation_helps": int(helps.sum()),
            "features": int(features.shape[1]),
            "fitted": self.model is not None,
            "digest": hashlib.sha256(repr(weights).encode()).hexdigest()[:16],
        }

    def score(self, texts: Sequence[str], probs: np.ndarray, vectors: np.ndarray | None) -> np.ndarray:
        if self.model is None:
            return np.ones(len(texts))
        return np.asarray(1.0 - self.model.predict_proba(self._features(texts, probs, vectors))[:, 1])


def fit_on_pair(pair: PairedPredictions, embeddings: bool = False) -> HelpPredictor:
    predictor = HelpPredictor(embeddings)
    predictor.fit(
        pair.texts, pair.small, pair.small_embeddings, escalation_helps(pair.gold, pair.small, pair.large)
    )
    return predictor


class LearnedRouter:
    """A router for `harness run` hybrids: `learned:0.3` escalates below score 0.3, `learned:share=0.2`
    escalates the share of calibration reviews it is told to; fitted by the hybrid (see `LearnsToRoute`)."""

    def __init__(self, kind: str, param: str | None) -> None:
        self.kind = kind
        self.predictor = HelpPredictor(embeddings=kind == "embedding")
        self.share: float | None = None
        self.threshold: float | None = None
        self.fitted = False
        text = (param or "share=0.2").strip()
        try:
            if text.startswith("share="):
                self.share = float(text.removeprefix("share="))
                value = self.share
            else:
                self.threshold = value = float(text)
        except ValueError:
            raise HarnessError(f"router {kind!r}: give a threshold (e.g. {kind}:0.3) or a share to escalate "
                               f"(e.g. {kind}:share=0.2), got {param!r}") from None  # fmt: skip
        if not 0.0 <= value <= 1.0:
            raise HarnessError(f"router {kind!r}: {text} must be between 0 and 1")
        self.name = f"{kind}:{text}"

    def fit(
        self, texts: Sequence[str], small: ModelOutput, large: ModelOutput, gold: np.ndarray
    ) -> dict[str, Any]:
        small_probs, large_probs = np.asarray(small.probs), np.asarray(large.probs)
        helps = escalation_helps(gold, small_probs, large_probs)
        record = self.predictor.fit(texts, small_probs, small.embeddings, helps)
        if self.predictor.model is None:
            raise HarnessError(f"router {self.name!r} has nothing to learn: escalating helps on {int(helps.sum())} "
                               f"of the {len(texts)} calibration reviews; give the task a larger train split")  # fmt: skip
        scores = self.predictor.score(texts, small_probs, small.embeddings)
        if self.share is not None:
            self.threshold = float(calibration.share_thresholds(scores, [self.share])[0])
        self.fitted = True
        return {**record, "router": self.name, "threshold": self.threshold,
                "calibration_share_escalated": float(self._below(scores).mean())}  # fmt: skip

    def _below(self, scores: np.ndarray) -> np.ndarray:
        from harness.plugins.routing._guarantee import escalate_at

        assert self.threshold is not None
        return escalate_at(scores, self.threshold)

    def escalate_outputs(self, texts: Sequence[str], small: ModelOutput) -> np.ndarray:
        if not self.fitted:
            raise HarnessError(f"router {self.name!r} is not fitted: it learns from the task's train split, "
                               "which this run has none of")  # fmt: skip
        return self._below(self.predictor.score(texts, np.asarray(small.probs), small.embeddings))

    def escalate(self, probs: np.ndarray) -> np.ndarray:
        raise HarnessError(
            f"router {self.name!r} reads the reviews, not only probabilities: use it in a hybrid"
        )


@dataclass
class RouterScore:
    """A router's held-out APGR, the share it escalates for 50% and 80% of the gap, and its best point.

    The best point still compares routers when the large model is worse
    overall and there is no gap to recover, but better on some reviews.
    """

    router: str
    apgr: float | None
    share_for_50: float | None
    share_for_80: float | None
    best_quality: float
    best_share: float


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
    """The rule routers and the learned ones (fitted on the calibration half), scored on the held-out half.

    The embedding router joins when the small model's predictions carry embeddings.
    """
    calib, held = pair.subset(calibration_half), pair.subset(~calibration_half)
    low = metric_fn(held.gold, held.small)[metric]
    high = metric_fn(held.gold, held.large)[metric]
    scores = {name: rule(held.small) for name, rule in RULES.items()}
    scores["learned"] = fit_on_pair(calib).score(held.texts, held.small, None)
    if pair.small_embeddings is not None:
        scores["embedding"] = fit_on_pair(calib, embeddings=True).score(held.texts, held.small,
                                                                       held.small_embeddings)  # fmt: skip
    rows = []
    for name, score in scores.items():
        x, y = held_out_curve(held, score, metric_fn, metric, shares)
        best = int(np.argmax(y))  # the first best: on ties, the least escalating
        rows.append(RouterScore(
            router=name, apgr=calibration.apgr(x, y, low, high),
            share_for_50=calibration.share_to_recover(x, y, low, high, 0.5),
            share_for_80=calibration.share_to_recover(x, y, low, high, 0.8),
            best_quality=float(y[best]), best_share=float(x[best]),
        ))  # fmt: skip
    return rows
