"""`harness slices`: a run's quality per slice of the reviews, read from results.json and printed as text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import HarnessError
from harness.leaderboard._table import TASK_METRICS, format_metric
from harness.leaderboard._terminal import printable
from harness.results import read_results

DIMENSION_TITLES = {
    "length": "length (word tokens)",
    "negation": "negative words per 100 words",
    "category": "category",
    "stars": "star rating",
}


@dataclass
class SliceTable:
    """One row's slices along one dimension, ready to print or draw."""

    task: str
    model: str
    label: str
    dimension: str
    columns: list[tuple[str, str]]  # (metric key, header)
    slices: list[dict[str, Any]]

    @property
    def escalates(self) -> bool:
        return any("escalated_share" in s for s in self.slices)


def slice_columns(task: str, slices: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The task's two leading metrics (macro-F1 and accuracy, top-1 and top-2), or every metric reported."""
    reported = dict.fromkeys(name for s in slices for name in s.get("metrics") or {})
    known = [(key, header) for key, header in TASK_METRICS.get(task, ())[:2] if key in reported]
    return known or [(name, name) for name in reported]


def slice_tables(
    rows: Sequence[Mapping[str, Any]],
    *,
    by: str | None = None,
    task: str | None = None,
    model: str | None = None,
) -> list[SliceTable]:
    """Tables of the rows that recorded slices, optionally of one dimension, task or model (spec or label)."""
    tables = []
    for row in rows:
        if row.get("status") != "ok" or (task is not None and row.get("task") != task):
            continue
        if model is not None and model not in (row.get("model"), row.get("label")):
            continue
        for dimension, slices in (row.get("slices") or {}).items():
            if by is None or dimension == by:
                tables.append(
                    SliceTable(
                        str(row["task"]),
                        str(row["model"]),
                        str(row.get("label") or row["model"]),
                        dimension,
                        slice_columns(str(row["task"]), slices),
                        list(slices),
                    )
                )
    return tables


def run_slice_tables(
    run_dir: Path, *, by: str | None = None, task: str | None = None, model: str | None = None
) -> list[SliceTable]:
    """The slice tables of a run; a run from before slices, or a dimension it lacks, is a one-line error."""
    rows = read_results(run_dir)["rows"]
    tables = slice_tables(rows, by=by, task=task, model=model)
    if not tables:
        known = sorted({d for r in rows for d in r.get("slices") or {}})
        if not known:
            raise HarnessError(f"{run_dir} has no slices: run it again with this version (cached, so quick)")
        raise HarnessError(
            f"{run_dir} has no slices for the task, model or dimension asked; it has: {', '.join(known)}"
        )
    return tables


def format_slice_tables(tables: Sequence[SliceTable]) -> str:
    lines = []
    for table in tables:
        title = DIMENSION_TITLES.get(table.dimension, f"column {table.dimension!r}")
        lines.append(f"{table.task} · {printable(table.label)} · by {title}")
        headers = ["slice", "n", *[header for _, header in table.columns]]
        if table.escalates:
            headers.append("escalated")
        body = []
        for entry in table.slices:
            cells = [printable(str(entry["slice"])), str(entry["n"])]
            cells += [format_metric(entry, key).text for key, _ in table.columns]
            if table.escalates:
                share = entry.get("escalated_share")
                cells.append("" if share is None else f"{share:.1%}")
            body.append(cells)
        widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]
        for cells in [headers, *body]:
            padded = [cells[0].ljust(widths[0])] + [
                c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)
            ]
            lines.append("  " + "  ".join(padded))
        lines.append("")
    return "\n".join(lines)
