"""Progress bars for long runs: one per model and task, with reviews/s and time remaining."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichProgress:
    """The runner's ProgressSink, drawn on stderr so stdout stays a clean table."""

    def __init__(self) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, label: str, total: int | None) -> None:
        self._task = self._progress.add_task(label, total=total, rate="")

    def advance(self, count: int) -> None:
        if self._task is None:
            return
        self._progress.advance(self._task, count)
        speed = self._progress.tasks[self._task].speed
        if speed:
            self._progress.update(self._task, rate=f"{speed:.1f} reviews/s")

    def stop(self) -> None:
        if self._task is not None:
            self._progress.stop_task(self._task)
            self._task = None
