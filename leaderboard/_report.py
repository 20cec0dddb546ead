"""The HTML report's sections below the tables: a run's plots, quality by slice, and the reviews to read.

Everything comes from the run directory (its PNG plots, results rows and
predictions.jsonl), so the page can be rebuilt from any finished run. Plots
are embedded as base64, so the page stays one offline file; every string
from a review or a label is escaped.
"""

from __future__ import annotations

import base64
import heapq
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from itertools import combinations
from pathlib import Path
from typing import Any

from harness.leaderboard._predictions import PREDICTIONS_FILE, confidence, iter_predictions
from harness.leaderboard._table import format_metric, headline_metric
from harness.slices import slice_of, slice_order

PLOT_PATTERNS = ("pareto_*.png", "sweep*.png", "slices_*.png", "confusion_*.png", "per_class_*.png")
REVIEWS_SHOWN = 25  # per model and per pair: enough to see what goes wrong, bounded for big runs
Row = Mapping[str, Any]


def report_sections(rows: Sequence[Row]) -> list[str]:
    """Sections for every run the rows come from; rows without a run (a bare export) add none."""
    sections = []
    for run in dict.fromkeys(str(r["run"]) for r in rows if r.get("run")):
        run_dir = Path(run)
        mine = [r for r in rows if str(r.get("run")) == run and r.get("status") == "ok"]
        sections += [plots_section(run_dir), slices_section(mine), reviews_section(run_dir, mine)]
    return [section for section in sections if section]


def plots_section(run_dir: Path) -> str:
    figures = []
    for pattern in PLOT_PATTERNS:
        for path in sorted(run_dir.glob(pattern)):
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            figures.append(
                f'<figure><img alt="{escape(path.stem)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{escape(path.name)}</figcaption></figure>"
            )
    return "<h2>Plots</h2>\n" + "\n".join(figures) if figures else ""


def slices_section(rows: Sequence[Row]) -> str:
    """Per task and dimension, the headline metric of every model on every slice, with its interval."""
    parts = []
    for task in dict.fromkeys(str(r["task"]) for r in rows):
        task_rows = [r for r in rows if r["task"] == task and r.get("slices")]
        metric = headline_metric(task, task_rows)
        if metric is None:
            continue
        for dimension in dict.fromkeys(d for r in task_rows for d in r["slices"]):
            names = slice_order(
                dimension, {s["slice"] for r in task_rows for s in r["slices"].get(dimension, [])}
            )
            head = "".join(f"<th scope=col>{escape(n)}</th>" for n in names)
            body = []
            for row in task_rows:
                by_name = {s["slice"]: s for s in row["slices"].get(dimension, [])}
                cells = []
                for name in names:
                    entry = by_name.get(name)
                    if entry is None:
                        cells.append("<td></td>")
                        continue
                    detail = f"n={entry['n']}"
                    if "escalated_share" in entry:
                        detail += f" · {entry['escalated_share']:.0%} escalated"
                    value = escape(format_metric(entry, metric).text)
                    cells.append(f'<td class="slice">{value}<br><small>{escape(detail)}</small></td>')
                label = escape(str(row.get("label") or row["model"]))
                body.append(f'<tr><td class="label">{label}</td>{"".join(cells)}</tr>')
            parts.append(
                f"<h3>{escape(task)}: {escape(metric)} by {escape(dimension)}</h3>\n"
                f'<table class="slices"><thead><tr><th scope=col>model</th>{head}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table>"
            )
    return "<h2>Quality by slice (bootstrap 95% intervals)</h2>\n" + "\n".join(parts) if parts else ""


def review_slices(record: Mapping[str, Any]) -> dict[str, str]:
    dimensions = ["length", "negation", *(record.get("facets") or {})]
    return {dimension: slice_of(record, dimension) for dimension in dimensions}


def review_rows(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    lines = []
    for record in records:
        slices = escape(json.dumps(review_slices(record), ensure_ascii=False))
        cells = "".join(f"<td>{escape(str(record.get(c, '')))}</td>" for c in columns)
        text = escape(str(record.get("text") or f"(id {record.get('id')}; text not recorded)"))
        lines.append(f'<tr class="review" data-slices="{slices}">{cells}<td class="text">{text}</td></tr>')
    return "\n".join(lines)


def review_table(
    summary: str, records: Sequence[Mapping[str, Any]], headers: Sequence[str], keys: Sequence[str]
) -> str:
    head = "".join(f"<th scope=col>{escape(h)}</th>" for h in [*headers, "review"])
    return (
        f"<details><summary>{escape(summary)}</summary>\n<table class=reviews><thead><tr>{head}</tr></thead>"
        f"<tbody>\n{review_rows(records, keys)}\n</tbody></table></details>"
    )


def slice_filter(records: Sequence[Mapping[str, Any]]) -> str:
    values: dict[str, set[str]] = {}
    for record in records:
        for dimension, value in review_slices(record).items():
            values.setdefault(dimension, set()).add(value)
    options = ['<option value="">every review</option>']
    for dimension, names in values.items():
        for name in slice_order(dimension, names):
            value = escape(f"{dimension}={name}")
            options.append(f'<option value="{value}">{escape(dimension)}: {escape(name)}</option>')
    return f'<p><label>Show reviews of one slice: <select id="slice-filter">{"".join(options)}</select></label></p>'


def reviews_section(run_dir: Path, rows: Sequence[Row]) -> str:
    """Each model's misclassified reviews, most confident first, and the reviews two models disagree on.

    The predictions are streamed (twice more where a task has two models or more): only the reviews shown,
    and for a task's later models each review's prediction by id, are held, however many reviews a run
    scored.
    """
    if not (run_dir / PREDICTIONS_FILE).exists() or not rows:
        return ""
    labels = {(str(r["task"]), str(r["model"])): str(r.get("label") or r["model"]) for r in rows}
    misses = misclassified(run_dir, labels)
    parts, shown = [], []
    for (task, model), miss in misses.items():
        picked = [{**r, "confidence": f"{confidence(r):.3f}"} for r in miss.shown()]
        shown += picked
        summary = (f"{task} · {labels[task, model]}: {miss.wrong} misclassified of {miss.total} "
                   f"(showing {len(picked)})")  # fmt: skip
        parts.append(
            review_table(summary, picked, ["confidence", "gold", "predicted"], ["confidence", "gold", "pred"])
        )
    for (task, a, b), (count, picked) in disagreements(run_dir, list(misses)).items():
        shown += picked
        summary = (f"{task} · {labels[task, a]} and {labels[task, b]} disagree on {count} "
                   f"(showing {len(picked)})")  # fmt: skip
        headers = ["gold", labels[task, a], labels[task, b]]
        parts.append(review_table(summary, picked, headers, ["gold", "pred", "pred_b"]))
    return "<h2>Reviews behind the numbers</h2>\n" + slice_filter(shown) + "\n".join(parts)


@dataclass
class Misses:
    """One model's misclassified reviews: how many of how many, and the most confident few, as read."""

    total: int = 0
    wrong: int = 0
    heap: list[tuple[float, int, dict[str, Any]]] = field(
        default_factory=list
    )  # (confidence, -order, record)

    def add(self, record: dict[str, Any]) -> None:
        self.total += 1
        if record.get("correct"):
            return
        self.wrong += 1
        entry = (confidence(record), -self.total, record)
        if len(self.heap) < REVIEWS_SHOWN:
            heapq.heappush(self.heap, entry)
        elif entry[:2] > self.heap[0][:2]:
            heapq.heapreplace(self.heap, entry)

    def shown(self) -> list[dict[str, Any]]:
        """Most confident first; of equally confident ones, the first read first."""
        return [record for *_, record in sorted(self.heap, key=lambda e: e[:2], reverse=True)]


def misclassified(run_dir: Path, labels: Mapping[tuple[str, str], str]) -> dict[tuple[str, str], Misses]:
    """Each (task, model) of `labels` in the order the run wrote them, with its misclassified reviews."""
    misses: dict[tuple[str, str], Misses] = {}
    for record in iter_predictions(run_dir):
        key = (str(record.get("task")), str(record.get("model")))
        if key in labels:
            misses.setdefault(key, Misses()).add(record)
    return misses


def disagreements(
    run_dir: Path, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str, str], tuple[int, list[dict[str, Any]]]]:
    """For each pair of a task's models (task, a, b): how many reviews they predict differently, and the
    first few of a's records with b's prediction added."""
    models: dict[str, list[str]] = {}
    for task, model in keys:
        models.setdefault(task, []).append(model)
    pairs = [(task, a, b) for task, names in models.items() for a, b in combinations(names, 2)]
    if not pairs:
        return {}
    later = {(task, b) for task, _, b in pairs}
    preds: dict[tuple[str, str], dict[str, Any]] = {key: {} for key in later}
    for record in iter_predictions(run_dir):
        key = (str(record.get("task")), str(record.get("model")))
        if key in later:
            preds[key][record["id"]] = record["pred"]
    found: dict[tuple[str, str, str], tuple[int, list[dict[str, Any]]]] = {pair: (0, []) for pair in pairs}
    for record in iter_predictions(run_dir):
        task, model = str(record.get("task")), str(record.get("model"))
        for pair in pairs:
            if pair[:2] != (task, model):
                continue
            by_id = preds[task, pair[2]]
            if record["id"] in by_id and by_id[record["id"]] != record["pred"]:
                count, picked = found[pair]
                if len(picked) < REVIEWS_SHOWN:
                    picked.append({**record, "pred_b": by_id[record["id"]]})
                found[pair] = (count + 1, picked)
    return found
