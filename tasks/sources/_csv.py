"""Any CSV of reviews with a header row, its columns mapped by flags or by common names.

The delimiter is the one of comma, semicolon, tab and pipe that the header
row uses most (spreadsheets in much of Europe export with semicolons, and
their "Unicode text" export is tab-separated UTF-16). Quoted fields may span
lines (review bodies often do), so a row is reported by the line on which it ends.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path

from harness import IssueLog, Review, SourceOptions
from harness.tasks.sources._common import (
    check_header,
    data_name,
    file_stem,
    iter_lines,
    looks_like_json_lines,
    make_review,
    resolve_columns,
)

DELIMITERS = (",", ";", "\t", "|")


def sniff_delimiter(header: str) -> str:
    """The candidate delimiter found most often outside quotes in the header row; comma on a tie or none."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return max(DELIMITERS, key=lambda d: counts[d])


class _LineFeed:
    """Feeds decoded lines to `csv.reader` and remembers the number of the last one fed."""

    def __init__(self, location: str, issues: IssueLog) -> None:
        self._lines = iter_lines(location, issues)
        self.last = 0

    def __iter__(self) -> Iterator[str]:
        for number, line in self._lines:
            self.last = number
            yield line + "\n"


class CsvSource:
    """Reads delimited files with a header row (the source option `delimiter` overrides the sniffed one)."""

    description = (
        "CSV with a header row (, ; tab |); columns by --text-col/--stars-col/--category-col/--title-col"
    )

    def sniff(self, location: str) -> bool:
        return (
            data_name(location).endswith((".csv", ".txt"))
            and Path(location).is_file()
            and not looks_like_json_lines(location)
        )

    def read(self, location: str, options: SourceOptions, issues: IssueLog) -> Iterator[Review]:
        """Stream reviews; rows with the wrong field count or a bad star rating are reported and skipped."""
        feed = _LineFeed(location, issues)
        lines = iter(feed)
        first = next(lines, None)
        delimiter = options.extra.get("delimiter") or sniff_delimiter(first or "")
        reader = csv.reader(itertools.chain([first] if first is not None else [], lines), delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            issues.add(location, None, "empty file: no header row")
            return
        check_header(feed.last, delimiter.join(header), location, "CSV")
        columns = resolve_columns(header, options, location)
        stem = file_stem(location)
        rows = 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                if not rows:
                    issues.add(location, None, "no reviews: the file has a header row only")
                return
            except csv.Error as error:
                issues.add(location, feed.last, f"csv error: {error}")
                continue
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            rows += 1
            if len(fields) != len(header):
                issues.add(
                    location, feed.last, f"wrong field count: {len(fields)} fields, expected {len(header)}"
                )
                continue
            try:
                yield make_review(dict(zip(header, fields, strict=True)), columns, f"{stem}:{feed.last}")
            except ValueError as error:
                issues.add(location, feed.last, str(error))
