"""Figures a study reported, as leaderboard rows beside the measured ones.

A board names a TOML file of reported rows (`reported = "reported/seed.toml"`);
the run copies the rows of its tasks into results.json with status
`reported`, so every format shows them next to what was measured, and none
ranks them: they are never on the Pareto front and never highlighted as best.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

ROW_KEYS = {"task", "label", "n", "metrics", "runtimes", "in_training"}
RUNTIME_KINDS = {"cpu", "gpu"}


def reported_rows(path: Path, tasks: list[str]) -> list[dict[str, Any]]:
    """The file's rows for `tasks`, in the shape of measured rows; a malformed file is a one-line error."""
    from harness.boards import task_name

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"reported figures file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"reported figures file {path} is not valid TOML: {exc}") from None
    source = str(raw.get("source", path.name))
    rows = []
    for i, entry in enumerate(raw.get("rows", [])):
        where = f"{path}: rows[{i}]"
        unknown = set(entry) - ROW_KEYS
        if unknown or not {"task", "label", "metrics"} <= set(entry):
            raise HarnessError(f"{where} needs task, label and metrics; allowed keys: {sorted(ROW_KEYS)}")
        runtimes = {str(k): float(v) for k, v in entry.get("runtimes", {}).items()}
        if set(runtimes) - RUNTIME_KINDS:
            raise HarnessError(f"{where}: runtimes are keyed by cpu and gpu, got {sorted(runtimes)}")
        task = task_name(str(entry["task"]))
        if task not in tasks:
            continue
        rows.append(
            {
                "task": task,
                "model": f"reported:{entry['label']}",
                "label": f"{entry['label']}, reported",
                "status": "reported",
                "metrics": {str(k): float(v) for k, v in entry["metrics"].items()},
                "intervals": {},
                "n": int(entry.get("n", 0)),
                "reported_runtimes": runtimes,
                "in_training": bool(entry.get("in_training", False)),
                "notes": [f"reported by {source}"],
            }
        )
    return rows
