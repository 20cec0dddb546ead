"""What every review source shares: gzip-aware line streaming, column mapping, star parsing.

Sources read line by line and decode each line on its own, so one bad byte
costs one review (reported with its line number), never the file.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.types import IssueLog, Review, SourceOptions

# ID1, ID2 and CM: RFC 1952 defines deflate (8) as the only method, so a text file opening with the
# two magic bytes by chance is still read as text.
GZIP_MAGIC = b"\x1f\x8b\x08"

# Column names tried, in order, when the user gives no mapping flag. The first
# names are the original release's, then the multilingual corpus', then common
# generic ones.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "text": ("review_body", "text", "body", "review", "review_text", "content"),
    "stars": ("star_rating", "stars", "rating", "overall", "score"),
    "title": ("review_headline", "review_title", "title", "headline", "summary"),
    "category": ("product_category", "category"),
    "id": ("review_id", "id"),
}
FLAGS = {"text": "--text-col", "stars": "--stars-col", "title": "--title-col", "category": "--category-col"}


@dataclass(frozen=True)
class Columns:
    """Which source column feeds each field of a `Review` (None: the source has no such column)."""

    text: str
    stars: str | None
    title: str | None
    category: str | None
    id: str | None

    def used(self) -> set[str]:
        return {c for c in (self.text, self.stars, self.title, self.category, self.id) if c is not None}


def resolve_columns(
    found: Sequence[str], options: SourceOptions, where: str, *, require: tuple[str, ...] = ("text",)
) -> Columns:
    """Map the columns a source has onto review fields, from the flags or the known names.

    A column named by a flag but absent, or a required field with no column,
    is an error naming what was wanted and what was found: reading on would
    silently produce reviews without text or labels.
    """
    present = set(found)
    explicit = {
        "text": options.text_col,
        "stars": options.stars_col,
        "title": options.title_col,
        "category": options.category_col,
        "id": options.extra.get("id_col"),
    }
    chosen: dict[str, str | None] = {}
    for field, name in explicit.items():
        if name is not None:
            if name not in present:
                flag = FLAGS.get(field, "id_col")
                raise ValueError(
                    f"{where}: column {name!r} ({flag}) not found; columns found: {', '.join(found)}"
                )
            chosen[field] = name
        else:
            chosen[field] = next((c for c in CANDIDATES[field] if c in present), None)
    for field in require:
        if chosen[field] is None:
            raise ValueError(
                f"{where}: missing required column {CANDIDATES[field][0]!r} (or one of "
                f"{', '.join(CANDIDATES[field][1:])}; set {FLAGS[field]}); columns found: {', '.join(found)}"
            )
    text = chosen["text"]
    assert text is not None
    return Columns(text, chosen["stars"], chosen["title"], chosen["category"], chosen["id"])


def parse_stars(value: Any) -> int | None:
    """A 1-5 star rating from a string or number; None when the value is empty or missing.

    Raises ValueError with the issue reason ("non-numeric star rating",
    "star rating out of range") so the caller can report the row.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"non-numeric star rating: {value!r}")
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"non-numeric star rating: {value[:40]!r}") from None
    else:
        number = float(value)
    if not number.is_integer():
        raise ValueError(f"non-numeric star rating: {value!r}")
    if not 1 <= number <= 5:
        raise ValueError(f"star rating out of range: {value!r}")
    return int(number)


def as_text(value: Any, column: str) -> str:
    """A field as text: None is empty, numbers are written out, containers are an error.

    A JSON escape can smuggle in half of a surrogate pair ("\\ud83d"), which no
    UTF-8 file, tokenizer or cache can hold; such a row is reported, never passed on.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ValueError(
                    f"undecodable text: lone surrogate in {column} at character {error.start}"
                ) from None
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"bad field type: {column} is {type(value).__name__}")


def make_review(row: Mapping[str, Any], columns: Columns, fallback_id: str) -> Review:
    """Build a `Review` from one row; raises ValueError with the issue reason for a bad row."""
    if columns.text not in row:
        raise ValueError(f"missing field: {columns.text}")
    text = as_text(row[columns.text], columns.text)
    stars = parse_stars(row.get(columns.stars)) if columns.stars else None
    title = as_text(row.get(columns.title), columns.title) if columns.title else ""
    category = as_text(row.get(columns.category), columns.category).strip() if columns.category else ""
    review_id = as_text(row.get(columns.id), columns.id).strip() if columns.id else ""
    used = columns.used()
    extra = {
        k: v if isinstance(v, str) else str(v) for k, v in row.items() if k not in used and v is not None
    }
    return Review(
        id=review_id or fallback_id,
        text=text,
        title=title,
        stars=stars,
        category=category or None,
        extra=extra,
    )


def check_header(number: int, line: str, location: str, kind: str) -> None:
    """Refuse a file whose first line is not text: a binary file under a review file's name.

    Reading on would take some later line of bytes for the header and fail with
    a confusing "missing column" error, or worse, find one.
    """
    if number != 1 or "\x00" in line:
        raise ValueError(f"{location}: line 1 is not UTF-8 text; this is not a {kind} file of reviews")


def file_stem(path: str | Path) -> str:
    """The file name without its data and compression suffixes, for fallback review ids."""
    name = Path(path).name
    for suffix in (".gz", ".tsv", ".csv", ".jsonl", ".ndjson", ".json", ".txt"):
        name = name.removesuffix(suffix)
    return name


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a file for reading bytes, decompressing it when it starts with a gzip header."""
    with open(path, "rb") as probe:
        magic = probe.read(len(GZIP_MAGIC))
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def iter_lines(path: str | Path, issues: IssueLog) -> Iterator[tuple[int, str]]:
    """Yield (line number, decoded line without its line ending) for every decodable line.

    Lines are split on "\\n" only (a stray "\\r" or form feed inside a review
    stays in its review). A line that is not UTF-8 is reported and skipped.
    A truncated gzip file ends the stream with one reported issue.
    """
    source = str(path)
    with open_binary(path) as handle:
        number = 0
        try:
            for number, raw in enumerate(handle, start=1):
                raw = raw.rstrip(b"\n").removesuffix(b"\r")
                if number == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    issues.add(source, number, f"undecodable bytes: invalid utf-8 at byte {error.start}")
                    continue
                yield number, line
        except (EOFError, gzip.BadGzipFile, OSError) as error:
            issues.add(source, number + 1, f"unreadable file: {error}")
