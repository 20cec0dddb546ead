"""Hand-built runs (results.json, predictions.jsonl) for the leaderboard tests: rows, predictions, whole boards."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.leaderboard._compare import paired_metrics
from harness.results import leaderboard_rows

SMALL, LARGE, HYBRID = "minilm", "smollm2", "hybrid:minilm>smollm2@confidence:0.9"


def records(model: str, wrong: set[int]) -> list[dict]:
    out = []
    for i in range(N):
        pred = int(GOLD[i]) ^ (i in wrong)
        probs = [0.2, 0.8] if pred else [0.8, 0.2]
        out.append(prediction("polarity", model, f"e{i}", POLARITY[GOLD[i]], probs, POLARITY))
    return out


def board(tmp_path: Path, models: dict[str, tuple[str, set[int], float, float]], share: float = 0.2) -> list:
    """A run directory of the given models (spec -> label, wrong review ids, runtime, $ per 1,000)."""
    rows, preds = [], []
    for spec, (label, wrong, runtime, usd) in models.items():
        extra = {"extra": {"escalated_share": share}} if spec.startswith("hybrid:") else {}
        rows.append(row(spec, label, wrong, runtime, usd, **extra))
        preds += records(spec, wrong)
    return leaderboard_rows([write_run(tmp_path / "run", rows, preds)])


def seeded_run(
    run: Path, wrong: dict[str, Callable[[int], set[int]]], seeds: tuple[int, ...] = (0, 1)
) -> Path:
    """A multi-seed run of the given models (spec -> the review ids it gets wrong under each seed), its rows
    labelled by the spec; the pooled rows are seed 0's, as only the seeds' predictions are paired."""
    for seed in seeds:
        rows = [row(spec, spec.title(), by_seed(seed), 1.0, 0.1) for spec, by_seed in wrong.items()]
        write_run(
            run / f"seed-{seed}",
            rows,
            [r for spec, by_seed in wrong.items() for r in records(spec, by_seed(seed))],
        )
    write_run(run, [row(spec, spec.title(), by_seed(seeds[0]), 1.0, 0.1) for spec, by_seed in wrong.items()])
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    results["seeds"] = {"seeds": list(seeds), "runs": {str(s): f"seed-{s}" for s in seeds}}
    (run / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return run


POLARITY = ["negative", "positive"]


N = 200


GOLD = np.arange(N) % 2


def row(model: str, label: str, wrong: set[int], runtime: float, usd: float, **extra) -> dict:
    """A row whose metrics are those of its predictions, so the board and the paired test agree."""
    pred = np.array([int(GOLD[i]) ^ (i in wrong) for i in range(N)])
    scores = paired_metrics(GOLD[None], pred[None], 2)
    f1, accuracy = float(scores["macro_f1"][0]), float(scores["accuracy"][0])
    return polarity_row(
        model, label, f1, runtime, n=N, reviews_per_s=N / runtime,
        metrics={"macro_f1": f1, "accuracy": accuracy, "accuracy_pos": accuracy, "accuracy_neg": accuracy},
        cost={"usd": usd * N / 1000, "usd_per_1000_reviews": usd}, **extra,
    )  # fmt: skip


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
