"""The `seed` board follows the study's protocol and shows the poster's figures beside the measured ones.

The hub checkpoints are replaced by tiny local models of the same
architectures (random weights), so the test runs the board's real code
paths offline: first rows, raw text, generated answers parsed, label scoring
beside them, fine-tuning for the category task, hybrids at 0.9.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.boards import load_board, task_name
from harness.cli import cli
from harness.plugin_manager import get_host
from harness.tasks.polarity import PolarityTask
from harness.types import Review
from tests.tiny_encoders import build_distilbert, build_electra
from tests.tiny_t5 import build_tiny_t5

COLUMNS = ["marketplace", "customer_id", "review_id", "product_id", "product_parent", "product_title",
           "product_category", "star_rating", "helpful_votes", "total_votes", "vine", "verified_purchase",
           "review_headline", "review_body", "review_date"]  # fmt: skip
CATEGORIES = ("Books", "Music", "Video", "Toys", "Tools", "Office Products", "Electronics", "Kitchen",
              "Sports", "Shoes", "Health & Personal Care")  # fmt: skip
HUB_IDS = ("AdamCodd/distilbert-base-uncased-finetuned-sentiment-amazon", "pig4431/amazonPolarity_ELECTRA_5E",
           "distilbert/distilbert-base-uncased", "google/electra-base-discriminator", "google/flan-t5-xxl",
           "google/flan-ul2")  # fmt: skip


def seed_board_file() -> Path:
    return Path(get_host().registries.boards.get("seed").obj)


def write_release_tsv(path: Path) -> list[dict[str, str]]:
    """Reviews in the release's 15 columns, with its markup: three per category, every fifth one 3-star."""
    rows = []
    for i in range(33):
        stars = (5, 1, 4, 2, 3)[i % 5]
        word = "great, I love it" if stars >= 4 else ("okay I guess" if stars == 3 else "broke, a waste")
        body = f"Review {i}: this product is {word}.<br />Second line &#34;quoted&#34; for category {i % 11}."
        rows.append(
            dict.fromkeys(COLUMNS, "x")
            | {
                "review_id": f"R{i:03d}",
                "product_id": f"P{i:03d}",  # one product a review: clustered intervals resample reviews
                "product_category": CATEGORIES[i % 11],
                "star_rating": str(stars),
                "review_body": body,
                "review_headline": f"title {i}",
            }  # fmt: skip
        )
    with open(path, "w", encoding="utf-8") as out:
        out.write("\t".join(COLUMNS) + "\n")
        for row in rows:
            out.write("\t".join(row[c] for c in COLUMNS) + "\n")
    return rows


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory) -> tuple[Path, list[dict[str, str]]]:
    """`harness run --board` on the seed board with every hub id replaced by a tiny local model."""
    root = tmp_path_factory.mktemp("seed")
    local = [
        build_distilbert(root / "distilbert-sentiment", {0: "negative", 1: "positive"}),
        build_electra(root / "electra-sentiment", {0: "LABEL_0", 1: "LABEL_1"}),
        build_distilbert(root / "distilbert-base", seed=1),
        build_electra(root / "electra-base", seed=1),
        build_tiny_t5(root / "flan-t5", seed=0),
        build_tiny_t5(root / "flan-ul2", seed=1),
    ]
    text = seed_board_file().read_text(encoding="utf-8")
    for hub_id, path in zip(HUB_IDS, local, strict=True):
        assert hub_id in text
        text = text.replace(hub_id, str(path))
    reported = (seed_board_file().parent / "../reported/seed.toml").resolve()
    text = text.replace('reported = "../reported/seed.toml"', f'reported = "{reported}"')
    board = root / "seed.toml"
    board.write_text(text, encoding="utf-8")
    rows = write_release_tsv(root / "reviews.tsv")
    out = root / "run"
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--board",
            str(board),
            "--data",
            str(root / "reviews.tsv"),
            "--out",
            str(out),
            "--backend",
            "cpu",
            "--bootstrap",
            "20",
        ],  # fmt: skip
    )
    # The tiny random Flan models' generated answers name no label: those rows are scored, flagged, and the
    # run exits 1; every other row is fine.
    assert result.exit_code == 1 and "flagged for unparseable answers" in result.output, result.output
    flagged = [
        r
        for r in json.loads((out / "results.json").read_text())["rows"]
        if r.get("extra", {}).get("unparseable_over_limit")
    ]
    assert flagged and all("generated answer" in r["label"] for r in flagged)
    return out, rows


def test_correlation_is_the_category_task_everywhere():
    board = load_board(seed_board_file())
    assert task_name("correlation") == "category" and board.tasks == ["polarity", "category"]
    assert board.task_options["category"]["train_per_class"] == "150"
    assert {e.label: e.tasks for e in board.models}["DistilBERT (67M), fine-tuned 3 epochs"] == ["category"]


def test_rows_option_reads_only_the_first_rows():
    reviews = [Review(f"r{i}", f"text {i}", stars=(1, 3, 5)[i % 3]) for i in range(30)]
    splits = PolarityTask({"rows": "10", "train_size": "0"}).split(iter(reviews), limit=None, seed=0)
    assert [e.id for e in splits.test] == [f"r{i}" for i in range(10) if i % 3 != 1]
    assert splits.counts["read"] == 10 and splits.counts["dropped_3star"] == 3


@pytest.mark.slow  # fourteen rows of tiny models, two of them fine-tuned: minutes, so make test-all runs it
@pytest.mark.long
def test_seed_board_follows_the_protocol(seed_run):
    out, rows = seed_run
    results = json.loads((out / "results.json").read_text())
    measured = [r for r in results["rows"] if r["status"] != "reported"]
    assert all(r["status"] == "ok" for r in measured), [r["error"] for r in measured if r["error"]]
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    polarity = [r for r in records if r["task"] == "polarity"]
    first_rows = [row["review_id"] for row in rows if row["star_rating"] != "3"]
    by_model: dict[str, list[str]] = {}
    for record in polarity:
        by_model.setdefault(record["model"], []).append(record["id"])
    for ids in by_model.values():  # the first rows, in file order, no train split taken out
        assert ids == first_rows
    assert all("<br />" in r["text"] and "&#34;" in r["text"] for r in records)  # raw text, as the study
    generated = [r for r in polarity if r["model"].endswith("#generate")]
    assert generated and all("raw_text" in r for r in generated)  # answers generated, then parsed
    scored = [r for r in polarity if r["model"] == "flan-t5:" + str(out.parent / "flan-t5")]
    assert scored and all("raw_text" not in r for r in scored)  # label scoring beside them
    per_k = [r for r in records if r["task"] == "category" and r["model"].endswith("#generate-per-k")]
    assert per_k and all(len(json.loads(r["raw_text"])) == 5 for r in per_k)  # one answer list per k = 1..5
    rows_by_label = {(r["task"], r["label"]): r for r in measured}
    assert rows_by_label[("polarity", "Flan-T5 (11B), generated answer")]["in_training"]
    per_k_row = rows_by_label[("category", "Flan-T5 (11B), generated answers, one prompt per k")]
    assert not per_k_row["in_training"]
    assert ("category", "Flan-T5 (11B), generated answer") not in rows_by_label  # polarity only
    assert {f"answer_top{k}" for k in range(1, 6)} <= set(per_k_row["metrics"]) <= set(per_k_row["intervals"])
    assert len(per_k_row["extra"]["unparseable_answers"]) == 5
    assert rows_by_label[("category", "DistilBERT (67M), fine-tuned 3 epochs")]["fit_s"] > 0
    hybrid = rows_by_label[("polarity", "Hybrid-T5 (generated answer)")]
    assert hybrid["extra"]["stage_answered"][0] + hybrid["extra"]["stage_answered"][1] == hybrid["n"]
    # Flan's generated answers come from its own row's, which ran on the same reviews before the hybrid.
    assert hybrid["extra"]["escalated_stored"] == hybrid["extra"]["escalated"]


@pytest.mark.slow
@pytest.mark.long
def test_reported_rows_stand_beside_measured_ones_never_ranked(seed_run):
    out, _ = seed_run
    results = json.loads((out / "results.json").read_text())
    reported = [r for r in results["rows"] if r["status"] == "reported"]
    assert len(reported) == 10 and {r["task"] for r in reported} == {"polarity", "category"}
    md = (out / "leaderboard.md").read_text()
    reported_lines = [line for line in md.splitlines() if ", reported" in line]
    assert len(reported_lines) == 10
    assert all("| reported |" in line and "**" not in line for line in reported_lines)
    assert "DistilBERT (67M), reported | 937 | 0.897" in md.replace("  ", " ")
    assert "Flan-T5 (11B), reported †" in md and "Flan-T5 (11B), generated answer †" in md
    assert "† the task's data is in the model's training mixture" in md
    for fmt in ("csv", "json", "text"):
        rendered = CliRunner().invoke(cli, ["leaderboard", str(out), "--format", fmt])
        assert rendered.exit_code == 0 and "†" in rendered.output, fmt
        if fmt != "text":  # the text table wraps long labels
            assert "Flan-UL2 (20B), label scoring †" in rendered.output, fmt
        if fmt != "csv":  # a CSV holds the table alone
            assert "training mixture" in rendered.output, fmt
    html = (out / "leaderboard.html").read_text()
    assert "Flan-UL2 (20B), reported †" in html and ">reported</td>" in html


def test_a_broken_reported_file_is_a_one_line_error(tmp_path):
    from harness.errors import HarnessError
    from harness.reported import reported_rows

    bad = tmp_path / "reported.toml"
    bad.write_text(
        '[[rows]]\ntask = "polarity"\nlabel = "X"\nmetrics = { macro_f1 = 0.9 }\nruntimes = { tpu = 1.0 }\n'
    )
    with pytest.raises(HarnessError, match="runtimes are keyed by cpu and gpu"):
        reported_rows(bad, ["polarity"])
    with pytest.raises(HarnessError, match="not found"):
        reported_rows(tmp_path / "missing.toml", ["polarity"])
    bad.write_text('[[rows]]\ntask = "correlation"\nlabel = "X"\nmetrics = { top1 = 0.5 }\n')
    [row] = reported_rows(bad, ["category"])
    assert row["task"] == "category" and row["status"] == "reported" and row["label"] == "X, reported"


def test_model_entries_with_one_spec_are_told_apart_by_name():
    from harness.boards import board_from_dict

    board = board_from_dict(
        {"tasks": ["correlation"], "models": [{"spec": "flan-t5", "name": "flan-t5#generate"}, "flan-t5"]},
        "b",
    )
    assert [m.key for m in board.models] == ["flan-t5#generate", "flan-t5"] and board.tasks == ["category"]
