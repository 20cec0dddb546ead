"""Plain leaderboard formats: a text table, Markdown, CSV and JSON, all with the same columns."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from harness.hookspecs import hookimpl
from harness.types import Exporter

BASE_COLUMNS = ("task", "model", "n", "runtime_s", "reviews_per_s")
FORMULA_PREFIXES = ("=", "+", "-", "@")


def metric_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row.get("metrics", {})))
    return list(names)


def cell(row: Mapping[str, Any], column: str) -> str:
    if column == "model":
        return str(row.get("label") or row.get("model"))
    value = row.get("metrics", {}).get(column, row.get(column))
    if row.get("status") == "error" and column not in BASE_COLUMNS[:2]:
        return "error" if column == "n" else ""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if column.endswith("_s") else f"{value:.4f}"
    return str(value)


def table_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    columns = [*BASE_COLUMNS[:2], *metric_names(rows), *BASE_COLUMNS[2:]]
    return columns, [[cell(row, c) for c in columns] for row in rows]


def render_text(rows: Sequence[Mapping[str, Any]]) -> str:
    columns, body = table_rows(rows)
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    errors = [f"{r.get('label') or r['model']} on {r['task']}: {r['error']}" for r in rows if r.get("error")]
    return "\n".join(lines + [f"error: {e}" for e in errors]) + "\n"


def markdown_cell(value: str) -> str:
    """Review-derived text must not break the table: escape pipes and newlines."""
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    columns, body = table_rows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(markdown_cell(v) for v in r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def csv_cell(value: str) -> str:
    """Neutralise spreadsheet formulas (a cell starting with = + - @ is shown as text)."""
    if value.startswith(FORMULA_PREFIXES) and not _is_number(value):
        return "'" + value
    return value


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def render_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    columns, body = table_rows(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[csv_cell(v) for v in r] for r in body])
    return buffer.getvalue()


def render_json(rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2, ensure_ascii=False, default=str) + "\n"


@hookimpl
def register_exporters(register):
    register("text", Exporter("txt", render_text), description="plain text table")
    register("md", Exporter("md", render_markdown), description="Markdown table")
    register("csv", Exporter("csv", render_csv), description="CSV, formula-safe")
    register("json", Exporter("json", render_json), description="every field of every row")
