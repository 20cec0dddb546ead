"""The original Amazon Customer Reviews release: tab separated, no quoting, a header of 15 columns.

Files such as `amazon_reviews_us_Books_v1_00.tsv(.gz)` and
`amazon_reviews_multilingual_US_v1_00.tsv` hold millions of rows and a few
broken ones; the reader streams them and reports each broken row by line.
"""

from __future__ import annotations

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


class TsvSource:
    """Reads tab-separated files with a header row, the original release's format."""

    description = "Amazon Customer Reviews release TSV (amazon_reviews_*.tsv, compressed or not)"

    def sniff(self, location: str) -> bool:
        return (
            data_name(location).endswith(".tsv")
            and Path(location).is_file()
            and not looks_like_json_lines(location)
        )

    def read(self, location: str, options: SourceOptions, issues: IssueLog) -> Iterator[Review]:
        """Stream reviews; the header's field count is what every row must have.

        Fields are split on tabs with no quote handling, as the release was
        written. Blank lines are skipped silently (the release files end with
        some); rows with the wrong field count or a bad star rating are
        reported and skipped.
        """
        lines = iter_lines(location, issues)
        first = next(lines, None)
        if first is None:
            issues.add(location, None, "empty file: no header row")
            return
        check_header(*first, location, "tab-separated")
        names = first[1].split("\t")
        columns = resolve_columns(names, options, location, require=("text", "stars"))
        stem = file_stem(location)
        expected = len(names)
        rows = 0
        for number, line in lines:
            if not line.strip():
                continue
            rows += 1
            fields = line.split("\t")
            if len(fields) != expected:
                issues.add(location, number, f"wrong field count: {len(fields)} fields, expected {expected}")
                continue
            try:
                yield make_review(dict(zip(names, fields, strict=True)), columns, f"{stem}:{number}")
            except ValueError as error:
                issues.add(location, number, str(error))
        if not rows:
            issues.add(location, None, "no reviews: the file has a header row only")
