"""The cheap reference rows: VADER on obvious reviews, TF-IDF + logistic regression on a toy set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.plugins.models import baselines
from harness.types import Example
from tests.tiny_encoders import FakeTask, make_ctx

CATEGORY = FakeTask("category", ("book", "kitchen", "toy"))
CATEGORY_TRAIN = [
    Example(str(i), text, label)
    for i, (text, label) in enumerate(
        [
            ("a gripping novel with memorable characters", 0),
            ("the author writes beautiful chapters", 0),
            ("paperback edition of a classic novel", 0),
            ("this pan heats evenly on the stove", 1),
            ("sharp knife for the kitchen", 1),
            ("the blender crushes ice for smoothies", 1),
            ("my kids love this lego set", 2),
            ("a plush toy for toddlers", 2),
            ("board game fun for the whole family", 2),
        ]
    )
]


def test_register_models_registers_both_baselines() -> None:
    found = {}
    baselines.register_models(
        lambda name, factory, description="", **declared: found.setdefault(name, factory)
    )
    assert set(found) == {"vader", "tfidf-logreg"}


@pytest.mark.parametrize("labels", [("negative", "positive"), ("Positive", "Negative")])
def test_vader_gets_obvious_reviews_right_in_task_order(labels: tuple[str, str], tmp_path: Path) -> None:
    task = FakeTask("polarity", labels)
    texts = ["I love it, absolutely wonderful and works great!", "Terrible. It broke, awful waste of money."]
    probs = baselines.make_vader(None, make_ctx(tmp_path)).predict(texts, task).probs
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    positive = [label.lower() for label in labels].index("positive")
    assert probs[0, positive] > 0.8 and probs[1, positive] < 0.2


def test_vader_neutral_text_sits_in_the_middle(tmp_path: Path) -> None:
    probs = baselines.make_vader(None, make_ctx(tmp_path)).predict(["The box is blue."], FakeTask()).probs
    np.testing.assert_allclose(probs[0], [0.5, 0.5], atol=1e-6)


def test_vader_refuses_other_tasks(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="polarity only.*book, kitchen, toy"):
        baselines.make_vader(None, make_ctx(tmp_path)).predict(["nice"], CATEGORY)
    with pytest.raises(HarnessError, match="no argument"):
        baselines.make_vader("x", make_ctx(tmp_path))


def test_tfidf_logreg_learns_a_separable_toy_set(tmp_path: Path) -> None:
    model = baselines.make_tfidf_logreg(None, make_ctx(tmp_path))
    model.fit(CATEGORY_TRAIN, CATEGORY)
    probs = model.predict(["a novel by a great author", "a knife and a pan", "lego for kids"], CATEGORY)
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert probs.argmax(axis=1).tolist() == [0, 1, 2]


def test_tfidf_logreg_fills_columns_of_labels_missing_from_training(tmp_path: Path) -> None:
    model = baselines.make_tfidf_logreg(None, make_ctx(tmp_path))
    model.fit([e for e in CATEGORY_TRAIN if e.label != 1], CATEGORY)
    probs = model.predict(["a novel", "a toy"], CATEGORY)
    assert (probs[:, 1] == 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert probs.argmax(axis=1).tolist() == [0, 2]


def test_tfidf_logreg_needs_training(tmp_path: Path) -> None:
    model = baselines.make_tfidf_logreg(None, make_ctx(tmp_path))
    untrained = model.fingerprint()
    with pytest.raises(HarnessError, match="must be trained"):
        model.predict(["nice"], CATEGORY)
    with pytest.raises(HarnessError, match="at least two labels"):
        model.fit(CATEGORY_TRAIN[:3], CATEGORY)
    model.fit(CATEGORY_TRAIN, CATEGORY)
    assert model.fingerprint() != untrained
    other = baselines.make_tfidf_logreg(None, make_ctx(tmp_path))
    other.fit(CATEGORY_TRAIN, CATEGORY)
    assert other.fingerprint() == model.fingerprint()


def test_vader_scores_a_huge_review_quickly_by_its_head_and_tail():
    from harness.plugins.models.baselines import VADER_MAX_CHARS, make_vader
    from tests.tiny_encoders import FakeTask, make_ctx

    model = make_vader(None, make_ctx(None))
    task = FakeTask("polarity", ("negative", "positive"))
    huge = "It works. " * 100_000 + "Terrible, broke after a day, total waste of money."
    output = model.predict([huge, "Great product, I love it."], task)
    assert output.truncated == [True, False]
    assert output.probs[0, 0] > 0.5  # the verdict at the end is what was scored
    assert len(huge) > 100 * VADER_MAX_CHARS


def test_tfidf_logreg_depends_on_the_seed_only_through_its_train_data(tmp_path: Path) -> None:
    train = [Example("a", "great value", 1), Example("b", "broke at once", 0)]
    first = baselines.make_tfidf_logreg(None, make_ctx(tmp_path, seed=0))
    other = baselines.make_tfidf_logreg(None, make_ctx(tmp_path, seed=9))
    for model in (first, other):
        model.fit(train, FakeTask())
    assert first.fingerprint() == other.fingerprint()
