"""Running a board: one seed through the runner, several through `harness.seeds`.

The one entry point for running a board; it sits above both so that neither
the runner nor the multi-seed driver needs the other's caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.boards import Board
from harness.plugin_manager import PluginHost
from harness.run_settings import RunSettings
from harness.runner import Runner
from harness.seeds import refuse_mixed_run_dir, run_seeds


def run_board(
    host: PluginHost, board: Board, run_dir: Path, settings: RunSettings | None = None
) -> dict[str, Any]:
    """Run `board` into `run_dir` and return its results.json; `settings` may keep the cache and
    fine-tuned weights elsewhere (a sweep reusing a run's) and show progress. A board with `seeds` runs
    once per seed."""
    refuse_mixed_run_dir(run_dir, multi_seed=bool(board.seeds))
    if board.seeds:
        return run_seeds(host, board, run_dir, settings)
    return Runner(host, board, run_dir, settings).run()
