"""A review-harness model plugin: polarity from counts of positive and negative words."""

import hashlib
import json

import numpy as np

from harness import ModelFactory, Option, OptionSet, Register, hookimpl

POSITIVE = ["great", "love", "excellent", "perfect", "happy", "recommend", "best", "works", "good"]
NEGATIVE = ["broke", "terrible", "waste", "refund", "worst", "poor", "disappointed", "bad", "returned"]

OPTIONS = OptionSet(
    Option("smoothing", float, 1.0, "added to both counts: no keyword at all is 50/50", minimum=0.01),
)


class KeywordModel:
    """Counts keywords; the harness calls predict() with batches of review texts."""

    def __init__(self, smoothing: float) -> None:
        self.name = "keywords"
        self.smoothing = smoothing

    def predict(self, texts, task):
        """Probabilities [len(texts), 2] in the task's label order: negative, positive."""
        rows = []
        for text in texts:
            words = [word.strip(".,!?") for word in text.lower().split()]
            positive = sum(word in POSITIVE for word in words) + self.smoothing
            negative = sum(word in NEGATIVE for word in words) + self.smoothing
            rows.append([negative / (positive + negative), positive / (positive + negative)])
        return np.array(rows)

    def fingerprint(self):
        """Everything that changes predictions, each word list under its own key: the cache keys on it."""
        settings = {"positive": POSITIVE, "negative": NEGATIVE, "smoothing": self.smoothing}
        return "keywords-" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def make_model(arg, ctx):
    """The factory: `arg` is the text after "keywords:" in the spec, `ctx.options` the user's options."""
    values = OPTIONS.parse(ctx.options)
    return KeywordModel(values["smoothing"])


@hookimpl
def register_models(register: Register[ModelFactory]) -> None:
    register(
        "keywords",
        make_model,
        description="counts positive and negative keywords",
        options=OPTIONS,
        tasks=["polarity"],
    )
