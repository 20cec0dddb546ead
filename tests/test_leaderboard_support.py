"""Hand-built runs (results.json, predictions.jsonl) for the leaderboard tests, checked against the runner's schema."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from harness.runner import Row

CPU = {"backend": "cpu", "device": "cpu", "device_name": "x86_64", "dtype": "float32", "threads": 2}
GPU = {"backend": "cuda", "device": "cuda", "device_name": "NVIDIA H100", "dtype": "float16", "threads": 2}


def polarity_row(
    model: str, label: str, f1: float, runtime: float, *, backend: dict = CPU, **extra: Any
) -> dict:
    """A realistic polarity row; the interval is f1 +- 0.01 so the rendered half-width is known."""
    row = {
        "task": "polarity",
        "model": model,
        "label": label,
        "status": "ok",
        "error": None,
        "traceback": None,
        "failed_reviews": [],
        "metrics": {
            "macro_f1": f1,
            "accuracy": f1 + 0.02,
            "accuracy_pos": f1 + 0.04,
            "accuracy_neg": f1 - 0.1,
            "ece": 0.05,
        },  # fmt: skip
        "intervals": {"macro_f1": [f1 - 0.01, f1 + 0.01], "accuracy": [f1, f1 + 0.04]},
        "added_metrics": [],
        "n": 100,
        "runtime_s": runtime,
        "fit_s": 0.0,
        "choose_s": 0.0,
        "reviews_per_s": 100 / runtime,
        "truncated": 0,
        "cached": 0,
        "computed": 100,
        "counts": {"kept": 100, "dropped_3star": 7},
        "load_issues": {"total": 2, "by_reason": {"malformed": 2}, "first": []},
        "notes": [],
        "backend": backend,
        "extra": {},
        "cost": {},
        "latency": {},
        "in_training": False,
        "slices": {},
        "clustering": {},
    }
    row.update(extra)
    return row


def category_row(model: str, label: str, top1: float, runtime: float) -> dict:
    row = polarity_row(model, label, top1, runtime)
    row["task"] = "category"
    row["metrics"] = {"top1": top1, "top2": top1 + 0.1, "top3": top1 + 0.15, "map": top1 + 0.05,
                      "macro_f1": top1 - 0.02, "ece": 0.1}  # fmt: skip
    row["intervals"] = {"top1": [top1 - 0.02, top1 + 0.02]}
    return row


def error_row(model: str, message: str) -> dict:
    row = polarity_row(model, model, 0.0, 1.0)
    row.update(
        status="error", error=message, metrics={}, intervals={}, n=0, runtime_s=0.0, reviews_per_s=None
    )
    return row


def write_run(run_dir: Path, rows: list[dict], predictions: list[dict] = (), board: str = "test") -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    results = {"schema": 1, "board": board, "started": "2025-01-01T00:00:00+00:00",
               "finished": "2025-01-01T00:01:00+00:00", "config": {}, "backend": CPU, "provenance": {},
               "rows": rows}  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(results), encoding="utf-8")
    lines = "".join(json.dumps(p) + "\n" for p in predictions)
    (run_dir / "predictions.jsonl").write_text(lines, encoding="utf-8")
    return run_dir


def prediction(
    task: str, model: str, id_: str, gold: str, probs: list[float], labels: list[str], **extra
) -> dict:
    pred = labels[max(range(len(probs)), key=probs.__getitem__)]
    record = {"task": task, "model": model, "id": id_, "gold": gold, "pred": pred, "correct": pred == gold,
              "probs": probs, "latency_s": 0.001, "truncated": False}  # fmt: skip
    record.update(extra)
    return record


def test_fixture_rows_have_exactly_the_runners_fields():
    expected = {f.name for f in fields(Row)}
    for row in (polarity_row("m", "M", 0.9, 1.0), category_row("m", "M", 0.5, 1.0), error_row("m", "boom")):
        assert set(row) == expected
