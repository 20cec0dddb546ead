"""Progress for long runs: bars on a terminal, plain log lines every few seconds otherwise.

Output redirected to a file or a CI log gets no live bars, so without the log
lines a twelve-minute run would show no sign of life until its tables.
"""

from __future__ import annotations

import sys
import time
from typing import IO

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

    def stop(self, outcome: str = "done") -> None:
        if self._task is not None:
            if outcome != "done":  # a bar left half full must not read as a finished row
                description = self._progress.tasks[self._task].description
                self._progress.update(self._task, description=f"{description} · {outcome}")
            self._progress.stop_task(self._task)
            self._task = None


LOG_EVERY_S = 5.0


class LogProgress:
    """The runner's ProgressSink for a stderr that is not a terminal: timestamped lines, never redrawn.

    One line when a stage starts (a fit, or scoring), one every `every` seconds
    while it advances (done / total, reviews/s, time remaining) and one when it ends
    (done, failed or interrupted).
    """

    def __init__(self, stream: IO[str] | None = None, every: float | None = None) -> None:
        self._stream = stream
        self._every = LOG_EVERY_S if every is None else every
        self._label: str | None = None
        self._total: int | None = None
        self._done = 0
        self._began = self._logged = 0.0

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stderr
        stream.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        stream.flush()

    def start(self, label: str, total: int | None) -> None:
        self.stop()
        self._label, self._total, self._done = label, total, 0
        self._began = self._logged = time.monotonic()
        self._write(f"{label}: started" + (f" ({total} reviews at most)" if total else ""))

    def advance(self, count: int) -> None:
        if self._label is None:
            return
        self._done += count
        now = time.monotonic()
        if now - self._logged >= self._every:
            self._logged = now
            self._write(f"{self._label}: {self._status(now)}")

    def stop(self, outcome: str = "done") -> None:
        """The stage's last line: "done", or "failed" / "interrupted" with how far it got."""
        if self._label is None:
            return
        now = time.monotonic()
        summary = f"{self._done} reviews, {self._rate(now):.1f} reviews/s, " if self._done else ""
        self._write(f"{self._label}: {outcome}, {summary}{now - self._began:.1f} s")
        self._label = None

    def _rate(self, now: float) -> float:
        return self._done / max(now - self._began, 1e-9)

    def _status(self, now: float) -> str:
        rate = self._rate(now)
        done = f"{self._done}/{self._total}" if self._total else f"{self._done}"
        text = f"{done} reviews, {rate:.1f} reviews/s"
        if self._total and rate > 0:
            text += f", ETA {max(self._total - self._done, 0) / rate:.0f} s"
        return text


def progress_for_stderr() -> RichProgress | LogProgress:
    """Bars when stderr is a terminal, log lines when it goes to a file or a pipe."""
    return RichProgress() if sys.stderr.isatty() else LogProgress()
