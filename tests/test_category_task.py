"""The category task and the category name table: explicit mapping, seeded balanced per-class split."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from harness.tasks._category_names import (
    RELEASE_CATEGORIES,
    SLUG_TO_RELEASE,
    STUDY_CATEGORIES,
    normalise,
    to_release_name,
)
from harness.tasks.category import CategoryTask, register_tasks
from harness.tasks.sources._jsonl import JsonlSource
from harness.tasks.sources._tsv import TsvSource
from harness.types import IssueLog, Review, SourceOptions, Task

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MARC = DATA / "marc_en_dev.jsonl"
GIFT_CARD = DATA / "amazon_reviews_us_Gift_Card_v1_00.tsv"
needs_data = pytest.mark.skipif(not MARC.exists(), reason="shared review data not present")
LONG = "x" * 81


def make(category: str | None, n: int, start: int = 0, stars: int = 5, text: str = LONG) -> list[Review]:
    return [
        Review(f"{category}-{i}", f"{text} {i}", stars=stars, category=category)
        for i in range(start, start + n)
    ]


def consume(
    task: CategoryTask, data: list[Review], limit: int | None = None, seed: int = 0
) -> tuple[Any, list]:
    splits = task.split(data, limit=limit, seed=seed)
    return splits, list(splits.test)


def test_name_table_maps_the_corpus_slugs_to_release_names() -> None:
    assert set(STUDY_CATEGORIES) <= set(RELEASE_CATEGORIES)
    assert set(SLUG_TO_RELEASE.values()) <= set(RELEASE_CATEGORIES)
    assert to_release_name("book") == "Books"
    assert to_release_name("office_product") == "Office Products"
    assert to_release_name("drugstore") == "Health & Personal Care"
    assert to_release_name("home_improvement") == "Tools"
    assert to_release_name("toy") == "Toys"
    assert to_release_name("Health & Personal Care") == "Health & Personal Care"
    assert to_release_name("digital_ebook_purchase") == "Digital_Ebook_Purchase"
    assert to_release_name("Digital Ebook Purchase") == "Digital_Ebook_Purchase"
    assert to_release_name("kitchen & housewares") == "Kitchen"
    assert to_release_name("other") is None and to_release_name("Bookz") is None
    assert normalise("  Office_Products ") == normalise("office-products") == "office products"


@needs_data
def test_every_corpus_slug_is_mapped_or_deliberately_left_out() -> None:
    slugs = {json.loads(line)["product_category"] for line in MARC.open(encoding="utf-8")}
    assert {slug for slug in slugs if to_release_name(slug) is None} == {"other", "industrial_supplies"}


def test_registered_factory_builds_the_study_task() -> None:
    registered: dict[str, Any] = {}
    register_tasks(lambda name, factory, description="", **declared: registered.setdefault(name, factory))
    task = registered["category"]({})
    assert isinstance(task, Task)
    assert task.labels == STUDY_CATEGORIES and task.label_words == STUDY_CATEGORIES
    assert "{text}" in task.prompt and "{options}" in task.prompt


def test_reviews_are_labelled_through_the_table_and_the_rest_is_counted() -> None:
    data = [
        Review("a", LONG, stars=5, category="book"),
        Review("b", LONG, stars=1, category="Books"),
        Review("c", LONG, stars=4, category="drugstore"),
        Review("d", LONG, stars=4, category="other"),
        Review("e", LONG, stars=4, category="Apparel"),
        Review("f", LONG, stars=4, category=None),
        Review("g", LONG, stars=3, category="toy"),
        Review("h", "too short", stars=5, category="toy"),
        Review("i", LONG, stars=None, category="home_improvement"),
    ]
    task = CategoryTask({"train_per_class": "0", "test_per_class": "5", "balance": "false"})
    splits, test = consume(task, data)
    labels = {e.id: task.labels[e.label] for e in test}
    assert labels == {"a": "Books", "b": "Books", "c": "Health & Personal Care", "i": "Tools"}
    counts = splits.counts
    assert counts["unmapped_category"] == 1 and counts["out_of_label_set"] == 1
    assert counts["no_category"] == 1 and counts["dropped_3star"] == 1 and counts["too_short"] == 1
    assert counts["no_stars"] == 1
    assert any("other (1)" in note for note in splits.notes)
    assert any("'Music': no usable reviews" in note for note in splits.notes)


def test_custom_label_list_accepts_slugs_and_unknown_names() -> None:
    task = CategoryTask({"categories": "book, toy, Gadgets"})
    assert task.labels == ("Books", "Toys", "Gadgets")
    data = make("Gadgets", 3) + make("toy", 3) + make("wireless", 2)
    splits, test = consume(CategoryTask({"categories": "book,toy,Gadgets", "train_per_class": "0"}), data)
    assert sorted(e.label for e in test) == [1, 1, 1, 2, 2, 2]
    assert splits.counts["out_of_label_set"] == 2 and splits.counts["unmapped_category"] == 0


def balanced_data(per_class: int, short_class: str | None = None, short_n: int = 0) -> list[Review]:
    data = []
    for slug in ("book", "toy", "shoes"):
        data += make(slug, short_n if slug == short_class else per_class)
    random.Random(1).shuffle(data)
    return data


def test_study_quotas_per_class_disjoint_and_reproducible() -> None:
    options = {"categories": "book,toy,shoes", "train_per_class": "15", "test_per_class": "5"}
    data = balanced_data(40)
    splits, test = consume(CategoryTask(options), data, seed=4)
    assert Counter(e.label for e in splits.train) == {0: 15, 1: 15, 2: 15}
    assert Counter(e.label for e in test) == {0: 5, 1: 5, 2: 5}
    assert not {e.id for e in splits.train} & {e.id for e in test}
    counts = splits.counts
    assert (
        counts["kept"] == 120
        and counts["not_sampled"] == 60
        and counts["train"] == 45
        and counts["test"] == 15
    )
    again, again_test = consume(CategoryTask(options), list(reversed(data)), seed=4)
    assert again.train == splits.train and again_test == test  # same sample whatever the order
    other, other_test = consume(CategoryTask(options), data, seed=5)
    assert {e.id for e in other_test} != {e.id for e in test}


def test_short_class_keeps_the_split_balanced_and_is_reported() -> None:
    options = {"categories": "book,toy,shoes", "train_per_class": "15", "test_per_class": "5"}
    splits, test = consume(CategoryTask(options), balanced_data(40, "toy", 8))
    assert Counter(e.label for e in splits.train) == {0: 6, 1: 6, 2: 6}
    assert Counter(e.label for e in test) == {0: 2, 1: 2, 2: 2}
    assert any("'Toys': 8 usable reviews" in note for note in splits.notes)
    unbalanced, unbalanced_test = consume(
        CategoryTask({**options, "balance": "false"}), balanced_data(40, "toy", 8)
    )
    assert Counter(e.label for e in unbalanced.train) == {0: 15, 1: 6, 2: 15}
    assert Counter(e.label for e in unbalanced_test) == {0: 5, 1: 2, 2: 5}
    assert any("split 6 train / 2 test" in note for note in unbalanced.notes)


def test_limit_caps_the_test_set_only_and_mixes_classes() -> None:
    options = {"categories": "book,toy,shoes", "train_per_class": "15", "test_per_class": "20"}
    splits, test = consume(CategoryTask(options), balanced_data(40), limit=12)
    assert len(test) == 12 and len(splits.train) == 45 and splits.counts["test"] == 12
    assert len({e.label for e in test}) == 3


def test_every_review_is_accounted_for() -> None:
    data = balanced_data(30) + make("other", 4) + make("Apparel", 5) + make("toy", 6, start=100, stars=3)
    data += make("toy", 7, start=200, text="short") + make(None, 2)
    splits, _ = consume(CategoryTask({"train_per_class": "10", "test_per_class": "5"}), data)
    c = splits.counts
    reasons = (
        "no_category",
        "unmapped_category",
        "out_of_label_set",
        "dropped_3star",
        "too_short",
        "train",
        "test",
    )
    assert c["read"] == len(data) == sum(c[r] for r in reasons) + c["not_sampled"]
    assert (c["no_category"], c["unmapped_category"], c["out_of_label_set"]) == (2, 4, 5)
    assert (c["dropped_3star"], c["too_short"]) == (6, 7)


@needs_data
def test_auto_8_on_the_corpus_builds_a_balanced_split() -> None:
    issues = IssueLog()
    task = CategoryTask({"categories": "auto:8"})
    assert task.labels == ()
    splits = task.split(JsonlSource().read(str(MARC), SourceOptions(), issues), limit=None, seed=0)
    test = list(splits.test)
    # The 8 categories with most reviews that pass the study's filters, counted independently here.
    usable: Counter[str] = Counter()
    for line in MARC.open(encoding="utf-8"):
        row = json.loads(line)
        if row["stars"] != "3" and len(row["review_body"]) > 80:
            usable[to_release_name(row["product_category"]) or row["product_category"]] += 1
    assert set(task.labels) == {name for name, _ in usable.most_common(8)}
    assert len(task.label_words) == 8
    train_counts, test_counts = Counter(e.label for e in splits.train), Counter(e.label for e in test)
    assert set(test_counts) == set(range(8)) and len(set(test_counts.values())) == 1
    assert set(train_counts) == set(range(8)) and len(set(train_counts.values())) == 1
    assert not {e.id for e in splits.train} & {e.id for e in test}
    assert issues.total == 0
    scores = task.metrics(np.array([e.label for e in test]), np.full((len(test), 8), 1 / 8))
    assert scores["top1"] == pytest.approx(test_counts[0] / len(test))  # ties go to the first label


@needs_data
def test_release_tsv_categories_outside_the_study_are_counted() -> None:
    source = TsvSource().read(str(GIFT_CARD), SourceOptions(), IssueLog())
    splits = CategoryTask({}).split(source, limit=None, seed=0)
    assert list(splits.test) == [] and splits.counts["out_of_label_set"] == 1452


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"categories": "auto:x"}, "auto:N needs an integer"),
        ({"categories": "auto:1"}, "auto:N needs an integer"),
        ({"categories": "Books"}, "at least two distinct"),
        ({"categories": "book,Books"}, "at least two distinct"),
        ({"label_words": "a,b"}, "label_words needs 11"),
        ({"balance": "maybe"}, "true or false"),
        ({"test_per_class": "0"}, "at least 1"),
        ({"min_char": "5"}, "did you mean 'min_chars'"),
    ],
)
def test_bad_options_are_refused(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CategoryTask(options)


def test_metrics_by_hand_and_against_scikit_learn() -> None:
    task = CategoryTask({"categories": "book,toy,shoes"})
    gold = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array(
        [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]
    )
    scores = task.metrics(gold, probs)
    assert set(scores) == {"top1", "top2", "top3", "map", "macro_f1", "ece"}
    assert scores["top1"] == pytest.approx(3 / 6)
    assert scores["top2"] == pytest.approx(5 / 6)
    assert scores["top3"] == pytest.approx(1.0)
    reference_map = np.mean([skm.average_precision_score(gold == c, probs[:, c]) for c in range(3)])
    assert scores["map"] == pytest.approx(reference_map)
    assert scores["macro_f1"] == pytest.approx(skm.f1_score(gold, probs.argmax(axis=1), average="macro"))
