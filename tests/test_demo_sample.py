"""The embedded demo sample: the original release schema, every study category, a real mix."""

from __future__ import annotations

import collections
import csv
from importlib.resources import files

STUDY_CATEGORIES = {
    "Books", "Music", "Video", "Toys", "Tools", "Office Products",
    "Electronics", "Kitchen", "Sports", "Shoes", "Health & Personal Care",
}  # fmt: skip
COLUMNS = [
    "marketplace",
    "customer_id",
    "review_id",
    "product_id",
    "product_parent",
    "product_title",
    "product_category",
    "star_rating",
    "helpful_votes",
    "total_votes",
    "vine",
    "verified_purchase",
    "review_headline",
    "review_body",
    "review_date",
]


def rows():
    path = files("harness.tasks") / "data" / "sample.tsv"
    with path.open(encoding="utf-8", newline="") as handle:
        lines = handle.read().split("\n")
    header = lines[0].split("\t")
    return header, [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:] if line]


def test_sample_uses_the_release_schema_with_unique_ids():
    header, reviews = rows()
    assert header == COLUMNS
    assert len({r["review_id"] for r in reviews}) == len(reviews)
    assert all(r["marketplace"] == "US" and r["review_date"][:2] == "20" for r in reviews)


def test_sample_covers_every_study_category_and_star_rating():
    _, reviews = rows()
    per_category = collections.Counter(r["product_category"] for r in reviews)
    assert set(per_category) == STUDY_CATEGORIES
    assert min(per_category.values()) >= 40 and len(reviews) >= 440
    stars = collections.Counter(r["star_rating"] for r in reviews)
    assert set(stars) == {"1", "2", "3", "4", "5"} and min(stars.values()) >= 40


def test_sample_has_a_realistic_length_mix_with_very_long_reviews():
    _, reviews = rows()
    lengths = sorted(len(r["review_body"]) for r in reviews)
    assert lengths[len(lengths) // 4] < 400  # plenty of short ones
    assert sum(n > 3000 for n in lengths) >= 8  # longer than a 512-token window
    assert sum("<br />" in r["review_body"] for r in reviews) >= 20


def test_sample_is_readable_by_a_plain_tsv_reader():
    path = files("harness.tasks") / "data" / "sample.tsv"
    with path.open(encoding="utf-8", newline="") as handle:
        parsed = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert all(len(row) == len(COLUMNS) for row in parsed)
