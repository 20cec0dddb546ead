"""The sweep's and the cascade's tables in the terminal: fitted to its width as the board is, values whole.

A header and a label column wrap at their words; every other column is as wide as its widest value, so a
narrow terminal never cuts a number to `0.…`. A table still too wide is printed as stacked tables of
consecutive columns, each led by the row's leading columns, so no column is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.leaderboard._terminal import UNFOLDED, stacked_pages


def print_table(console: Any, title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], *,
                lead: int = 1, labelled: bool = True) -> None:  # fmt: skip
    """Print `rows` under `headers` within the console's width; `lead` columns start every stacked table,
    `labelled`: the first column holds labels, left-aligned and wrapping at their words."""
    unfolded = console.options.update(max_width=UNFOLDED)

    def width_of(columns: Sequence[int]) -> int:  # with labels and headers wrapped at their words
        return int(console.measure(_table(title, headers, rows, columns, labelled), options=unfolded).minimum)

    leading = list(range(min(lead, len(headers))))
    pages = stacked_pages(leading, range(lead, len(headers)), width_of, console.width)
    for number, page in enumerate(pages):
        console.print(_table(title if number == 0 else "", headers, rows, leading + page, labelled))


def _table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], columns: Sequence[int],
           labelled: bool) -> Any:  # fmt: skip
    from rich import box
    from rich.table import Table

    table = Table(title=title or None, box=box.SIMPLE_HEAD)
    for i in columns:
        label = labelled and i == 0
        values = (
            [len(word) for row in rows for word in row[i].split()] if label else [len(row[i]) for row in rows]
        )
        table.add_column(headers[i], justify="left" if label else "right",
                         min_width=max([*values, *(len(word) for word in headers[i].split())]))  # fmt: skip
    for row in rows:
        table.add_row(*(row[i] for i in columns))
    return table
