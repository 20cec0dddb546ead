"""The leaderboard in the terminal: rich tables, best values in bold green, Pareto front marked."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from harness.leaderboard._table import Table, build_tables

WIDTH = 240  # the study's columns, runtime, cost, latency and Pareto without folding
# Control characters, and the bidi controls that can make a terminal show text other than it is: review
# text (quoted in error messages) and labels must never move the cursor, retitle the window or reorder text.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]+")


def printable(text: str) -> str:
    """Text with every control sequence replaced by a space, safe to print to a terminal."""
    return CONTROL.sub(" ", text)


def rich_table(table: Table) -> Any:
    from rich.table import Table as RichTable
    from rich.text import Text

    out = RichTable()
    for column in table.columns:
        numeric = column.key not in ("task", "model", "pareto")
        out.add_column(column.header, justify="right" if numeric else "left", overflow="fold")
    for cells in table.rows:
        texts = []
        for column, cell in zip(table.columns, cells, strict=True):
            style = "bold green" if cell.best else ""
            if column.key == "pareto" and cell.text == "front":
                style = "bold cyan"
            texts.append(
                Text(printable(cell.text), style=style)
            )  # Text, not markup: labels may contain "[...]"
        out.add_row(*texts)
    return out


def render(rows: Sequence[Mapping[str, Any]], *, color: bool) -> str:
    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=WIDTH, force_terminal=color, no_color=not color, file=io.StringIO())
    for table in build_tables(rows):
        console.print(Text(printable(table.task), style="bold"))
        console.print(rich_table(table))
        console.print(Text(printable(table.summary), style="dim"))
        for error in table.errors:
            console.print(Text(f"error: {printable(error)}", style="red"))
        console.print()
    return console.export_text(styles=color)


def render_terminal(rows: Sequence[Mapping[str, Any]]) -> str:
    """ANSI colours when stdout is a terminal, plain text otherwise (pipes, files, CI logs)."""
    return render(rows, color=sys.stdout.isatty())


def render_plain(rows: Sequence[Mapping[str, Any]]) -> str:
    return render(rows, color=False)
