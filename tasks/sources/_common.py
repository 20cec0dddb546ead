"""What every review source shares: line streaming of compressed and UTF-16 files, column mapping, stars.

Files are recognised by their content, not their name: gzip, bz2, xz and
zstd by their magic bytes, UTF-16 by its byte order mark (spreadsheets'
"Unicode text" export). UTF-8 files are read line by line and each line is
decoded on its own, so one bad byte costs one review (reported with its line
number), never the file.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness import DEFAULT_CLUSTER_COL, NO_CLUSTER, IssueLog, Review, SourceOptions
from harness.errors import DamagedData, HarnessError

# ID1, ID2 and CM: RFC 1952 defines deflate (8) as the only method, so a text file opening with the
# two magic bytes by chance is still read as text.
GZIP_MAGIC = b"\x1f\x8b\x08"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# "BZh", the block size 1-9, then the first block's magic (pi) or the end-of-stream magic (sqrt pi).
BZ2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")

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
FLAGS = {"text": "--text-col", "stars": "--stars-col", "title": "--title-col", "category": "--category-col",
         "cluster": "--cluster"}  # fmt: skip


@dataclass(frozen=True)
class Columns:
    """Which source column feeds each field of a `Review` (None: the source has no such column).

    The cluster column stays among the review's extra columns too, so it can also be a slice column.
    """

    text: str
    stars: str | None
    title: str | None
    category: str | None
    id: str | None
    cluster: str | None = None

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
    return Columns(text, chosen["stars"], chosen["title"], chosen["category"], chosen["id"],
                   cluster_column(present, options, where, found))  # fmt: skip


def cluster_column(present: set[str], options: SourceOptions, where: str, found: Sequence[str]) -> str | None:
    """The column grouping reviews for intervals: the one asked for (which must exist), else the
    product where the data has it; None for `--cluster none`."""
    asked = options.cluster_col
    if asked == NO_CLUSTER:
        return None
    if asked is None:
        return DEFAULT_CLUSTER_COL if DEFAULT_CLUSTER_COL in present else None
    if asked not in present:
        raise ValueError(
            f"{where}: column {asked!r} (--cluster) not found; columns found: {', '.join(found)}"
        )
    return asked


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
    cluster = as_text(row.get(columns.cluster), columns.cluster).strip() if columns.cluster else ""
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
        cluster=cluster or None,
    )


def check_header(number: int, line: str, location: str, kind: str) -> None:
    """Refuse a file whose first line is not text: a binary file under a review file's name.

    Reading on would take some later line of bytes for the header and fail with
    a confusing "missing column" error, or worse, find one.
    """
    if number != 1 or "\x00" in line:
        raise ValueError(f"{location}: line 1 is not UTF-8 text; this is not a {kind} file of reviews")


def data_name(path: str | Path) -> str:
    """The file name, lower-cased, without a compression suffix: `Reviews.CSV.bz2` -> `reviews.csv`."""
    name = Path(path).name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def file_stem(path: str | Path) -> str:
    """The file name without its data and compression suffixes, for fallback review ids."""
    name = Path(path).name
    for suffix in (*COMPRESSED_SUFFIXES, ".tsv", ".csv", ".jsonl", ".ndjson", ".json", ".txt"):
        name = name.removesuffix(suffix)
    return name


def _open_zstd(path: str | Path) -> IO[bytes]:
    try:
        import zstandard
    except ImportError:
        raise HarnessError(
            f"{path} is zstd-compressed; reading it needs the zstandard package: pip install zstandard"
        ) from None
    reader = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)  # noqa: SIM115
    return io.BufferedReader(reader)  # type: ignore[arg-type]


def _opener(head: bytes) -> Callable[[str | Path], IO[bytes]]:
    """How to open a file that starts with `head`: decompressing it, or as it is."""
    if head.startswith(GZIP_MAGIC):
        return lambda path: gzip.open(path, "rb")  # type: ignore[return-value]
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0" and head[4:10] in BZ2_BLOCKS:
        return lambda path: bz2.open(path, "rb")
    if head.startswith(XZ_MAGIC):
        return lambda path: lzma.open(path, "rb")
    if head.startswith(ZSTD_MAGIC):
        return _open_zstd
    return lambda path: open(path, "rb")


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a file for reading bytes, decompressing gzip, bz2, xz and zstd by their magic bytes."""
    with open(path, "rb") as probe:
        head = probe.read(10)
    return _opener(head)(path)


def _decoded_lines(handle: IO[bytes], source: str, issues: IssueLog) -> Iterator[tuple[int, str]]:
    """Numbered lines of UTF-8 bytes, or of UTF-16 text when the stream starts with its byte order mark."""
    if handle.peek(2)[:2] in UTF16_BOMS:  # type: ignore[attr-defined]  # every opener above can peek
        text = io.TextIOWrapper(handle, encoding="utf-16", newline="\n")
        number = 0
        try:
            for number, line in enumerate(text, start=1):
                yield number, line.rstrip("\n").removesuffix("\r")
        except UnicodeDecodeError as error:
            issues.add(
                source, number + 1, f"undecodable bytes: invalid utf-16 ({error.reason}); reading stopped"
            )
        return
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


def iter_lines(path: str | Path, issues: IssueLog) -> Iterator[tuple[int, str]]:
    """Yield (line number, decoded line without its line ending) for every decodable line.

    Lines are split on "\\n" only (a stray "\\r" or form feed inside a review
    stays in its review). A UTF-8 line with a bad byte is reported and skipped.
    A truncated or corrupt compressed file is not a malformed row: it raises
    `DamagedData` naming the file and the lines read before the break.
    """
    source = str(path)
    with open_binary(path) as handle:
        number = 0
        try:
            for number, line in _decoded_lines(handle, source, issues):
                yield number, line
        except _read_errors() as error:
            raise DamagedData(
                f"{source} is truncated or corrupt: {number} lines read, then {error}; "
                "repair it or download it again"
            ) from None


def _read_errors() -> tuple[type[Exception], ...]:
    """What a truncated or corrupt compressed file raises; zstandard has its own error, when it is loaded."""
    errors: tuple[type[Exception], ...] = (EOFError, gzip.BadGzipFile, lzma.LZMAError, OSError)
    zstandard = sys.modules.get("zstandard")
    return (*errors, zstandard.ZstdError) if zstandard is not None else errors


def first_line(path: str | Path) -> str | None:
    """The first non-blank line of a file, decoded, or None when it has none or cannot be read."""
    try:
        for _, line in iter_lines(path, IssueLog()):
            if line.strip():
                return line
    except (OSError, HarnessError):
        return None
    return None


def looks_like_json_lines(path: str | Path) -> bool:
    """True when the file's first non-blank line is a JSON object, whatever the file is called."""
    line = first_line(path)
    if line is None or not line.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
