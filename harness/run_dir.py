"""Whose run a directory holds: `harness run` resumes its own board's run, and writes into nothing else.

A run directory's results.json names the board it holds. Running another
board into it would replace that run's results and leave its plots behind,
so it is refused unless asked for with `--replace`, which removes every file
the earlier run and the commands reading it wrote (the prediction cache and
fine-tuned weights stay: they are found by the model's fingerprint, never
shown for a model that is not in the run). A run stopped before it wrote
results.json (interrupted, or on a full disk) left no results to lose, and
its lock file says a run used the directory: any board may run there. A
directory holding anything else is the user's and is never written into.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.boards import Board
from harness.files import RunDirLock
from harness.results import RESULTS_FILE

# What a run, and the commands reading it (sweep, cascade), write into a run directory.
REPORT_FILES = ("results.json", "predictions.jsonl", "leaderboard.md", "leaderboard.html", "malformed_rows.txt",
                "sweep.csv", "sweep.json", "cascade.csv", "cascade.json", "cascade-board.toml")  # fmt: skip
REPORT_PATTERNS = ("pareto_*.png", "sweep*.png", "slices_*.png", "confusion_*.png", "per_class_*.png",
                   "cascade*.png")  # fmt: skip
KEPT = ("cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm", "cache.sqlite-journal", "models")
SEED_DIRS = "seed-*"


def board_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two runs the same board: its name, tasks, models and data (limits, seeds, options and
    the backend may change between a run and its resumption; the cache keeps answers apart)."""
    data = config.get("data")
    if data and Path(str(data)).exists():
        data = str(Path(str(data)).resolve())
    return {
        "name": config.get("name"),
        "tasks": list(config.get("tasks") or []),
        "models": [str(m.get("name") or m.get("spec")) for m in config.get("models") or []],
        "data": data,
        "dataset": config.get("dataset"),
    }


def _left_by_a_run(path: Path) -> bool:
    """Files an interrupted run leaves before it writes any report: the cache, weights, seed runs, hidden."""
    return path.name.startswith(".") or path.name in KEPT or path.match(SEED_DIRS)


def held_board(run_dir: Path) -> dict[str, Any] | None:
    """The identity of the board `run_dir` holds; None when it holds no board's results (it is new, empty,
    or a run stopped there before writing them); raises ValueError naming the files of a directory that
    is not a run's (a user's own results.json or predictions.jsonl)."""
    if not run_dir.is_dir():
        return None
    results = _harness_results(run_dir / RESULTS_FILE)
    if results is not None:
        return board_identity(results["config"])
    foreign = sorted(p.name for p in run_dir.iterdir() if not _left_by_a_run(p))
    if (run_dir / RESULTS_FILE).exists():
        foreign = [RESULTS_FILE]  # not a harness results file: whatever else is there, it is not a run's
    elif RunDirLock(run_dir).path.exists():
        return None
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ValueError(f"{run_dir} is not a harness run directory (it holds {shown})")
    return None


def _harness_results(path: Path) -> dict[str, Any] | None:
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(results, dict) and isinstance(results.get("config"), dict) and "rows" in results:
        return results
    return None


def run_dir_problem(run_dir: Path, board: Board, *, replace: bool) -> str | None:
    """Why `harness run` must not write `board`'s run into `run_dir`, or None when it may."""
    try:
        held = held_board(run_dir)
    except ValueError as error:
        return f"{error}; give --out a new or empty directory"
    if held is None or held == board_identity(board.as_dict()) or replace:
        return None
    return (
        f"{run_dir} holds the run of another board ({_describe(held)}); give another --out, or --replace "
        "to replace that run (its prediction cache is kept)"
    )


def _describe(identity: Mapping[str, Any]) -> str:
    models = identity.get("models") or []
    shown = ", ".join(models[:3]) + (", ..." if len(models) > 3 else "")
    data = identity.get("dataset") or identity.get("data")
    return f"board {identity.get('name')}: {', '.join(identity.get('tasks') or [])} x {shown} on {data}"


def replace_other_board(run_dir: Path, board: Board) -> None:
    """Remove another board's run from `run_dir` (`--replace`), so that no file of it is left."""
    if held_board(run_dir) not in (None, board_identity(board.as_dict())):
        clear_outputs(run_dir)


def clear_outputs(run_dir: Path) -> None:
    """Remove every report an earlier run, and the commands reading it, wrote; keep the cache and weights."""
    for name in REPORT_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for pattern in REPORT_PATTERNS:
        for path in run_dir.glob(pattern):
            path.unlink()
    for path in run_dir.glob(SEED_DIRS):
        if path.is_dir():
            shutil.rmtree(path)
