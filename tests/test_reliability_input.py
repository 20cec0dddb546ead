"""Bad input through the real sources, tasks and `harness run`: each case reported, the rest scored.

The cases are the ones real review files and real machines produce: empty and
whitespace-only bodies, broken bytes, NUL bytes, a 1 MB review, HTML markup,
right-to-left and emoji text, impossible star ratings, categories outside the
label set, files that are not review files at all, empty and header-only files.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.tasks.category import CategoryTask
from harness.tasks.polarity import PolarityTask
from harness.tasks.sources._csv import CsvSource
from harness.tasks.sources._jsonl import JsonlSource
from harness.tasks.sources._tsv import TsvSource
from harness.types import IssueLog, Review, SourceOptions

HEADER = ["marketplace", "customer_id", "review_id", "product_id", "product_parent", "product_title",
          "product_category", "star_rating", "helpful_votes", "total_votes", "vine", "verified_purchase",
          "review_headline", "review_body", "review_date"]  # fmt: skip
MEGABYTE_REVIEW = ("This gift card arrived on time and works. " * 25_000)[:1_000_000]
GOOD = {
    "plain": ("Great card, easy to use.", "5"),
    "empty": ("", "1"),
    "blank": ("   \u3000 ", "2"),  # spaces only (a tab would split the row)
    "nul": ("works\x00fine, no complaints", "4"),
    "huge": (MEGABYTE_REVIEW, "5"),
    "html": ("Satisfied &amp; happy<br />Thanks &#34;Amazon&#34; &lt;3", "5"),
    "rtl": (
        "\u05de\u05d5\u05e6\u05e8 \u05de\u05e2\u05d5\u05dc\u05d4 \u202bRTL\u202c \u0645\u0645\u062a\u0627\u0632",
        "4",
    ),
    "emoji": ("Love it \U0001f60d\U0001f44d\U0001f3fd \u2764\ufe0f\u200d\U0001f525", "5"),
    "bad2": ("Broke after a day.", "2"),
}
BAD_STARS = {"zero": "0", "six": "6", "word": "five", "none": ""}
NON_UTF8 = b"caf\xe9 \xff broken bytes"


def release_line(review_id: str, body: str | bytes, stars: str, category: str = "Gift Card") -> bytes:
    values = dict.fromkeys(HEADER, "x")
    values.update(review_id=review_id, star_rating=stars, product_category=category, review_headline="t")
    fields = [values[c].encode() for c in HEADER]
    fields[HEADER.index("review_body")] = body if isinstance(body, bytes) else body.encode("utf-8")
    return b"\t".join(fields)


def write_release(path: Path) -> Path:
    lines = [b"\t".join(c.encode() for c in HEADER)]
    lines += [release_line(rid, body, stars) for rid, (body, stars) in GOOD.items()]
    lines += [release_line(f"stars-{name}", "Fine card.", value) for name, value in BAD_STARS.items()]
    lines.append(release_line("bytes", NON_UTF8, "5"))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def read(source, path: Path) -> tuple[list[Review], IssueLog]:
    issues = IssueLog()
    return list(source.read(str(path), SourceOptions(), issues)), issues


def test_release_file_with_every_kind_of_bad_row(tmp_path):
    reviews, issues = read(TsvSource(), write_release(tmp_path / "bad.tsv"))
    by_id = {r.id: r for r in reviews}
    for rid, (body, stars) in GOOD.items():
        assert by_id[rid].text == body, rid  # kept verbatim: review text is data, never rewritten
        assert by_id[rid].stars == int(stars)
    assert by_id["stars-none"].stars is None  # an empty rating is no rating, not an error
    reasons = sorted(issue.reason for issue in issues.issues)
    assert reasons[:3] == [
        "non-numeric star rating: 'five'",
        "star rating out of range: '0'",
        "star rating out of range: '6'",
    ]
    assert reasons[3].startswith("undecodable bytes: invalid utf-8")
    assert [i.line for i in issues.issues if "undecodable" in i.reason] == [len(GOOD) + len(BAD_STARS) + 2]
    assert issues.total == 4

    splits = PolarityTask({"train_size": "0"}).split(iter(reviews), limit=None, seed=0)
    test = list(splits.test)
    assert sorted(e.id for e in test) == sorted(GOOD)  # every labelled review is scored, bad ones too
    assert splits.counts["empty_text"] == 2 and splits.counts["no_stars"] == 1


def test_star_ratings_are_checked_whatever_the_source(tmp_path):
    rows = [{"review_id": n, "review_body": "ok", "stars": v} for n, v in (("a", 0), ("b", 6), ("c", "five"),
            ("d", ""), ("e", 4.5), ("f", True), ("g", [5]), ("h", "5"), ("i", 2.0))]  # fmt: skip
    path = tmp_path / "stars.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    reviews, issues = read(JsonlSource(), path)
    assert [(r.id, r.stars) for r in reviews] == [("d", None), ("h", 5), ("i", 2)]
    assert [i.line for i in issues.issues] == [1, 2, 3, 5, 6, 7]


def test_half_a_surrogate_pair_in_json_is_reported_and_the_rest_kept(tmp_path):
    path = tmp_path / "surrogate.jsonl"
    path.write_text(
        '{"review_id": "a", "review_body": "half \\ud83d emoji", "review_title": "t", "stars": "5"}\n'
        '{"review_id": "b", "review_body": "whole \\ud83d\\ude0d emoji", "stars": "5"}\n'
        '{"review_id": "c", "review_body": "ok", "review_title": "bad \\udfff title", "stars": "1"}\n'
    )
    reviews, issues = read(JsonlSource(), path)
    assert [(r.id, r.text) for r in reviews] == [("b", "whole \U0001f60d emoji")]
    assert [(i.line, i.reason.split(":")[0]) for i in issues.issues] == [
        (1, "undecodable text"),
        (3, "undecodable text"),
    ]


def test_category_outside_the_label_set_is_counted_and_named(tmp_path):
    body = "A long enough review body for the category task to keep it, about a product of some kind."
    lines = [b"\t".join(c.encode() for c in HEADER)]
    for i in range(6):
        lines.append(release_line(f"b{i}", body, "5", "Books"))
        lines.append(release_line(f"t{i}", body, "4", "Toys"))
    lines.append(release_line("x1", body, "5", "Lawn Mowers <script>"))
    lines.append(release_line("x2", body, "5", ""))
    path = tmp_path / "categories.tsv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    reviews, issues = read(TsvSource(), path)
    assert issues.total == 0 and len(reviews) == 14
    task = CategoryTask(
        {"categories": "Books,Toys", "train_per_class": "2", "test_per_class": "4", "min_chars": "10"}
    )
    splits = task.split(iter(reviews), limit=None, seed=0)
    test = list(splits.test)
    assert {e.id[0] for e in test} == {"b", "t"} and len(test) + len(splits.train) == 12
    assert splits.counts["no_category"] == 1
    assert (
        sum(
            v
            for k, v in splits.counts.items()
            if k not in ("read", "no_category", "kept", "train", "test", "not_sampled")
        )
        >= 1
    )
    assert any("Lawn Mowers <script>" in note for note in splits.notes)


# files that are not review files, empty files, header-only files -------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01" + bytes(range(256)) * 4 + b"\nIEND\xaeB`\x82"


@pytest.mark.parametrize(
    ("source", "suffix", "kind"), [(TsvSource(), "tsv", "tab-separated"), (CsvSource(), "csv", "CSV")]
)
def test_a_binary_file_named_like_a_review_file_is_refused_clearly(tmp_path, source, suffix, kind):
    path = tmp_path / f"photo.{suffix}"
    path.write_bytes(PNG)
    with pytest.raises(ValueError, match=f"line 1 is not UTF-8 text; this is not a {kind} file of reviews"):
        read(source, path)


def test_a_binary_file_named_jsonl_reports_every_line_and_yields_nothing(tmp_path):
    path = tmp_path / "photo.jsonl"
    path.write_bytes(PNG)
    reviews, issues = read(JsonlSource(), path)
    assert reviews == [] and issues.total == PNG.count(b"\n") + 1


@pytest.mark.parametrize(
    ("source", "name", "content", "reason"),
    [
        (TsvSource(), "empty.tsv", b"", "empty file: no header row"),
        (
            TsvSource(),
            "header.tsv",
            "\t".join(HEADER).encode() + b"\n\n",
            "no reviews: the file has a header row only",
        ),
        (CsvSource(), "empty.csv", b"", "empty file: no header row"),
        (
            CsvSource(),
            "header.csv",
            b"review_body,star_rating\n",
            "no reviews: the file has a header row only",
        ),
        (JsonlSource(), "empty.jsonl", b"\n  \n", "empty file: no reviews"),
    ],
)
def test_empty_and_header_only_files_are_reported(tmp_path, source, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    reviews, issues = read(source, path)
    assert reviews == [] and [i.reason for i in issues.issues] == [reason]


# through `harness run`, with a real (tiny) model --------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from tests.tiny_encoders import build_distilbert

    return build_distilbert(tmp_path_factory.mktemp("distilbert"))


def harness_run(out: Path, data: Path, *models: str) -> dict:
    from harness.cli import cli

    args = ["run", "--task", "polarity", "--data", str(data), "--out", str(out), "--backend", "cpu",
            "--task-option", "train_size=0", "--bootstrap", "10"]  # fmt: skip
    for model in models:
        args += ["--model", model]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_harness_run_scores_every_usable_review_of_a_bad_file(tmp_path, model_dir):
    data = write_release(tmp_path / "bad.tsv")
    # vader is left out: its scoring time grows with the square of the length (a 1 MB review takes an hour)
    results = harness_run(tmp_path / "run", data, f"hf-classifier:{model_dir}")
    records = [
        json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text("utf-8").splitlines()
    ]
    for row in results["rows"]:
        assert row["status"] == "ok", row["error"]
        assert row["n"] == len(GOOD) and row["counts"]["empty_text"] == 2
        assert row["load_issues"]["total"] == 4
        mine = {r["id"]: r for r in records if r["model"] == row["model"]}
        assert set(mine) == set(GOOD)
        assert all(abs(sum(r["probs"]) - 1) < 1e-5 for r in mine.values())
        assert mine["emoji"]["text"] == GOOD["emoji"][0] and mine["rtl"]["text"] == GOOD["rtl"][0]
        assert mine["nul"]["text"] == GOOD["nul"][0]
        assert len(mine["huge"]["text"]) < 1000  # the predictions file keeps a bounded excerpt
    [classifier] = [r for r in results["rows"] if r["model"].startswith("hf-classifier")]
    assert classifier["truncated"] >= 1
    assert {r["id"] for r in records if r["truncated"] and r["model"] == classifier["model"]} >= {"huge"}


def test_harness_run_with_a_lone_surrogate_keeps_every_model_running(tmp_path, model_dir):
    data = tmp_path / "reviews.jsonl"
    data.write_text(
        '{"review_id": "a", "review_body": "half \\ud83d emoji", "stars": "5"}\n'
        '{"review_id": "b", "review_body": "terrible", "stars": "1"}\n'
        '{"review_id": "c", "review_body": "great", "stars": "5"}\n'
    )
    results = harness_run(tmp_path / "run", data, f"hf-classifier:{model_dir}", "vader")
    for row in results["rows"]:
        assert row["status"] == "ok", row["error"]
        assert row["n"] == 2 and row["load_issues"]["by_reason"] == {"undecodable text": 1}


@pytest.mark.parametrize(("name", "content", "needle"), [("photo.tsv", PNG, "not a tab-separated file"),
                                                          ("empty.tsv", b"", "empty file")])  # fmt: skip
def test_harness_run_on_a_file_that_is_not_reviews_says_so_before_any_model_runs(
    tmp_path, name, content, needle
):
    from harness.cli import cli

    data = tmp_path / name
    data.write_bytes(content)
    args = [
        "run",
        "--task",
        "polarity",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "vader",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and needle in result.stderr and "nothing ran" in result.stderr
    assert not (tmp_path / "run").exists()


# every loader, random rows: never a crash, never a lost well-formed row ----------------------------------------

FIELD = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=30)
GARBAGE = st.binary(max_size=60).filter(lambda raw: b"\n" not in raw and b'"' not in raw)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str, int]]]:
    rows = [(f"R{i}", draw(FIELD), draw(st.integers(1, 5))) for i in range(draw(st.integers(0, 8)))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["review_id", "review_body", "star_rating"])
    lines = [buffer.getvalue().encode()]
    for row in rows:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(row)
        lines.append(buffer.getvalue().encode())
    for _ in range(draw(st.integers(0, 6))):  # garbage without quotes: an open quote legitimately spans lines
        lines.insert(draw(st.integers(1, len(lines))), draw(GARBAGE) + b"\n")
    return b"".join(lines), rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_files())
def test_csv_loader_never_crashes_nor_loses_good_rows(case):
    content, rows = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.csv"
        path.write_bytes(content)
        reviews, _ = read(CsvSource(), path)
    got = iter([(r.id, r.text, r.stars) for r in reviews])
    assert all(row in got for row in rows), "a well-formed row was lost or reordered"


REVIEWS = st.builds(
    Review,
    id=st.text(min_size=1, max_size=8),
    text=st.text(max_size=40),
    title=st.text(max_size=10),
    stars=st.one_of(st.none(), st.integers(1, 5)),
    category=st.one_of(st.none(), st.sampled_from(["Books", "Toys", "book", "", "Lawn & Garden"])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(REVIEWS, max_size=30), st.integers(0, 3))
def test_tasks_account_for_every_random_review(reviews, seed):
    polarity = PolarityTask({"train_size": "3"}).split(iter(reviews), limit=None, seed=seed)
    scored = list(polarity.test)
    counts = polarity.counts
    assert counts["read"] == len(reviews)
    assert (
        counts["kept"] == len(scored) + len(polarity.train) == sum(r.stars in (1, 2, 4, 5) for r in reviews)
    )
    category = CategoryTask({"categories": "Books,Toys", "min_chars": "0"}).split(
        iter(reviews), limit=None, seed=seed
    )
    assert len(list(category.test)) + len(category.train) <= len(reviews)


def test_models_read_markup_cleaned_text_unless_the_task_keeps_it(tmp_path):
    reviews, _ = read(TsvSource(), write_release(tmp_path / "bad.tsv"))
    html_only = [r for r in reviews if r.id == "html"]
    by_markup = {}
    for markup in ("clean", "keep"):
        task = PolarityTask({"train_size": "0", "markup": markup})
        (example,) = task.split(iter(html_only), limit=None, seed=0).test
        by_markup[markup] = (example.text, task.fingerprint())
    assert by_markup["clean"][0] == 'Satisfied & happy\nThanks "Amazon" <3'
    assert by_markup["keep"][0] == GOOD["html"][0]
    assert by_markup["clean"][1] != by_markup["keep"][1]
    category = CategoryTask({"markup": "keep"})
    assert category.markup == "keep" and CategoryTask().markup == "clean"
    with pytest.raises(ValueError, match="markup=.*: choose one of clean, keep"):
        PolarityTask({"markup": "strip"})


# a damaged file, and malformed rows, on the terminal ----------------------------------------------------------


def release_rows(count: int, broken_every: int = 0) -> bytes:
    """A release-format TSV of `count` rows with varied text (so that gzip cannot squeeze it to nothing);
    with `broken_every`, every such row has a field too few."""
    lines = ["\t".join(HEADER)]
    for i in range(1, count + 1):
        words = " ".join(f"w{(i * 7919 + j * 104729) % 100003:05d}" for j in range(12))
        fields = ["US", str(i), f"R{i}", "P", "1", "t", "Gift Card", str(1 + i % 5), "0", "0", "N", "Y", "h",
                  f"{'great' if i % 2 else 'awful'} {words}", "2015-08-31"]  # fmt: skip
        if broken_every and i % broken_every == 0:
            fields = fields[:-1]
        lines.append("\t".join(fields))
    return ("\n".join(lines) + "\n").encode()


def run_words(host, monkeypatch, data: Path, out: Path):
    from harness import cli as cli_module
    from harness import plugin_manager

    monkeypatch.setattr(plugin_manager, "_host", host)
    args = ["run", "--backend", "cpu", "--task", "polarity", "--task-option", "train_size=0", "--data", str(data),
            "--model", "words", "--bootstrap", "0", "--out", str(out)]  # fmt: skip
    return CliRunner().invoke(cli_module.cli, args)


def test_a_truncated_gzip_stops_the_run_with_one_line_naming_the_file_and_exit_3(host, monkeypatch, tmp_path):
    import gzip

    packed = gzip.compress(release_rows(2000))
    data = tmp_path / "cut.tsv.gz"
    data.write_bytes(packed[: len(packed) // 2])  # past the rows the preflight reads
    result = run_words(host, monkeypatch, data, tmp_path / "run")
    assert result.exit_code == 3, result.output
    [line] = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert re.fullmatch(
        rf"Error: {re.escape(str(data))} is truncated or corrupt: \d+ lines read, then .+", line
    )
    assert "end-of-stream marker" in line
    assert not (tmp_path / "run" / "results.json").exists()  # no scores for half of the file


def test_a_gzip_truncated_within_the_first_rows_is_a_preflight_error(host, monkeypatch, tmp_path):
    import gzip

    packed = gzip.compress(release_rows(2000))
    data = tmp_path / "cut.tsv.gz"
    data.write_bytes(packed[:3000])
    result = run_words(host, monkeypatch, data, tmp_path / "run")
    assert result.exit_code == 2 and "nothing ran" in result.stderr
    assert f"{data} is truncated or corrupt" in result.stderr


def test_malformed_rows_are_counted_with_the_first_reasons_and_the_file_listing_them_all(
    host, monkeypatch, tmp_path
):
    data = tmp_path / "reviews.tsv"
    data.write_bytes(release_rows(40, broken_every=4))
    out = tmp_path / "run"
    result = run_words(host, monkeypatch, data, out)
    assert result.exit_code == 0, result.output
    listed = (out / "malformed_rows.txt").read_text().splitlines()
    assert listed == [f"{data}:{n + 1}: wrong field count: 14 fields, expected 15" for n in range(4, 41, 4)]
    assert (
        f"malformed rows: 10, skipped; all of them are listed in\n  {out / 'malformed_rows.txt'}\n"
        in result.stdout
    )
    for line in listed[:3]:
        assert f"  {line}\n" in result.stdout
    assert listed[3] not in result.stdout and "... and 7 more" in result.stdout
    # a later run of clean data into the same directory leaves no list of the old file's rows behind
    data.write_bytes(release_rows(40))
    result = run_words(host, monkeypatch, data, out)
    assert result.exit_code == 0 and "malformed rows: 10" not in result.stdout
    assert not (out / "malformed_rows.txt").exists()
