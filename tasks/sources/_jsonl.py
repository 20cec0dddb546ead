"""JSON lines: the multilingual corpus' schema, the release's field names, or any mapped columns.

The Multilingual Amazon Reviews Corpus (`review_body`, `review_title`,
`stars` as "1".."5", `product_category` slugs) and files converted with the
release's field names (`review_body`, `review_headline`, `star_rating`) are
both recognised without flags; anything else needs `--text-col` and friends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from harness import IssueLog, Review, SourceOptions
from harness.tasks.sources._common import (
    Columns,
    data_name,
    file_stem,
    iter_lines,
    looks_like_json_lines,
    make_review,
    resolve_columns,
)


class JsonlSource:
    """Reads one JSON object per line, compressed or not, recognised by its content whatever its name."""

    description = "JSON lines (multilingual corpus schema, release field names, or --text-col mapping)"

    def sniff(self, location: str) -> bool:
        if data_name(location).endswith((".jsonl", ".ndjson")):
            return True
        return Path(location).is_file() and looks_like_json_lines(location)

    def read(self, location: str, options: SourceOptions, issues: IssueLog) -> Iterator[Review]:
        """Stream reviews; the first JSON object decides which keys feed which field.

        A line that is not a JSON object, or an object without the text field,
        is reported and skipped. The first object lacking the required text
        field is an error, as a header without it would be.
        """
        stem = file_stem(location)
        columns: Columns | None = None
        lines = 0
        for number, line in iter_lines(location, issues):
            if not line.strip():
                continue
            lines += 1
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                issues.add(location, number, f"invalid json: {error.msg} at column {error.colno}")
                continue
            if not isinstance(row, dict):
                issues.add(location, number, f"not a json object: {type(row).__name__}")
                continue
            if columns is None:
                columns = resolve_columns(list(row), options, f"{location}:{number}")
            try:
                yield make_review(row, columns, f"{stem}:{number}")
            except ValueError as error:
                issues.add(location, number, str(error))
        if not lines and not issues.total:
            issues.add(location, None, "empty file: no reviews")
