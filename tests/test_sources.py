"""Review sources: real files read completely, corrupted files reported line by line, nothing good lost."""

from __future__ import annotations

import gzip
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import DamagedData
from harness.tasks.sources import DemoSource, register_sources
from harness.tasks.sources._common import GZIP_MAGIC
from harness.tasks.sources._csv import CsvSource
from harness.tasks.sources._hf_dataset import HfDatasetSource
from harness.tasks.sources._jsonl import JsonlSource
from harness.tasks.sources._tsv import TsvSource
from harness.types import IssueLog, Review, SourceOptions

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GIFT_CARD = DATA / "amazon_reviews_us_Gift_Card_v1_00.tsv"
MARC = DATA / "marc_en_dev.jsonl"
BLITZER = DATA / "blitzer_multidomain_sentiment.jsonl"
needs_data = pytest.mark.skipif(not GIFT_CARD.exists(), reason="shared review data not present")


def read(
    source: Any, path: Path | str, options: SourceOptions | None = None
) -> tuple[list[Review], IssueLog]:
    issues = IssueLog()
    reviews = list(source.read(str(path), options or SourceOptions(), issues))
    return reviews, issues


def gift_card_lines(n: int) -> list[bytes]:
    """The header and the first n data rows of the real release file, as raw lines."""
    with open(GIFT_CARD, "rb") as handle:
        return [next(handle).rstrip(b"\n") for _ in range(n + 1)]


def test_register_sources_names_every_source() -> None:
    registered: dict[str, Any] = {}
    register_sources(lambda name, source, description="": registered.setdefault(name, (source, description)))
    assert set(registered) == {"tsv", "jsonl", "csv", "hf-dataset", "demo"}
    assert all(description for _, description in registered.values())


def test_sniffing_picks_the_source_by_location(tmp_path: Path) -> None:
    tsv, csv_file = tmp_path / "a.tsv.gz", tmp_path / "b.csv"
    tsv.write_bytes(b"")
    csv_file.write_bytes(b"")
    assert TsvSource().sniff(str(tsv)) and not TsvSource().sniff(str(csv_file))
    assert CsvSource().sniff(str(csv_file)) and not CsvSource().sniff(str(tsv))
    assert (
        JsonlSource().sniff("x.jsonl")
        and JsonlSource().sniff("x.jsonl.gz")
        and not JsonlSource().sniff("x.tsv")
    )
    assert DemoSource().sniff("demo") and not DemoSource().sniff(str(tsv))
    assert not HfDatasetSource().sniff(str(tmp_path)) and not HfDatasetSource().sniff("amazon_reviews_multi")


@needs_data
def test_real_release_tsv_is_read_completely() -> None:
    reviews, issues = read(TsvSource(), GIFT_CARD)
    with open(GIFT_CARD, "rb") as handle:
        rows = [line.split(b"\t") for line in handle.read().split(b"\n")[1:] if line.strip()]
    assert len(reviews) == len(rows) == 1452
    assert issues.total == 0
    assert [r.id for r in reviews] == [row[2].decode() for row in rows]
    assert [r.stars for r in reviews] == [int(row[7]) for row in rows]
    assert [r.text for r in reviews] == [row[13].decode() for row in rows]
    assert {r.category for r in reviews} == {"Gift Card"}
    assert reviews[0].title == rows[0][12].decode()
    assert reviews[0].extra["product_id"] == rows[0][3].decode()


def write_corrupted(path: Path, compress: bool) -> tuple[list[str], dict[int, str]]:
    """A release file with bad rows mixed in; returns the good review ids and the bad line numbers."""
    lines = gift_card_lines(12)
    good = [line.split(b"\t")[2].decode() for line in lines[1:]]
    bad_field_count = lines[3].rsplit(b"\t", 2)[0]
    fields = lines[5].split(b"\t")
    fields[7] = b"five"
    bad_stars = b"\t".join(fields)
    fields = lines[6].split(b"\t")
    fields[13] = b"caf\xe9 \xff broken"
    bad_bytes = b"\t".join(fields)
    fields = lines[7].split(b"\t")
    fields[7] = b"9"
    out_of_range = b"\t".join(fields)
    # Bad rows are inserted, good rows all stay: physical line numbers count from the header as 1.
    content = [lines[0], lines[1], bad_field_count, lines[2], bad_stars, lines[3], b"", bad_bytes]
    content += [lines[4], out_of_range, *lines[5:]]
    data = b"\n".join(content) + b"\n"
    path.write_bytes(gzip.compress(data) if compress else data)
    return good, {
        3: "wrong field count",
        5: "non-numeric star rating",
        8: "undecodable bytes",
        10: "star rating",
    }


@needs_data
@pytest.mark.parametrize("compress", [False, True])
def test_corrupted_tsv_names_bad_lines_and_keeps_every_good_row(tmp_path: Path, compress: bool) -> None:
    path = tmp_path / ("broken.tsv.gz" if compress else "broken.tsv")
    good, bad = write_corrupted(path, compress)
    reviews, issues = read(TsvSource(), path)
    assert [r.id for r in reviews] == good
    assert {issue.line: issue.reason for issue in issues.issues}.keys() == bad.keys()
    for issue in issues.issues:
        assert issue.source == str(path)
        assert issue.reason.startswith(bad[issue.line])
        assert f"{path}:{issue.line}: " in str(issue)
    assert issues.counts["wrong field count"] == 1
    assert "13 fields, expected 15" in next(i.reason for i in issues.issues if i.line == 3)


def test_text_that_opens_with_the_gzip_magic_bytes_is_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b'\x1f\x8b\n{"review_id": "R0", "review_body": "fine", "stars": "5"}\n')
    reviews, issues = read(JsonlSource(), path)
    assert [(r.id, r.text) for r in reviews] == [("R0", "fine")]
    assert [issue.line for issue in issues.issues] == [1]


@needs_data
def test_a_truncated_gzip_yields_the_rows_before_the_cut_then_stops_naming_the_file(tmp_path: Path) -> None:
    whole = b"\n".join(gift_card_lines(400)) + b"\n"
    packed = gzip.compress(whole)
    path = tmp_path / "cut.tsv.gz"
    path.write_bytes(packed[: len(packed) // 2])
    reviews: list[Review] = []
    with pytest.raises(
        DamagedData, match=r"cut\.tsv\.gz is truncated or corrupt: (\d+) lines read"
    ) as raised:
        reviews.extend(TsvSource().read(str(path), SourceOptions(), IssueLog()))
    assert 0 < len(reviews) < 400
    assert f"{len(reviews) + 1} lines read" in str(raised.value)  # the header and every row yielded
    expected_ids = [line.split(b"\t")[2].decode() for line in gift_card_lines(len(reviews))[1:]]
    assert [r.id for r in reviews] == expected_ids


@needs_data
@pytest.mark.parametrize("column", ["star_rating", "review_body"])
def test_missing_required_column_is_an_error_naming_it(tmp_path: Path, column: str) -> None:
    lines = [line.split(b"\t") for line in gift_card_lines(3)]
    drop = lines[0].index(column.encode())
    path = tmp_path / "missing.tsv"
    path.write_bytes(b"\n".join(b"\t".join(f for i, f in enumerate(row) if i != drop) for row in lines))
    with pytest.raises(ValueError) as error:
        read(TsvSource(), path)
    assert repr(column) in str(error.value)
    assert "columns found: marketplace, customer_id" in str(error.value)


def test_tsv_without_review_id_gets_line_ids_and_handles_crlf(tmp_path: Path) -> None:
    path = tmp_path / "plain.tsv"
    path.write_bytes(b"review_body\tstar_rating\r\ngood one\t5\r\nbad one\t1\r\n")
    reviews, issues = read(TsvSource(), path)
    assert [(r.id, r.text, r.stars) for r in reviews] == [
        ("plain:2", "good one", 5),
        ("plain:3", "bad one", 1),
    ]
    assert issues.total == 0


@needs_data
def test_multilingual_corpus_jsonl_is_read_completely() -> None:
    reviews, issues = read(JsonlSource(), MARC)
    assert len(reviews) == 5000 and issues.total == 0
    assert Counter(r.stars for r in reviews) == {1: 1000, 2: 1000, 3: 1000, 4: 1000, 5: 1000}
    first = json.loads(MARC.open(encoding="utf-8").readline())
    assert reviews[0].id == first["review_id"] and reviews[0].text == first["review_body"]
    assert reviews[0].title == first["review_title"] and reviews[0].category == first["product_category"]
    assert reviews[0].extra["language"] == "en"


@needs_data
def test_release_field_names_in_jsonl_are_recognised() -> None:
    reviews, issues = read(JsonlSource(), BLITZER)
    assert len(reviews) == 8000 and issues.total == 0
    assert {r.stars for r in reviews} == {1, 2, 4, 5}
    first = json.loads(BLITZER.open(encoding="utf-8").readline())
    assert reviews[0].title == first["review_headline"] and reviews[0].text == first["review_body"]


def test_jsonl_bad_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    rows = [
        json.dumps({"review_id": "a", "review_body": "fine", "stars": "4", "product_category": "book"}),
        "{not json",
        "[1, 2]",
        json.dumps({"review_id": "b", "review_title": "no body", "stars": "1"}),
        json.dumps({"review_id": "c", "review_body": "odd", "stars": "four"}),
        json.dumps({"review_id": "d", "review_body": ["a list"], "stars": 2}),
        json.dumps({"review_id": "e", "review_body": "", "stars": None}),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    reviews, issues = read(JsonlSource(), path)
    assert [(r.id, r.text, r.stars) for r in reviews] == [("a", "fine", 4), ("e", "", None)]
    assert [(i.line, i.reason.split(":")[0]) for i in issues.issues] == [
        (2, "invalid json"),
        (3, "not a json object"),
        (4, "missing field"),
        (5, "non-numeric star rating"),
        (6, "bad field type"),
    ]


def test_jsonl_column_flags_map_any_schema(tmp_path: Path) -> None:
    path = tmp_path / "custom.jsonl"
    rows = [
        {"opinion": "love it", "score": 5, "dept": "toy", "heading": "yes"},
        {"opinion": "meh", "score": 2},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with pytest.raises(ValueError, match="missing required column 'review_body'.*columns found: opinion"):
        read(JsonlSource(), path)
    options = SourceOptions(text_col="opinion", stars_col="score", category_col="dept", title_col="heading")
    reviews, issues = read(JsonlSource(), path, options)
    assert [(r.id, r.text, r.stars, r.category, r.title) for r in reviews] == [
        ("custom:1", "love it", 5, "toy", "yes"),
        ("custom:2", "meh", 2, None, ""),
    ]
    with pytest.raises(
        ValueError, match=r"column 'rating' \(--stars-col\) not found; columns found: opinion"
    ):
        read(JsonlSource(), path, SourceOptions(text_col="opinion", stars_col="rating"))


def test_csv_with_quoted_multiline_bodies_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text(
        "id,comment,rating,cat\n"
        '1,"first line\nsecond line, with comma",5,Books\n'
        "2,too,many,fields,here\n"
        "3,short,x,Toys\n"
        '4,"said ""great""",1,Toys\n',
        encoding="utf-8",
    )
    options = SourceOptions(
        text_col="comment", stars_col="rating", category_col="cat", extra={"id_col": "id"}
    )
    reviews, issues = read(CsvSource(), path, options)
    assert [(r.id, r.text, r.stars, r.category) for r in reviews] == [
        ("1", "first line\nsecond line, with comma", 5, "Books"),
        ("4", 'said "great"', 1, "Toys"),
    ]
    assert [(i.line, i.reason) for i in issues.issues] == [
        (4, "wrong field count: 5 fields, expected 4"),
        (5, "non-numeric star rating: 'x'"),
    ]


def test_csv_other_delimiter_and_default_column_names(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_bytes(b"text;stars;category\ngood;4;Shoes\n\xff\xfe;2;Shoes\nbad;1;Shoes\n")
    reviews, issues = read(CsvSource(), path, SourceOptions(extra={"delimiter": ";"}))
    assert [(r.text, r.stars) for r in reviews] == [("good", 4), ("bad", 1)]
    assert [(i.line, i.reason.split(":")[0]) for i in issues.issues] == [(3, "undecodable bytes")]


def test_local_saved_hf_dataset_is_streamed(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = {
        "review_id": ["x1", "x2", "x3"],
        "review_body": ["works well", "broke in a day", "ok"],
        "review_title": ["good", "bad", "meh"],
        "stars": [5, 1, 7],
        "product_category": ["wireless", "wireless", "pc"],
    }
    single = tmp_path / "single"
    datasets.Dataset.from_dict(rows).save_to_disk(str(single))
    several = tmp_path / "several"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(rows),
            "test": datasets.Dataset.from_dict({k: v[:1] for k, v in rows.items()}),
        }
    ).save_to_disk(str(several))
    source = HfDatasetSource()
    assert source.sniff(str(single)) and source.sniff(str(several))

    reviews, issues = read(source, single)
    assert [(r.id, r.text, r.title, r.stars, r.category) for r in reviews] == [
        ("x1", "works well", "good", 5, "wireless"),
        ("x2", "broke in a day", "bad", 1, "wireless"),
    ]
    assert [(i.line, i.reason) for i in issues.issues] == [(2, "star rating out of range: 7")]

    assert len(read(source, several)[0]) == 2
    assert [r.id for r in read(source, several, SourceOptions(extra={"split": "test"}))[0]] == ["x1"]
    with pytest.raises(ValueError, match="no split 'validation'; splits found: train, test"):
        read(source, several, SourceOptions(extra={"split": "validation"}))


def test_demo_sample_reads_cleanly() -> None:
    from importlib import resources

    if not (resources.files("harness.tasks") / "data" / "sample.tsv").is_file():
        pytest.skip("the embedded sample is not written yet")
    reviews, issues = read(DemoSource(), "demo")
    assert issues.total == 0
    assert len(reviews) >= 440
    assert len({r.id for r in reviews}) == len(reviews)
    assert {r.stars for r in reviews} == {1, 2, 3, 4, 5}


# Property tests: random rows never crash a loader, and no well-formed row is lost.

FIELD = st.text(st.characters(blacklist_characters="\t\n\r", blacklist_categories=("Cs",)), max_size=30)
GARBAGE = st.binary(max_size=60).filter(lambda raw: b"\n" not in raw)
HEADER = [
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


def is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, UnicodeDecodeError):
        return False


def good_rows(draw: st.DrawFn) -> list[tuple[str, str, int]]:
    count = draw(st.integers(0, 8))
    return [(f"R{i}", draw(FIELD), draw(st.integers(1, 5))) for i in range(count)]


@st.composite
def tsv_files(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str, int]]]:
    rows = good_rows(draw)
    lines = []
    for review_id, text, stars in rows:
        values = dict.fromkeys(HEADER, "x")
        values.update(review_id=review_id, review_body=text, star_rating=str(stars))
        lines.append("\t".join(values[c] for c in HEADER).encode())
    for _ in range(draw(st.integers(0, 6))):
        lines.insert(draw(st.integers(0, len(lines))), draw(GARBAGE))
    return b"\n".join(["\t".join(HEADER).encode(), *lines]), rows


@st.composite
def jsonl_files(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str, int]]]:
    rows = good_rows(draw)
    lines = [
        json.dumps(
            {"review_id": i, "review_body": t, "stars": str(s)}, ensure_ascii=draw(st.booleans())
        ).encode()
        for i, t, s in rows
    ]
    for _ in range(draw(st.integers(0, 6))):
        bad = draw(
            st.one_of(
                GARBAGE.filter(lambda raw: not is_json_object(raw)),
                st.just(b'{"review_id": "bad", "review_body": "x", "stars": "?"}'),
            )
        )
        lines.insert(draw(st.integers(0, len(lines))), bad)
    return b"\n".join(lines), rows


def assert_subsequence(wanted: list[tuple[str, str, int]], reviews: list[Review]) -> None:
    got = iter([(r.id, r.text, r.stars) for r in reviews])
    assert all(row in got for row in wanted), "a well-formed row was lost or reordered"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tsv_files())
def test_tsv_loader_never_crashes_nor_loses_good_rows(case: tuple[bytes, list[tuple[str, str, int]]]) -> None:
    content, rows = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.tsv"
        path.write_bytes(content)
        reviews, _ = read(TsvSource(), path)
    assert_subsequence(rows, reviews)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jsonl_files())
def test_jsonl_loader_never_crashes_nor_loses_good_rows(
    case: tuple[bytes, list[tuple[str, str, int]]],
) -> None:
    content, rows = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.jsonl"
        path.write_bytes(content)
        if content.startswith(GZIP_MAGIC):  # read as a gzip file, and a damaged one: it says so
            with pytest.raises(DamagedData, match="truncated or corrupt"):
                read(JsonlSource(), path)
            return
        reviews, _ = read(JsonlSource(), path)
    assert_subsequence(rows, reviews)


# Files as people export them -------------------------------------------------------------------------------
ROWS = [("great value, would buy again", "5", "Toys"), ('said "awful"; broke | twice', "1", "Books")]


def delimited(delimiter: str) -> str:
    """A header and two rows in the release's column names, quoted as a spreadsheet writes them."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["review_body", "star_rating", "product_category"])
    writer.writerows(ROWS)
    return out.getvalue()


def expected() -> list[tuple[str, int | None, str | None]]:
    return [(text, int(stars), category) for text, stars, category in ROWS]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_delimiter_is_sniffed_from_the_header(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "export.csv"
    path.write_text(delimited(delimiter), encoding="utf-8")
    reviews, issues = read(CsvSource(), path)
    assert [(r.text, r.stars, r.category) for r in reviews] == expected() and not issues.total


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])  # utf-16 writes its byte order mark
@pytest.mark.parametrize("name,delimiter", [("export.csv", ";"), ("unicode-text.txt", "\t")])
def test_csv_and_spreadsheet_unicode_text_in_each_encoding(
    tmp_path: Path, encoding: str, name: str, delimiter: str
) -> None:
    path = tmp_path / name
    path.write_bytes(delimited(delimiter).replace("great", "grëat ☺").encode(encoding))
    assert CsvSource().sniff(str(path))
    reviews, issues = read(CsvSource(), path)
    assert [r.text for r in reviews][0] == "grëat ☺ value, would buy again"
    assert [(r.stars, r.category) for r in reviews] == [(5, "Toys"), (1, "Books")] and not issues.total


def test_utf16_big_endian_with_its_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "be.csv"
    path.write_bytes(b"\xfe\xff" + delimited(",").encode("utf-16-be"))
    reviews, _ = read(CsvSource(), path)
    assert [(r.text, r.stars, r.category) for r in reviews] == expected()


JSON_ROWS = [{"review_body": "lovely", "stars": "5"}, {"review_body": "broken", "stars": "1"}]


@pytest.mark.parametrize("name", ["reviews.tsv", "reviews.txt", "reviews.csv", "reviews"])
def test_json_lines_are_recognised_by_content_whatever_the_name(tmp_path: Path, name: str) -> None:
    from harness.boards import Board
    from harness.plugin_manager import PluginHost
    from harness.split_source import open_reviews

    path = tmp_path / name
    path.write_text("\n".join(json.dumps(row) for row in JSON_ROWS) + "\n", encoding="utf-8")
    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    board = Board(name="b", tasks=["polarity"], models=[], data=str(path))
    issues = IssueLog()
    reviews = list(open_reviews(host.registries, board, issues))
    assert [(r.text, r.stars) for r in reviews] == [("lovely", 5), ("broken", 1)] and not issues.total
    assert not TsvSource().sniff(str(path)) and not CsvSource().sniff(str(path))


def compress(kind: str, data: bytes) -> bytes:
    import bz2
    import lzma

    if kind == "gz":
        return gzip.compress(data)
    if kind == "bz2":
        return bz2.compress(data)
    if kind == "xz":
        return lzma.compress(data)
    zstandard = pytest.importorskip("zstandard")
    return bytes(zstandard.ZstdCompressor().compress(data))


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zst"])
@pytest.mark.parametrize("form", ["tsv", "csv", "jsonl"])
def test_every_compression_is_read_by_its_magic_bytes(tmp_path: Path, kind: str, form: str) -> None:
    from harness.boards import Board
    from harness.plugin_manager import PluginHost
    from harness.split_source import open_reviews

    text = {
        "tsv": delimited("\t").replace("\r\n", "\n").replace('"', ""),
        "csv": delimited(","),
        "jsonl": "\n".join(json.dumps(dict(zip(("review_body", "star_rating", "product_category"), row,
                                                strict=True))) for row in ROWS),
    }[form]  # fmt: skip
    path = tmp_path / f"reviews.{form}.{kind}"
    path.write_bytes(compress(kind, text.encode("utf-8")))
    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    board = Board(name="b", tasks=["polarity"], models=[], data=str(path))
    issues = IssueLog()
    reviews = list(open_reviews(host.registries, board, issues))
    texts = [text.replace('"', "") if form == "tsv" else text for text, _, _ in ROWS]
    assert [(r.text, r.stars) for r in reviews] == [
        (t, int(s)) for t, (_, s, _) in zip(texts, ROWS, strict=True)
    ]
    assert not issues.total


def test_zstd_without_the_zstandard_package_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from harness.errors import HarnessError

    path = tmp_path / "reviews.jsonl.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 16)
    monkeypatch.setitem(sys.modules, "zstandard", None)  # an import of it now fails
    with pytest.raises(HarnessError, match="needs the zstandard package: pip install zstandard"):
        read(JsonlSource(), path)


def test_bz2_lookalike_text_is_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("BZh9 is a review body,stars\nfine,5\n", encoding="utf-8")
    reviews, issues = read(CsvSource(), path, SourceOptions(text_col="BZh9 is a review body"))
    assert [(r.text, r.stars) for r in reviews] == [("fine", 5)] and not issues.total
