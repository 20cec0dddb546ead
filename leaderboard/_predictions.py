"""Reading a run's predictions.jsonl back: per-example records for plots, comparisons and error lists."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from harness import HarnessError

PREDICTIONS_FILE = "predictions.jsonl"


def iter_predictions(
    run_dir: Path, *, task: str | None = None, model: str | None = None
) -> Iterator[dict[str, Any]]:
    """Stream the records of one run, optionally of one task and one model spec (or label)."""
    path = run_dir / PREDICTIONS_FILE
    if not path.exists():
        raise HarnessError(f"no {PREDICTIONS_FILE} in {run_dir}: run `harness run --out {run_dir}` first")
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise HarnessError(f"{path}:{number} is not valid JSON ({exc})") from None
            if task is not None and record.get("task") != task:
                continue
            if model is not None and record.get("model") != model:
                continue
            yield record


def group_predictions(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Records keyed by (task, model spec), in the order the run wrote them."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((str(record.get("task")), str(record.get("model"))), []).append(record)
    return groups


def label_order(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The task's labels in probability-column order, recovered from which column each prediction took.

    Labels never predicted (so their column is unknown) follow in name order.
    """
    by_column: dict[int, str] = {}
    names: set[str] = set()
    for record in records:
        probs = record.get("probs") or []
        names.update(str(record[k]) for k in ("gold", "pred") if record.get(k) is not None)
        if probs and record.get("pred") is not None:
            by_column.setdefault(max(range(len(probs)), key=probs.__getitem__), str(record["pred"]))
    ordered = [by_column[i] for i in sorted(by_column)]
    return ordered + sorted(names - set(ordered))


def confidence(record: dict[str, Any]) -> float:
    """The probability the model gave its own prediction (its top probability)."""
    probs = record.get("probs") or []
    return float(max(probs)) if probs else 0.0
