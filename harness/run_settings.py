"""How a board is run apart from the board itself: where it caches and keeps weights, and who watches it.

Kept apart from the runner so that `import harness` stays light: a command
plugin builds its `RunSettings` without loading numpy or the runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class ProgressSink(Protocol):
    """Receives progress from the runner; the CLI shows it as rich progress bars."""

    def start(self, label: str, total: int | None) -> None: ...

    def advance(self, count: int) -> None: ...

    def stop(self, outcome: str = "done") -> None:
        """End the current stage; `outcome` is "done", "failed" or "interrupted"."""
        ...


@dataclass(frozen=True)
class RunSettings:
    """The settings of one run that are not the board's: the same board runs the same way under any of them.

    A run keeps its prediction cache and fine-tuned weights in its run
    directory unless these name other places: a sweep or a distillation reusing
    another run's predictions, `harness run --cache`, the seeds of a multi-seed
    run sharing one cache. `progress` shows the run as it goes (None: nothing
    is shown).
    """

    cache_path: Path | None = None
    model_dir: Path | None = None
    progress: ProgressSink | None = None

    def cache_in(self, run_dir: Path) -> Path:
        """The prediction cache of a run into `run_dir`."""
        return self.cache_path or run_dir / "cache.sqlite"

    def models_in(self, run_dir: Path) -> Path:
        """Where a run into `run_dir` keeps the weights its models fine-tune."""
        return self.model_dir or run_dir / "models"
