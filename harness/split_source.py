"""Which examples a run scores: the board's review stream, split by each task, or another source of splits.

The runner scores what its `SplitSource` gives; `BoardSplits`, the task's
split of the board's data, is the default, and a command scoring other
examples gives its own (distillation's teacher scores a pool of reviews
outside the scored split).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

from harness.boards import Board
from harness.errors import HarnessError
from harness.registry import Registries
from harness.types import IssueLog, Review, SourceOptions, Splits, Task


def open_reviews(registries: Registries, board: Board, issues: IssueLog) -> Iterator[Review]:
    """The board's review stream, from the source that recognises its data (or `hf-dataset` for --dataset)."""
    location, source_name = board.data, None
    if board.dataset:
        location, source_name = board.dataset, "hf-dataset"
    if location is None:
        raise HarnessError("no data: give --data PATH or --dataset NAME")
    sources = registries.sources
    if source_name is None:
        matches = [entry for entry in sources if entry.obj.sniff(location)]
        path = Path(location).expanduser()
        if not matches and not path.exists():
            raise HarnessError(
                f"the data path {location!r} does not exist (no file or directory of that name)"
            )
        if not matches and path.is_dir():
            raise HarnessError(
                f"the data path {location!r} is a directory but not a saved dataset (datasets' save_to_disk); "
                "give a .tsv, .jsonl or .csv file in it, or --dataset NAME"
            )
        if not matches:
            raise HarnessError(
                f"no source can read {location!r} (known sources: {', '.join(sources.names())}); "
                "give a .tsv, .jsonl or .csv file, a saved dataset directory, or --dataset NAME"
            )
        source = matches[0].obj
    else:
        source = sources.get(source_name).obj
    columns = {f.name for f in fields(SourceOptions)} - {"extra"}
    given = board.source_options
    options = SourceOptions(
        **{k: v for k, v in given.items() if k in columns},
        extra={k: v for k, v in given.items() if k not in columns},
    )
    reviews: Iterator[Review] = source.read(location, options, issues)
    return reviews


class SplitSource(Protocol):
    """The examples a runner scores for each task, with the train split its models fit on
    (`Runner(..., splits=...)`)."""

    def open(self, task: Task, issues: IssueLog) -> Splits:
        """A fresh stream of the task's examples, which the runner may open twice (once to see whether its
        predictions are all cached); `issues` collects the rows the data could not give."""
        ...

    def total(self, task: Task) -> int | None:
        """How many examples `open` gives at most, for the progress line (None: not known)."""
        ...


@dataclass(frozen=True)
class BoardSplits:
    """The task's split of the board's data, at most the board's limit, drawn with the board's split seed."""

    registries: Registries
    board: Board

    def open(self, task: Task, issues: IssueLog) -> Splits:
        reviews = open_reviews(self.registries, self.board, issues)
        return task.split(reviews, limit=self.board.limit, seed=self.board.seed_for("split"))

    def total(self, task: Task) -> int | None:
        return self.board.limit
