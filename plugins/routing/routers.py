"""Routers: when should a hybrid ask its large model?

Each router turns the small model's probabilities into a confidence score and
escalates the examples scoring below a threshold. The defaults agree on binary
tasks (max probability 0.9 = margin 0.8 = normalised-entropy confidence 0.531);
they differ on multi-class tasks, where margin and entropy see the runner-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from harness import HarnessError, Register, RouterFactory, hookimpl


def max_probability(probs: np.ndarray) -> np.ndarray:
    return probs.max(axis=1)


def top_two_margin(probs: np.ndarray) -> np.ndarray:
    if probs.shape[1] < 2:
        return np.ones(len(probs))
    top = np.sort(probs, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]


def entropy_confidence(probs: np.ndarray) -> np.ndarray:
    """1 - normalised entropy: 1 for a one-hot row, 0 for a uniform one."""
    k = probs.shape[1]
    if k < 2:
        return np.ones(len(probs))
    clipped = np.clip(probs, 1e-12, 1.0)
    entropy = -(clipped * np.log(clipped)).sum(axis=1)
    return 1.0 - entropy / np.log(k)


class ThresholdRouter:
    """Escalates where score(probs) < threshold; threshold 1 escalates every review.

    Scores live in [0, 1], and a fine-tuned model's top probability can round
    to exactly 1, so without the rule no threshold would reach "always ask
    the large model" and a sweep's curve could not end at 100% escalated.
    """

    def __init__(self, name: str, score: Callable[[np.ndarray], np.ndarray], threshold: float) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise HarnessError(f"router {name!r}: threshold must be between 0 and 1, got {threshold}")
        self.name = f"{name}:{threshold:g}"
        self.score = score
        self.threshold = threshold

    def escalate(self, probs: np.ndarray) -> np.ndarray:
        scores = np.asarray(self.score(np.asarray(probs)))
        return np.ones(len(scores), dtype=bool) if self.threshold >= 1.0 else scores < self.threshold


def _factory(name: str, score: Callable[[np.ndarray], np.ndarray], default: float):
    def make(param: str | None) -> ThresholdRouter:
        try:
            threshold = float(param) if param not in (None, "") else default
        except ValueError:
            raise HarnessError(f"router {name!r}: threshold must be a number, got {param!r}") from None
        return ThresholdRouter(name, score, threshold)

    return make


def _learned(kind: str):
    def make(param: str | None) -> Any:
        from harness.plugins.routing._learned import LearnedRouter

        return LearnedRouter(kind, param)  # sklearn and the fitting code load only when one is used

    return make


@hookimpl
def register_routers(register: Register[RouterFactory]) -> None:
    register("confidence", _factory("confidence", max_probability, 0.9),
             description="escalate when the top probability is below the threshold (the study's, 0.9)")  # fmt: skip
    register("margin", _factory("margin", top_two_margin, 0.8),
             description="escalate when top-1 minus top-2 probability is below the threshold (0.8)")  # fmt: skip
    register("entropy", _factory("entropy", entropy_confidence, 0.531),
             description="escalate when 1 - normalised entropy is below the threshold (0.531)")  # fmt: skip
    register("learned", _learned("learned"),
             description="fitted in a hybrid on part of the train split: escalate where the small model is "
                         "likely wrong and the large right (learned:THRESHOLD or learned:share=S; share=0.2)")  # fmt: skip
    register("embedding", _learned("embedding"),
             description="as learned, also reading the small model's [CLS] embedding (classifiers only)")  # fmt: skip
