"""Slices: every run reports quality per length, negation, category, stars and a user's column."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from harness import board_from_options
from harness.boards import Board, ModelEntry
from harness.leaderboard.commands import register_commands
from harness.run import run_board
from harness.slices import MISSING, SliceNames, length_bucket, negation_bucket, slice_of, text_features
from tests.helpers import write_reviews


def sliced_run(host, tmp_path: Path) -> tuple[dict, Path]:
    data = write_reviews(tmp_path / "reviews.jsonl")
    board = Board(
        name="sliced",
        tasks=["polarity"],
        models=[ModelEntry("tfidf-logreg"), ModelEntry("hybrid:tfidf-logreg>vader@confidence:0.9")],
        data=str(data),
        backend="cpu",
        bootstrap=50,
        task_options={"polarity": {"slice_col": "shop"}},
    )
    run_dir = tmp_path / "run"
    return run_board(host, board, run_dir), run_dir


def test_text_features_count_word_tokens_and_negative_words():
    features = text_features("I don't like it. Not good, never again!")
    assert features["tokens"] == 11  # I don't like it . Not good , never again !
    assert features["negation"] == pytest.approx(100 * 3 / 8)  # don't, not, never of 8 words
    assert text_features("")["tokens"] == 0 and text_features("")["negation"] == 0.0


def test_buckets_have_the_documented_edges():
    assert [length_bucket(n) for n in (0, 64, 65, 128, 129, 256, 257, 512, 513)] == [
        "up to 64", "up to 64", "65-128", "65-128", "129-256", "129-256", "257-512", "257-512", "over 512",
    ]  # fmt: skip
    assert [negation_bucket(d) for d in (0.0, 1.9, 2.0, 3.99, 4.0, 30.0)] == [
        "none", "under 2", "2-4", "2-4", "4 and over", "4 and over",
    ]  # fmt: skip


def test_slice_names_give_each_review_the_slice_of_its_record():
    records = [
        {"features": {"tokens": 10, "negation": 0.0}, "facets": {"shop": "a"}},
        {"features": {"tokens": 100, "negation": 3.0}},
        {
            "features": {"tokens": 600, "negation": 9.0},
            "facets": {"stars": "5", "shop": "b", "colour": "red"},
        },
        {"features": {"tokens": 70, "negation": 1.0}, "facets": {"category": "books", "shop": "a"}},
    ]
    slices = SliceNames.of_records(records)
    assert slices.dimensions() == ["length", "negation", "category", "stars", "shop", "colour"]
    for dimension in slices.dimensions():
        names, codes = slices.along(dimension)
        assert [names[code] for code in codes] == [slice_of(r, dimension) for r in records]
    names, codes = slices.along("colour")  # first seen on the third review: the two before it have none
    assert [names[code] for code in codes] == [MISSING, MISSING, "red", MISSING]
    assert SliceNames().dimensions() == ["length", "negation"]


def test_every_row_reports_slices_that_match_its_predictions(host, tmp_path):
    results, run_dir = sliced_run(host, tmp_path)
    records = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    for row in results["rows"]:
        assert row["status"] == "ok", row["error"]
        assert list(row["slices"]) == ["length", "negation", "category", "stars", "shop"]
        mine = [r for r in records if r["model"] == row["model"]]
        for dimension, slices in row["slices"].items():
            assert sum(s["n"] for s in slices) == row["n"]
            for entry in slices:
                inside = [r for r in mine if slice_of(r, dimension) == entry["slice"]]
                assert len(inside) == entry["n"]
                assert entry["metrics"]["accuracy"] == pytest.approx(np.mean([r["correct"] for r in inside]))
                if entry["n"] >= 2 and "accuracy" in entry["intervals"]:
                    low, high = entry["intervals"]["accuracy"]
                    assert low <= entry["metrics"]["accuracy"] + 1e-9 and high >= low
        assert {s["slice"] for s in row["slices"]["shop"]} == {"shop0", "shop1", "shop2"}
        assert {s["slice"] for s in row["slices"]["stars"]} == {"1", "2", "4", "5"}
        assert len(row["slices"]["length"]) >= 3


def test_hybrid_rows_report_the_share_escalated_per_slice(host, tmp_path):
    results, run_dir = sliced_run(host, tmp_path)
    plain, hybrid = results["rows"]
    assert all("escalated_share" not in s for s in plain["slices"]["length"])
    records = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    mine = [r for r in records if r["model"] == hybrid["model"]]
    for entry in hybrid["slices"]["length"]:
        inside = [r for r in mine if slice_of(r, "length") == entry["slice"]]
        escalated = [json.loads(r["raw_text"])["stage"] > 0 for r in inside]
        assert entry["escalated_share"] == pytest.approx(np.mean(escalated))
    total = sum(s["escalated_share"] * s["n"] for s in hybrid["slices"]["length"])
    assert total == pytest.approx(hybrid["extra"]["escalated"])


def cli_group() -> click.Group:
    group = click.Group()
    register_commands(group)
    return group


def test_slices_command_prints_one_dimension_with_intervals(host, tmp_path):
    _, run_dir = sliced_run(host, tmp_path)
    result = CliRunner().invoke(cli_group(), ["slices", str(run_dir), "--by", "length"])
    assert result.exit_code == 0, result.output
    assert "polarity · tfidf-logreg · by length (word tokens)" in result.output
    assert "by star rating" not in result.output and "±" in result.output and "escalated" in result.output
    unknown = CliRunner().invoke(cli_group(), ["slices", str(run_dir), "--by", "colour"])
    assert unknown.exit_code != 0 and "it has: category, length, negation, shop, stars" in str(
        unknown.exception
    )


def test_slice_col_flag_reaches_every_task():
    board = board_from_options(
        {"models": ("minilm",), "tasks": ("polarity", "category"), "slice_col": "shop"}
    )
    assert board.task_options == {"polarity": {"slice_col": "shop"}, "category": {"slice_col": "shop"}}
