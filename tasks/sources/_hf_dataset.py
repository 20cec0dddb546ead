"""A Hugging Face dataset, by hub name (streamed) or from a local `save_to_disk` directory.

Arrow-backed datasets are iterated row by row, so a large dataset is never
held as Python objects. Source options: `split` (default: the only split, or
`train`, which the task splits itself) and `config` (the hub configuration,
e.g. `en` for `amazon_reviews_multi`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness import IssueLog, Review, SourceOptions
from harness.tasks.sources._common import Columns, make_review, resolve_columns


def is_saved_dataset(location: str) -> bool:
    """True for a directory written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    path = Path(location)
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _choose_split(splits: list[str], wanted: str | None, location: str) -> str:
    if wanted is not None:
        if wanted not in splits:
            raise ValueError(f"{location}: no split {wanted!r}; splits found: {', '.join(splits)}")
        return wanted
    if len(splits) == 1:
        return splits[0]
    if "train" in splits:
        return "train"
    raise ValueError(f"{location}: several splits and none named train; pick one of {', '.join(splits)}")


def _open(location: str, options: SourceOptions) -> tuple[Iterable[dict[str, Any]], str]:
    """The rows to iterate and a name for them (location and split) used in reports."""
    import datasets

    wanted = options.extra.get("split")
    if is_saved_dataset(location):
        loaded = datasets.load_from_disk(location)
        if isinstance(loaded, datasets.DatasetDict):
            split = _choose_split(list(loaded), wanted, location)
            return loaded[split], f"{location}[{split}]"
        return loaded, location
    split = wanted or "train"
    streamed = datasets.load_dataset(location, options.extra.get("config"), split=split, streaming=True)
    return streamed, f"{location}[{split}]"


class HfDatasetSource:
    """Streams a `datasets` dataset; the column mapping flags work as for CSV and JSONL."""

    description = "Hugging Face dataset: hub name (streamed) or local save_to_disk directory"

    def sniff(self, location: str) -> bool:
        return is_saved_dataset(location)

    def read(self, location: str, options: SourceOptions, issues: IssueLog) -> Iterator[Review]:
        """Stream reviews; rows are numbered from 0 as in the dataset, in reports and fallback ids."""
        rows, where = _open(location, options)
        stem = Path(location.rstrip("/")).name or location
        columns: Columns | None = None
        for index, row in enumerate(rows):
            if columns is None:
                columns = resolve_columns(list(row), options, where)
            try:
                yield make_review(row, columns, f"{stem}:{index}")
            except ValueError as error:
                issues.add(where, index, str(error))
