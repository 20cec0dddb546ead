"""Any CSV of reviews with a header row, its columns mapped by flags or by common names.

Quoted fields may span lines (review bodies often do), so a row is reported
by the line on which it ends.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from harness.tasks.sources._common import check_header, file_stem, iter_lines, make_review, resolve_columns
from harness.types import IssueLog, Review, SourceOptions


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
    """Reads comma-separated files (another delimiter with the source option `delimiter`)."""

    description = "CSV with a header row; columns by --text-col/--stars-col/--category-col/--title-col"

    def sniff(self, location: str) -> bool:
        return location.lower().endswith((".csv", ".csv.gz")) and Path(location).is_file()

    def read(self, location: str, options: SourceOptions, issues: IssueLog) -> Iterator[Review]:
        """Stream reviews; rows with the wrong field count or a bad star rating are reported and skipped."""
        feed = _LineFeed(location, issues)
        reader = csv.reader(feed, delimiter=options.extra.get("delimiter", ","))
        header = next(reader, None)
        if header is None:
            issues.add(location, None, "empty file: no header row")
            return
        check_header(feed.last, ",".join(header), location, "CSV")
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
