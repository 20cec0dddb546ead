"""Cheap reference rows for the leaderboard: VADER and TF-IDF + logistic regression.

They show what a lexicon or a bag of words already achieves, so the cost of a
neural model can be weighed against what it adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness import Example, HarnessError, ModelContext, ModelFactory, ModelOutput, Register, Task, hookimpl
from harness.plugins.models._finetune import digest, train_data_hash

if TYPE_CHECKING:
    import numpy as np


VADER_MAX_CHARS = 5000


def _head_and_tail(text: str) -> tuple[str, bool]:
    """VADER's time grows with the square of the text length: score a long review's start and end."""
    if len(text) <= VADER_MAX_CHARS:
        return text, False
    head = VADER_MAX_CHARS // 4
    return text[:head] + " " + text[len(text) - (VADER_MAX_CHARS - head) :], True


class VaderModel:
    """VADER's compound score in [-1, 1] turned into [negative, positive] probabilities.

    ``p(positive) = (compound + 1) / 2``: a lexicon score, not a calibrated
    probability, but monotone, so thresholds and routers work on it.
    """

    name = "vader"

    def __init__(self) -> None:
        self._analyzer: Any = None

    def checkpoints(self, task: Task) -> list[str]:
        """No weights to load; raises for a task that is not negative/positive (for preflight)."""
        _polarity_columns(task)
        return []

    def predict(self, texts: Sequence[str], task: Task) -> ModelOutput:
        """Probabilities [n, 2] in the task's label order; only for a negative/positive task."""
        import numpy as np

        positive, negative = _polarity_columns(task)
        if self._analyzer is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            self._analyzer = SentimentIntensityAnalyzer()
        fitted = [_head_and_tail(t) for t in texts]
        compound = np.array(
            [self._analyzer.polarity_scores(t)["compound"] for t, _ in fitted], dtype=np.float64
        )
        probs = np.zeros((len(texts), 2), dtype=np.float32)
        probs[:, positive] = (compound + 1.0) / 2.0
        probs[:, negative] = 1.0 - probs[:, positive]
        return ModelOutput(probs=probs, truncated=[cut for _, cut in fitted])

    def fingerprint(self) -> str:
        """VADER has no settings; its lexicon version is its identity."""
        from importlib.metadata import version

        return f"vader-{version('vaderSentiment')}"


def _polarity_columns(task: Task) -> tuple[int, int]:
    lowered = [label.lower() for label in task.labels]
    if sorted(lowered) != ["negative", "positive"]:
        raise HarnessError(
            f"vader scores sentiment polarity only; the {task.name} task has labels {', '.join(task.labels)}"
        )
    return lowered.index("positive"), lowered.index("negative")


class TfidfLogreg:
    """Word and bigram TF-IDF features with a logistic regression, trained on the task's train split."""

    name = "tfidf-logreg"

    def __init__(self) -> None:
        self._fitted: dict[str, tuple[Any, str]] = {}

    def fit(self, train: Sequence[Example], task: Task) -> None:
        """Train on `train`; needs at least two of the task's labels among the examples."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        if len({e.label for e in train}) < 2:
            raise HarnessError(
                f"tfidf-logreg needs a train split with at least two labels; the {task.name} task gave "
                f"{len(train)} train examples"
            )
        pipeline = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
            # Balanced weights: small train splits are skewed (the demo's polarity is 2:1 positive),
            # and an unweighted fit there predicts only the majority label.
            # lbfgs is deterministic (no random_state), so the fit depends on the train data alone.
            LogisticRegression(max_iter=1000, C=10.0, class_weight="balanced"),
        )
        pipeline.fit([e.text for e in train], [e.label for e in train])
        self._fitted[task.fingerprint()] = (pipeline, train_data_hash(train))

    def predict(self, texts: Sequence[str], task: Task) -> np.ndarray:
        """Probabilities [n, k] in the task's label order; labels absent from training get 0."""
        import numpy as np

        fitted = self._fitted.get(task.fingerprint())
        if fitted is None:
            raise HarnessError(
                f"tfidf-logreg must be trained on the {task.name} task's train split before predict"
            )
        pipeline = fitted[0]
        probs = np.zeros((len(texts), len(task.labels)), dtype=np.float32)
        if texts:
            probs[:, pipeline.classes_] = pipeline.predict_proba(list(texts))
        return probs

    def fingerprint(self) -> str:
        """After training, the train data the model learned from (the fit has no other randomness)."""
        return self._fingerprint({key: data for key, (_, data) in self._fitted.items()})

    def fitted_fingerprint(self, train: Sequence[Example], task: Task) -> str:
        """The fingerprint `fit(train, task)` gives, without fitting: a rerun whose answers are cached skips it."""
        trained = {key: data for key, (_, data) in self._fitted.items()}
        return self._fingerprint({**trained, task.fingerprint(): train_data_hash(train)})

    @staticmethod
    def _fingerprint(trained: dict[str, str]) -> str:
        return f"tfidf-logreg-{digest({'trained': dict(sorted(trained.items()))})}"


def make_vader(arg: str | None, ctx: ModelContext) -> VaderModel:
    """VADER takes no argument: its lexicon is fixed."""
    if arg:
        raise HarnessError(f"vader takes no argument (got vader:{arg})")
    return VaderModel()


def make_tfidf_logreg(arg: str | None, ctx: ModelContext) -> TfidfLogreg:
    """TF-IDF + logistic regression; it depends on the seed only through the train split."""
    if arg:
        raise HarnessError(f"tfidf-logreg takes no argument (got tfidf-logreg:{arg})")
    return TfidfLogreg()


@hookimpl
def register_models(register: Register[ModelFactory]) -> None:
    register(
        "vader",
        make_vader,
        tasks=["polarity"],
        description="VADER lexicon sentiment (polarity only): a cheap reference row",
    )
    register(
        "tfidf-logreg",
        make_tfidf_logreg,
        description="TF-IDF + logistic regression trained on the task's train split: a cheap reference row",
    )
