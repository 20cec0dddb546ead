"""The polarity task: labels from stars, a seeded streaming train split, every kept review scored."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from harness.tasks.polarity import PolarityTask, register_tasks
from harness.tasks.sources._jsonl import JsonlSource
from harness.types import IssueLog, Review, SourceOptions, Task

BLITZER = Path(__file__).resolve().parents[2] / "shared" / "data" / "blitzer_multidomain_sentiment.jsonl"


def reviews(n: int, stars: tuple[int | None, ...] = (1, 2, 3, 4, 5)) -> list[Review]:
    return [
        Review(id=f"r{i}", text=f"review number {i}", title=f"title {i}", stars=stars[i % len(stars)])
        for i in range(n)
    ]


def test_registered_factory_builds_a_task() -> None:
    registered: dict[str, Any] = {}
    register_tasks(lambda name, factory, description="", **declared: registered.setdefault(name, factory))
    task = registered["polarity"]({})
    assert isinstance(task, Task)
    assert task.labels == ("negative", "positive") and task.label_words == ("negative", "positive")


def test_stars_become_labels_and_three_stars_are_dropped() -> None:
    data = [
        Review("a", "bad", stars=1),
        Review("b", "poor", stars=2),
        Review("c", "so-so", stars=3),
        Review("d", "good", stars=4),
        Review("e", "great", stars=5),
        Review("f", "no rating", stars=None),
        Review("g", "   ", stars=5),
    ]
    splits = PolarityTask({"train_size": "0"}).split(data, limit=None, seed=0)
    test = list(splits.test)
    assert [(e.id, e.label) for e in test] == [("a", 0), ("b", 0), ("d", 1), ("e", 1), ("g", 1)]
    assert splits.train == []
    counts = splits.counts
    assert (counts["read"], counts["kept"], counts["test"]) == (7, 5, 5)
    assert (counts["dropped_3star"], counts["no_stars"], counts["empty_text"]) == (1, 1, 1)


def test_every_kept_review_is_train_or_test_and_never_both() -> None:
    data = reviews(500)
    splits = PolarityTask({}).split(data, limit=None, seed=3)
    test = list(splits.test)
    train_ids, test_ids = {e.id for e in splits.train}, {e.id for e in test}
    assert not train_ids & test_ids
    kept = {r.id for r in data if r.stars != 3}
    assert train_ids | test_ids == kept
    counts = splits.counts
    assert counts["read"] == counts["dropped_3star"] + counts["no_stars"] + counts["train"] + counts["test"]
    # Small data splits about evenly, well short of train_size.
    assert 0.35 * len(kept) < len(train_ids) < 0.65 * len(kept)


def test_split_is_deterministic_per_seed_and_changes_with_it() -> None:
    def ids(seed: int) -> tuple[list[str], list[str]]:
        splits = PolarityTask({}).split(reviews(300), limit=None, seed=seed)
        return [e.id for e in splits.train], [e.id for e in splits.test]

    assert ids(7) == ids(7)
    assert ids(7)[0] != ids(8)[0]


def test_train_size_caps_train_and_limit_caps_only_test() -> None:
    splits = PolarityTask({"train_size": "20"}).split(reviews(1000), limit=50, seed=0)
    test = list(splits.test)
    assert len(splits.train) == 20 and len(test) == 50
    assert splits.counts["train"] == 20 and splits.counts["test"] == 50
    assert not {e.id for e in splits.train} & {e.id for e in test}


def test_a_seeded_train_sample_represents_a_file_sorted_by_stars() -> None:
    """The streamed draw takes a small train split from the first rows: all 1-star in a sorted file."""
    data = sorted(reviews(2000, stars=(1, 2, 4, 5)), key=lambda r: r.stars or 0)
    streamed = PolarityTask({"train_size": "100"}).split(data, limit=200, seed=0)
    seeded = PolarityTask({"train_size": "100", "train_sample": "seeded"}).split(data, limit=200, seed=0)
    assert {e.label for e in streamed.train} == {0}
    assert 30 < sum(e.label for e in seeded.train) < 70
    test = list(seeded.test)
    assert len(seeded.train) == 100 and len(test) == 200
    assert not {e.id for e in seeded.train} & {e.id for e in test}
    everything = PolarityTask({"train_size": "100", "train_sample": "seeded"}).split(data, limit=None, seed=0)
    position = {review.id: i for i, review in enumerate(data)}
    order = [position[e.id] for e in everything.test]
    assert len(order) == 1900 and order == sorted(order)


def test_the_test_set_is_streamed_not_read_up_front() -> None:
    consumed = 0

    def stream() -> Iterator[Review]:
        nonlocal consumed
        for review in reviews(10_000, stars=(5,)):
            consumed += 1
            yield review

    splits = PolarityTask({"train_size": "10", "sample": "first"}).split(stream(), limit=5, seed=0)
    read_for_train = consumed
    assert len(list(splits.test)) == 5
    assert read_for_train < 200 and consumed < read_for_train + 10


def test_seeded_sample_draws_both_labels_from_a_file_sorted_by_stars() -> None:
    data = [Review(f"n{i}", "bad", stars=1) for i in range(500)] + [
        Review(f"p{i}", "good", stars=5) for i in range(500)
    ]
    splits = PolarityTask({"train_size": "0"}).split(data, limit=100, seed=0)
    test = list(splits.test)
    labels = Counter(e.label for e in test)
    assert len(test) == 100 and 30 < labels[0] < 70
    assert splits.counts["test"] + splits.counts["not_sampled"] == 1000
    again = [e.id for e in PolarityTask({"train_size": "0"}).split(data, limit=100, seed=0).test]
    assert again == [e.id for e in test]
    first = list(PolarityTask({"train_size": "0", "sample": "first"}).split(data, limit=100, seed=0).test)
    assert {e.label for e in first} == {0}


def test_title_and_body_input() -> None:
    data = [Review("a", "body text", title="Headline", stars=5), Review("b", "only body", title="", stars=1)]
    test = list(PolarityTask({"input": "title+body", "train_size": "0"}).split(data, limit=None, seed=0).test)
    assert [e.text for e in test] == ["Headline\nbody text", "only body"]
    body = list(PolarityTask({"train_size": "0"}).split(data, limit=None, seed=0).test)
    assert [e.text for e in body] == ["body text", "only body"]


def test_prompt_and_label_words_are_overridable() -> None:
    task = PolarityTask({})
    rendered = task.prompt.format(text="It broke.", options=", ".join(task.label_words))
    assert "[negative, positive]" in rendered and rendered.endswith("It broke..")
    custom = PolarityTask({"label_words": "bad, good", "prompt": "Review: {text}\nAnswer ({options}):"})
    assert custom.label_words == ("bad", "good")
    assert custom.prompt.format(text="x", options="bad, good") == "Review: x\nAnswer (bad, good):"
    assert custom.fingerprint() != task.fingerprint()
    assert PolarityTask({}).fingerprint() == task.fingerprint()
    assert PolarityTask({"input": "title+body"}).fingerprint() != task.fingerprint()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"label_words": "bad"}, "label_words needs 2"),
        ({"prompt": "no placeholder"}, "{text}"),
        ({"prompt": "{text} {other}"}, "placeholders"),
        ({"input": "title"}, "input=.title.: choose one of body, title.body"),
        ({"train_size": "-1"}, "at least 0"),
        ({"train_sise": "5"}, "did you mean 'train_size'"),
    ],
)
def test_bad_options_are_refused(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        PolarityTask(options)


def test_metrics_by_hand_and_against_scikit_learn() -> None:
    gold = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    p_pos = np.array([0.2, 0.7, 0.1, 0.9, 0.8, 0.4, 0.6, 0.95])
    probs = np.stack([1 - p_pos, p_pos], axis=1)
    pred = (p_pos > 0.5).astype(int)
    scores = PolarityTask({}).metrics(gold, probs)
    assert set(scores) == {"macro_f1", "accuracy", "accuracy_pos", "accuracy_neg", "ece"}
    assert scores["accuracy"] == pytest.approx(6 / 8)
    assert scores["accuracy_neg"] == pytest.approx(2 / 3)
    assert scores["accuracy_pos"] == pytest.approx(4 / 5)
    assert scores["macro_f1"] == pytest.approx(skm.f1_score(gold, pred, average="macro"))
    assert all(isinstance(value, float) for value in scores.values())
    assert 0.0 <= scores["ece"] <= 1.0


@pytest.mark.skipif(not BLITZER.exists(), reason="shared review data not present")
def test_blitzer_with_limit_2000_scores_exactly_2000_long_reviews_included() -> None:
    issues = IssueLog()
    source = JsonlSource().read(str(BLITZER), SourceOptions(), issues)
    splits = PolarityTask({}).split(source, limit=2000, seed=0)
    test = list(splits.test)
    assert len(test) == 2000 and len({e.id for e in test}) == 2000
    assert issues.total == 0
    assert splits.counts["dropped_3star"] == 0 and splits.counts["no_stars"] == 0
    assert not {e.id for e in splits.train} & {e.id for e in test}
    # Long reviews reach the test set whole: fitting them to a model is the model's policy, not the task's.
    assert max(len(e.text) for e in test) > 4 * 512
