"""The misclassified reviews of one model, most confident first: the study's failure analysis.

Confidently wrong predictions are the interesting ones (sarcasm, mixed
reviews, mislabelled stars), and they are what a hybrid's router cannot catch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import HarnessError
from harness.leaderboard._predictions import confidence, iter_predictions
from harness.leaderboard._terminal import CONTROL
from harness.results import read_results

POSITIVE, NEGATIVE = "positive", "negative"
GROUP_ORDER = (
    "false positives (gold negative, predicted positive)",
    "false negatives (gold positive, predicted negative)",
    "misclassified",
)


@dataclass
class ErrorGroup:
    title: str
    records: list[dict[str, Any]]
    total: int


def resolve_model(run_dir: Path, model: str, task: str | None) -> str:
    """A model spec from a spec or a display label; unknown names list what the run has."""
    rows = [r for r in read_results(run_dir)["rows"] if task is None or r.get("task") == task]
    for row in rows:
        if model in (row.get("model"), row.get("label")):
            return str(row["model"])
    known = sorted({f"{r['model']} ({r.get('label')})" for r in rows})
    raise HarnessError(f"model {model!r} is not in {run_dir}; it has: {', '.join(known) or 'no rows'}")


def misclassified(run_dir: Path, model: str, *, task: str | None = None, limit: int = 20) -> list[ErrorGroup]:
    """Wrong predictions by task, most confident first; polarity splits false positives and false negatives."""
    spec = resolve_model(run_dir, model, task)
    by_group: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in iter_predictions(run_dir, task=task, model=spec):
        if not record.get("correct"):
            by_group.setdefault((str(record.get("task")), error_kind(record)), []).append(record)
    groups = []
    for (task_name, kind), records in sorted(by_group.items(), key=lambda item: item[0]):
        records.sort(key=confidence, reverse=True)
        groups.append(ErrorGroup(f"{task_name}: {GROUP_ORDER[kind]}", records[:limit], len(records)))
    return groups


def error_kind(record: dict[str, Any]) -> int:
    """Index into GROUP_ORDER: polarity's two kinds of error, or any other misclassification."""
    gold, pred = record.get("gold"), record.get("pred")
    if (gold, pred) == (NEGATIVE, POSITIVE):
        return 0
    if (gold, pred) == (POSITIVE, NEGATIVE):
        return 1
    return 2


def display_text(record: dict[str, Any], width: int = 160) -> str:
    """The review text on one line, without control characters (a review must not drive the terminal)."""
    text = record.get("text")
    if not text:
        return f"(id {record.get('id')}; text not recorded)"
    flat = " ".join(CONTROL.sub(" ", str(text)).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_groups(groups: list[ErrorGroup]) -> str:
    if not groups:
        return "no misclassified reviews\n"
    lines = []
    for group in groups:
        lines.append(f"{group.title}: {group.total} (showing {len(group.records)})")
        for record in group.records:
            lines.append(
                f"  {confidence(record):.3f}  id={CONTROL.sub(' ', str(record.get('id')))}  "
                f"gold={record.get('gold')}  pred={record.get('pred')}  {display_text(record)}"
            )
        lines.append("")
    return "\n".join(lines)
