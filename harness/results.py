"""Reading runs back: results.json files into flat leaderboard rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

RESULTS_FILE = "results.json"


def read_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RESULTS_FILE if run_dir.is_dir() else run_dir
    try:
        results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(
            f"no {RESULTS_FILE} in {run_dir}: run `harness run --out {run_dir}` first"
        ) from None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path} is not valid JSON ({exc}); re-run the board to rebuild it") from None
    if not isinstance(results, dict) or "rows" not in results:
        raise HarnessError(f"{path} is not a harness results file (no 'rows')")
    return results


def leaderboard_rows(run_dirs: list[Path]) -> list[dict[str, Any]]:
    """One flat dict per (run, task, model): what every exporter renders."""
    rows: list[dict[str, Any]] = []
    for run_dir in run_dirs:
        results = read_results(run_dir)
        for row in results["rows"]:
            rows.append({**row, "run": str(run_dir), "board": results.get("board")})
    return rows
