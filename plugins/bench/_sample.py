"""Balanced, seeded samples of polarity examples, drawn once for every part of `harness bench`.

Review files are often sorted by label (the Blitzer file is stored in blocks
of 1,000 reviews of one label), so a file's first reviews can all be negative:
a classifier fine-tuned on them answers one label, and no speed-up can flip
its answers. Every part therefore takes its reviews from here: the same number
of each label, chosen by a seeded hash of the review id over the whole file,
with the reviews a model is fine-tuned on disjoint from the scored ones. The
data is read through the harness' own sources and polarity labels (1-2 stars
negative, 4-5 positive, markup cleaned), so ``demo`` and every ``--data``
format work.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from pathlib import Path

from harness import Example

LABELS = ("negative", "positive")


@dataclass(frozen=True)
class Sample:
    """Scored and train examples, labels alternating so that every prefix is balanced."""

    scored: list[Example]
    train: list[Example]
    available: tuple[int, ...]

    def counts(self) -> dict[str, dict[str, int]]:
        """Examples per label in each split, and the usable reviews per label in the data."""

        def per_label(examples: list[Example]) -> dict[str, int]:
            return {name: sum(e.label == index for e in examples) for index, name in enumerate(LABELS)}

        return {
            "scored": per_label(self.scored),
            "train": per_label(self.train),
            "available": dict(zip(LABELS, self.available, strict=True)),
        }

    def describe(self) -> str:
        """One line for the terminal: balanced counts of both splits and what the data holds."""
        counts = self.counts()
        line = " + ".join(f"{counts['scored'][name]} {name}" for name in LABELS) + " scored"
        if self.train:
            line += ", " + " + ".join(f"{counts['train'][name]} {name}" for name in LABELS) + " train"
        available = ", ".join(f"{counts['available'][name]} {name}" for name in LABELS)
        return f"{line} (the data holds {available})"

    def write_scored(self, path: Path) -> Path:
        """The scored examples as JSON lines with the release's field names, for a run to read.

        The review's own stars, category and product go with it (1 or 5 stars
        where the example has none), so the run reads the same examples, slices
        and clusters included.
        """
        with open(path, "w", encoding="utf-8") as out:
            for example in self.scored:
                record = {
                    "review_id": example.id,
                    "review_body": example.text,
                    "star_rating": int(example.facets.get("stars", 1 + 4 * example.label)),
                }
                if "category" in example.facets:
                    record["product_category"] = example.facets["category"]
                if example.cluster is not None:  # the product, so the run's intervals cluster alike
                    record["product_id"] = example.cluster
                out.write(json.dumps(record) + "\n")
        return path


def draw(data: str, scored: int, train: int, seed: int, workdir: Path) -> Sample:
    """`scored` and `train` examples, half of each label, the train ones never scored.

    Each label's examples are ranked by a seeded hash of their id; the first
    ranks are scored and the next ones train, so a smaller request gives a
    subset of a larger one. Where a label holds fewer examples than asked for,
    both splits shrink in proportion, to what the rarer label allows.
    """
    from harness import IssueLog, PluginHost
    from harness.boards import Board
    from harness.errors import HarnessError
    from harness.split_source import BoardSplits
    from harness.tasks import _common as common
    from harness.tasks.polarity import PolarityTask
    from harness.tasks.sources import DEMO

    if data != DEMO and not Path(data).exists():
        raise HarnessError(
            f"no review data at {data}: give --data FILE, or --data demo for the embedded sample"
        )
    want_scored, want_train = scored // 2, train // 2
    want = want_scored + want_train
    board = Board(name="bench-sample", tasks=["polarity"], models=[], data=data, backend="cpu", seed=seed)
    task = PolarityTask({"train_size": "0"})
    registries = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""}).registries
    examples = BoardSplits(registries, board).open(task, IssueLog())
    kept: list[list[tuple[float, int, Example]]] = [[] for _ in LABELS]
    available = [0] * len(LABELS)
    for position, example in enumerate(examples.test):
        available[example.label] += 1
        entry = (-common.unit_hash(seed, "bench:" + example.id), position, example)
        if len(kept[example.label]) < want:
            heapq.heappush(kept[example.label], entry)
        elif want:
            heapq.heappushpop(kept[example.label], entry)
    missing = [name for name, count in zip(LABELS, available, strict=True) if count == 0]
    if missing:
        raise HarnessError(f"{data} holds no {missing[0]} reviews: the bench needs both labels")
    each = min(want, *available)
    each_scored = max(1, round(each * want_scored / want)) if want else 0
    ranked = [[example for _, _, example in sorted(heap, reverse=True)][:each] for heap in kept]
    return Sample(
        scored=_alternate([examples[:each_scored] for examples in ranked]),
        train=_alternate([examples[each_scored:] for examples in ranked]),
        available=tuple(available),
    )


def _alternate(per_label: list[list[Example]]) -> list[Example]:
    """One example of each label in turn: negative, positive, negative, ..."""
    return [example for group in zip(*per_label, strict=True) for example in group]
