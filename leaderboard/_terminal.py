"""The leaderboard in the terminal: one table per task that fits the console, then what the board found.

By default a table keeps the columns a reader decides with (model, n, the
task's main metric with its interval, $ per 1,000 reviews, reviews/s, the
share sent to the large model, Pareto), sorted by the main metric, with model
labels on one line (abbreviated, with a legend, when they would not fit).
`--columns` picks other sets and `--wide` prints every column unfolded; the
file formats (Markdown, CSV, JSON, HTML) always keep every column.
"""

from __future__ import annotations

import io
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

from harness import HarnessError
from harness.leaderboard._table import IN_TRAINING_MARK, Cell, Column, Table, build_tables

DEFAULT_WIDTH = 100  # no terminal to ask (a pipe, a log file, CI)
NARROWEST = 40
SHORTEST_LABEL = 14  # labels are abbreviated no further; past that the other columns wrap
UNFOLDED = 10_000  # --wide: as wide as the table needs
# Control characters, and the bidi controls that can make a terminal show text other than it is: review
# text (quoted in error messages) and labels must never move the cursor, retitle the window or reorder text.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]+")

# Column sets for --columns: column keys, and the groups `main` (the task's main metric), `metrics`
# (every quality metric), `runtime` and `seeds` (every column of that kind the table has).
COST = ("runtime", "reviews_per_s", "cost_usd", "usd_per_1000", "latency", "escalated_share")
COLUMN_SETS: dict[str, tuple[str, ...]] = {
    "decision": ("model", "n", "main", "usd_per_1000", "reviews_per_s", "escalated_share", "pareto"),
    "quality": ("model", "n", "metrics", "seeds", "pareto"),
    "cost": ("model", "n", "main", *COST, "pareto", "pareto_cost"),
    "seeds": ("model", "n", "main", "seeds"),
    "all": ("model", "n", "metrics", "seeds", *COST, "pareto", "pareto_cost"),  # the task is the heading
}
NOT_METRICS = {"task", "model", "n", "pareto", "pareto_cost", *COST}


VIEW_FORMATS = ("terminal", "text")  # the formats a view shapes; the file formats keep every column


@dataclass(frozen=True)
class View:
    """Which column sets the terminal shows and how wide it is (None: the terminal's width)."""

    columns: tuple[str, ...] = ("decision",)
    wide: bool = False
    width: int | None = None

    def console_width(self) -> int:
        return max(NARROWEST, self.width or shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)

    def keys(self) -> tuple[str, ...]:
        return (
            COLUMN_SETS["all"] if self.wide else tuple(k for name in self.columns for k in COLUMN_SETS[name])
        )


def parse_columns(_ctx: Any, _param: Any, value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in COLUMN_SETS]
    if unknown or not names:
        raise click.BadParameter(f"unknown column set {', '.join(unknown) or repr(value)}; "
                                 f"choose from {', '.join(COLUMN_SETS)}")  # fmt: skip
    return names


def view_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--columns` and `--wide` for every command that prints the board (see `View`)."""
    command = click.option("--wide", is_flag=True,
                           help="Every column, unfolded, however wide the terminal.")(command)  # fmt: skip
    return click.option("--columns", default="decision", show_default=True, callback=parse_columns,
                        help="Column sets for the terminal, comma-separated: "
                        + ", ".join(COLUMN_SETS) + ".")(command)  # fmt: skip


def render_format(fmt: str, render: Callable[..., str | bytes], rows: Sequence[Mapping[str, Any]],
                  view: View) -> str | bytes:  # fmt: skip
    """Render one exporter's format; a view other than the default only for the terminal formats."""
    if fmt in VIEW_FORMATS:
        return render(rows, view=view)
    if view != View():
        raise HarnessError(
            f"--columns and --wide shape the terminal board; format {fmt!r} keeps every column"
        )
    return render(rows)


def printable(text: str) -> str:
    """Text with every control sequence replaced by a space, safe to print to a terminal."""
    return CONTROL.sub(" ", text)


def fit_lines(text: str, width: int) -> str:
    """`text` with every line longer than `width` wrapped, its continuation indented under the line's own
    indent, so that plain report text (`harness compare`'s) fits the terminal the board fits."""
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip(" "))]
        out += textwrap.wrap(line, width, subsequent_indent=indent + "  ", break_on_hyphens=False)
    return "\n".join(out)


def stacked_pages(
    leading: Sequence[int], rest: Sequence[int], width_of: Callable[[list[int]], int], width: int
) -> list[list[int]]:
    """`rest` in pages of consecutive columns, each as many as fit in `width` after the `leading` columns,
    so that a table too wide prints as stacked tables and drops no column."""
    pages: list[list[int]] = [[]]
    for i in rest:
        if pages[-1] and width_of([*leading, *pages[-1], i]) > width:
            pages.append([])
        pages[-1].append(i)
    return pages


def shown_columns(table: Table, keys: Sequence[str]) -> list[int]:
    """Indices of the table's columns in the view, in the table's own order."""

    def group(column: Column) -> str:
        if column.key == table.headline:
            return "main"
        if column.key.startswith("runtime_"):
            return "runtime"
        if column.key.startswith("seed_"):
            return "seeds"
        return column.key if column.key in NOT_METRICS else "metrics"

    wanted = set(keys)
    return [
        i
        for i, column in enumerate(table.columns)
        if column.key in wanted
        or group(column) in wanted
        or ("metrics" in wanted and group(column) == "main")
    ]


def sorted_rows(table: Table) -> list[int]:
    """Row indices, best on the main metric first; rows without it (failed, reported) keep their order last."""
    index = next((i for i, c in enumerate(table.columns) if c.key == table.headline), None)
    if index is None:
        return list(range(len(table.rows)))
    sign = -1 if table.columns[index].higher_is_better is not False else 1
    scored = [r for r in range(len(table.rows)) if table.rows[r][index].value is not None]
    ranked = sorted(scored, key=lambda r: sign * (table.rows[r][index].value or 0.0))
    return ranked + [r for r in range(len(table.rows)) if r not in scored]


def abbreviations(labels: Sequence[str], budget: int) -> dict[str, str]:
    """Label -> `start… (k)` for every label longer than `budget` characters, numbered in order; a label's
    in-training mark stays on."""
    short: dict[str, str] = {}
    for label in dict.fromkeys(labels):
        if len(label) > budget:
            kept = f" {IN_TRAINING_MARK}" if label.endswith(f" {IN_TRAINING_MARK}") else ""
            mark = f"… ({len(short) + 1}){kept}"
            short[label] = label[: max(1, budget - len(mark))].rstrip() + mark
    return short


def cell_text(column: Column, cell: Cell, short: Mapping[str, str], compact: bool) -> str:
    if column.key == "model":
        return short.get(cell.text, cell.text)
    if column.key == "pareto" and cell.text.startswith("dominated by "):
        return "dominated" if compact else f"dominated by {short.get(cell.text[13:], cell.text[13:])}"
    return cell.text


def rich_table(
    table: Table, view: View, shown: Sequence[int], short: Mapping[str, str], tight: bool = False
) -> Any:
    """The columns `shown`, best row first; `tight`: a column is only as wide as its widest value or its
    header's longest word, so headers wrap before values do."""
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    compact = not view.wide and "all" not in view.columns
    order = sorted_rows(table)
    texts = {
        i: [printable(cell_text(table.columns[i], table.rows[r][i], short, compact)) for r in order]
        for i in shown
    }
    out = RichTable(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for i in shown:
        column = table.columns[i]
        widest = max([len(t) for t in texts[i]] + [len(word) for word in column.header.split()])
        numeric = column.key not in ("task", "model", "pareto")
        out.add_column(column.header, justify="right" if numeric else "left", overflow="fold",
                       no_wrap=column.key == "model", max_width=widest if tight else None)  # fmt: skip
    for position, r in enumerate(order):
        cells = []
        for i in shown:
            column, cell = table.columns[i], table.rows[r][i]
            style = "bold green" if cell.best else ""
            if column.key == "pareto" and cell.text == "front":
                style = "bold cyan"
            cells.append(Text(texts[i][position], style=style))  # Text, not markup: labels may hold "[...]"
        out.add_row(*cells)
    return out


def fitted_tables(table: Table, view: View, console: Any, width: int) -> tuple[list[Any], dict[str, str]]:
    """The view as rich tables that fit `width`: headers wrapped, then labels shortened just enough (down to
    SHORTEST_LABEL); a view still too wide is split into tables of consecutive columns, each led by the model,
    and the labels lengthened again as far as every one of them allows."""
    shown = shown_columns(table, view.keys())
    unfolded = console.options.update(max_width=UNFOLDED)
    labels = [table.labels[r] for r in sorted_rows(table)]  # numbered as the rows are shown
    short: dict[str, str] = {}
    tight = False

    def width_of(columns: Sequence[int]) -> int:
        drawn = rich_table(table, view, columns, short, tight)
        return int(console.measure(drawn, options=unfolded).maximum)

    def shorten_labels(groups: Sequence[Sequence[int]]) -> None:
        nonlocal short
        short, longest = {}, max((len(label) for label in labels), default=0)
        while (excess := max(width_of(g) for g in groups) - width) > 0 and longest > SHORTEST_LABEL:
            longest = max(SHORTEST_LABEL, longest - excess)
            short = abbreviations(labels, longest)

    if view.wide or width_of(shown) <= width:
        return [rich_table(table, view, shown, short)], short
    tight = True
    shorten_labels([shown])
    if width_of(shown) <= width:
        return [rich_table(table, view, shown, short, tight)], short
    model = [i for i in shown if table.columns[i].key == "model"]
    pages = stacked_pages(model, [i for i in shown if i not in model], width_of, width)
    shorten_labels([model + page for page in pages])
    return [rich_table(table, view, model + page, short, tight) for page in pages], short


def render(rows: Sequence[Mapping[str, Any]], *, color: bool, view: View | None = None) -> str:
    from rich.console import Console
    from rich.text import Text

    from harness.leaderboard._findings import board_findings

    view = view or View()
    width = view.console_width()
    console = Console(record=True, width=UNFOLDED if view.wide else width, force_terminal=color,
                      no_color=not color, file=io.StringIO())  # fmt: skip
    findings = {f.task: f for f in board_findings(rows)}

    def note(text: str, style: str = "dim") -> None:
        console.print(Text(printable(text), style=style), width=width)

    for table in build_tables(rows):
        console.print(Text(printable(table.task), style="bold"))
        rendered, short = fitted_tables(table, view, console, width)
        for part in rendered:
            console.print(part)
        for number, label in enumerate(short, 1):
            note(f"({number}) {label}")
        found = findings.get(table.task)
        for sentence in found.sentences if found else []:
            note(sentence, "")
        if found and found.reach:
            note(found.reach)
        for part in table.summary.split(" · "):
            note(part)
        for error in table.errors:
            note(f"error: {error}", "red")
        console.print()
    text = console.export_text(styles=color)
    return text if color else "".join(line.rstrip() + "\n" for line in text.splitlines())


def render_terminal(rows: Sequence[Mapping[str, Any]], view: View | None = None) -> str:
    """ANSI colours when stdout is a terminal, plain text otherwise (pipes, files, CI logs)."""
    return render(rows, color=sys.stdout.isatty(), view=view)


def render_plain(rows: Sequence[Mapping[str, Any]], view: View | None = None) -> str:
    return render(rows, color=False, view=view)
