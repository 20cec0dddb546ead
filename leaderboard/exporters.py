"""The leaderboard formats: terminal, text, Markdown, CSV, JSON and HTML, all from the same tables."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from harness import Exporter, Register, hookimpl
from harness.leaderboard._findings import board_findings
from harness.leaderboard._html import render_html
from harness.leaderboard._table import Table, build_tables
from harness.leaderboard._terminal import render_plain, render_terminal

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # a leading tab or CR also starts a formula


def markdown_cell(value: str) -> str:
    """Review- or user-derived text must not break the table or become HTML: escape it."""
    for raw, safe in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("\r", " "), ("\n", " ")):
        value = value.replace(raw, safe)
    return value


def markdown_table(table: Table, findings: Sequence[str] = ()) -> list[str]:
    lines = ["| " + " | ".join(c.header for c in table.columns) + " |", "|" + "---|" * len(table.columns)]
    for cells in table.rows:
        texts = [markdown_cell(c.text) for c in cells]
        lines.append("| " + " | ".join(f"**{t}**" if c.best and t else t for t, c in zip(texts, cells, strict=True)) + " |")  # fmt: skip
    lines.append("")
    for paragraph in findings:
        lines += [markdown_cell(paragraph), ""]
    lines.append(markdown_cell(table.summary))
    lines += [f"- error: {markdown_cell(e)}" for e in table.errors]
    return lines


def render_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """One table per task (best values in bold), each followed by what it found, its data summary and errors."""
    findings = {
        f.task: [" ".join(f.sentences), *([f.reach] if f.reach else [])] for f in board_findings(rows)
    }
    blocks = ["\n".join(markdown_table(t, findings.get(t.task, []))) for t in build_tables(rows)]
    return "\n\n".join(blocks) + "\n"


def csv_cell(value: str) -> str:
    """Neutralise spreadsheet formulas (a cell starting with = + - @, tab or CR is shown as text)."""
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
    """Every task's rows under one header (the union of the tables' columns, in order)."""
    tables = build_tables(rows)
    headers = list(dict.fromkeys(c.header for t in tables for c in t.columns))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    for table in tables:
        for cells in table.rows:
            by_header = {c.header: cell.text for c, cell in zip(table.columns, cells, strict=True)}
            writer.writerow([csv_cell(by_header.get(h, "")) for h in headers])
    return buffer.getvalue()


def render_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rendered tables (every column), what each task's board found, plus every field of every row."""
    findings = {f.task: f.as_dict() for f in board_findings(rows)}
    tables = [
        {
            "task": t.task,
            "columns": [c.header for c in t.columns],
            "rows": [[cell.text for cell in cells] for cells in t.rows],
            "best": [
                [c.header for c, cell in zip(t.columns, cells, strict=True) if cell.best] for cells in t.rows
            ],
            "findings": findings.get(t.task),
            "summary": t.summary,
            "errors": t.errors,
        }
        for t in build_tables(rows)
    ]
    return (
        json.dumps({"tables": tables, "rows": list(rows)}, indent=2, ensure_ascii=False, default=str) + "\n"
    )


@hookimpl
def register_exporters(register: Register[Exporter]) -> None:
    register("terminal", Exporter("txt", render_terminal), description="rich tables, coloured on a terminal")
    register("text", Exporter("txt", render_plain), description="plain text tables")
    register("md", Exporter("md", render_markdown), description="Markdown tables")
    register("csv", Exporter("csv", render_csv), description="CSV, formula-safe")
    register("json", Exporter("json", render_json), description="the tables plus every field of every row")
    register("html", Exporter("html", render_html), description="one self-contained, sortable HTML page")
