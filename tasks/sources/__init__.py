"""The built-in review sources, registered under the names `--data` and `--dataset` resolve to.

| name | reads |
| --- | --- |
| `tsv` | the original Amazon Customer Reviews release (`.tsv`, `.tsv.gz`) |
| `jsonl` | JSON lines: the multilingual corpus' schema, the release's field names, or mapped columns |
| `csv` | any CSV with a header row and mapped columns |
| `hf-dataset` | a Hugging Face dataset by hub name, or a local `save_to_disk` directory |
| `demo` | the sample shipped with the package (the default data of `harness run`) |
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

from harness import IssueLog, Register, Review, Source, SourceOptions, hookimpl
from harness.tasks.sources._csv import CsvSource
from harness.tasks.sources._hf_dataset import HfDatasetSource
from harness.tasks.sources._jsonl import JsonlSource
from harness.tasks.sources._tsv import TsvSource

DEMO = "demo"


class DemoSource:
    """The embedded sample: hand-written reviews of the study's 11 categories, in the release's TSV schema."""

    description = "embedded demo sample (release TSV schema, the study's 11 categories)"

    def sniff(self, location: str) -> bool:
        return location == DEMO

    def read(self, location: str, options: SourceOptions, issues: IssueLog) -> Iterator[Review]:
        sample = resources.files("harness.tasks") / "data" / "sample.tsv"
        with resources.as_file(sample) as path:
            yield from TsvSource().read(str(path), options, issues)


@hookimpl
def register_sources(register: Register[Source]) -> None:
    for name, source in (
        ("tsv", TsvSource()),
        ("jsonl", JsonlSource()),
        ("csv", CsvSource()),
        ("hf-dataset", HfDatasetSource()),
        (DEMO, DemoSource()),
    ):
        register(name, source, description=source.description)
