"""Sentiment polarity, the study's first task: 1-2 stars negative, 4-5 positive, 3 stars dropped.

Options (all strings):
- `input`: `body` (default, as in the study) or `title+body`;
- `markup`: `clean` (default: `<br />` becomes a line break, HTML entities are
  decoded) or `keep` (the text exactly as the file has it, as the study did);
- `train_size`: at most this many reviews (default 2000) form the train split
  for models that fine-tune; they are never scored;
- `train_sample`: `stream` (default: drawn while reading, see below) or
  `seeded` (the `train_size` reviews with the lowest seeded hash of their id
  in the whole file: a few gold labels that represent a file sorted by stars,
  where the streamed draw takes its first rows; the reviews not drawn are
  held in memory until the file ends);
- `sample`: with a limit, which test reviews are scored: `seeded` (default; a
  seeded hash of the review id picks them from the whole file, so a file
  sorted by stars still gives both labels) or `first` (the first N, as the
  study did);
- `rows`: read only the first N rows of the data, whatever they hold (the
  study read 1,000 rows and scored the 953 that were not 3-star);
- `prompt`, `label_words`: overrides for generative models.

The train split is drawn in one streaming pass: each kept review goes to train
when a seeded hash of its id falls below 0.5, until `train_size` is reached;
every other kept review is a test example. So train takes about half of the
reviews read up to that point and never more than `train_size`: the demo
sample splits about evenly, and a large file gives 2000 train reviews after
reading about 4,000 kept reviews (held meanwhile, so
memory stays bounded) and streams the rest. The same data and seed always
give the same split.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain, islice

from harness import (
    Example,
    Option,
    OptionSet,
    Register,
    RegisteredMetrics,
    Review,
    Splits,
    TaskFactory,
    hookimpl,
)
from harness.tasks import _common as common

LABELS = ("negative", "positive")
TRAIN_SHARE = 0.5
DEFAULT_TRAIN_SIZE = 2000
SAMPLES = ("seeded", "first")
TRAIN_SAMPLES = ("stream", "seeded")
OPTIONS = common.SHARED_OPTIONS + OptionSet(
    Option("train_size", int, DEFAULT_TRAIN_SIZE, "train reviews drawn (seeded) before scoring", minimum=0),
    Option(
        "sample",
        str,
        "seeded",
        "with --limit: a seeded sample, or the first rows (the study's)",
        choices=SAMPLES,
    ),
    Option("rows", int, None, "read only the first N rows of the data (the study read 1,000)", minimum=1),
    Option(
        "train_sample",
        str,
        "stream",
        "stream: drawn while reading; seeded: the lowest seeded hashes of the whole file",
        choices=TRAIN_SAMPLES,
    ),
)

# The study's zero-shot prompt, with the label list taken from the label words.
PROMPT = (
    "Please perform sentiment classification task.\n"
    "Given the sentence, assign a sentiment label from [{options}].\n"
    "Return label only without any other text.\n"
    "Sentence:\n{text}."
)


def _test_stream(examples: Iterator[Example], limit: int | None, counts: Counter[str]) -> Iterator[Example]:
    """The scored examples, at most `limit` of them, counted as they are consumed."""
    for example in examples if limit is None else islice(examples, limit):
        counts["test"] += 1
        yield example


def _seeded_sample(
    examples: Iterator[Example], limit: int, seed: int, counts: Counter[str]
) -> Iterator[Example]:
    """`limit` examples chosen by a seeded hash of their ids, in file order.

    Files are often sorted (the multilingual corpus by stars), so the first N
    rows can all share a label; this reads the whole stream but keeps only
    `limit` examples in memory.
    """
    heap: list[tuple[float, int, Example]] = []
    for position, example in enumerate(examples):
        entry = (-common.unit_hash(seed, "test:" + example.id), position, example)
        if len(heap) < limit:
            heapq.heappush(heap, entry)
        else:
            heapq.heappushpop(heap, entry)
            counts["not_sampled"] += 1
    for _, _, example in sorted(heap, key=lambda entry: entry[1]):
        counts["test"] += 1
        yield example


def _lowest_hashes(examples: Iterator[Example], size: int, seed: int) -> tuple[list[Example], list[Example]]:
    """The `size` examples with the lowest seeded hash of their ids, and all the others, each in file order."""
    heap: list[tuple[float, int, Example]] = []
    rest: list[tuple[float, int, Example]] = []
    for position, example in enumerate(examples):
        entry = (-common.unit_hash(seed, example.id), position, example)
        if len(heap) < size:
            heapq.heappush(heap, entry)
        else:
            rest.append(heapq.heappushpop(heap, entry))
    return [e for _, _, e in sorted(heap, key=lambda x: x[1])], [
        e for _, _, e in sorted(rest, key=lambda x: x[1])
    ]


class PolarityTask(RegisteredMetrics):
    """Binary sentiment from star ratings; labels in order `negative`, `positive`."""

    name = "polarity"
    labels: tuple[str, ...] = LABELS

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        values = OPTIONS.parse(options or {}, strict=True, owner="task 'polarity'")
        self.input: str = values["input"]
        self.markup: str = values["markup"]
        self.train_size: int = values["train_size"]
        self.sample: str = values["sample"]
        self.rows: int | None = values["rows"]
        self.train_sample: str = values["train_sample"]
        self.slice_col: str | None = values["slice_col"]
        self.label_words = common.label_words_option(values["label_words"], LABELS)
        self.prompt = common.prompt_option(values["prompt"], PROMPT)

    def split(self, reviews: Iterable[Review], *, limit: int | None, seed: int) -> Splits:
        """Label reviews by stars, draw the seeded train split, stream the rest as the test set.

        Reviews without a star rating cannot be labelled and are counted as
        `no_stars`; 3-star reviews as `dropped_3star`. Empty reviews are kept
        (counted as `empty_text`): a model must still give them a prediction.
        """
        counts: Counter[str] = Counter()
        examples = self._labelled(reviews, counts)
        train: list[Example] = []
        held: list[Example] = []
        if self.train_size > 0 and self.train_sample == "seeded":
            train, held = _lowest_hashes(examples, self.train_size, seed)
            examples = iter(())
        elif self.train_size > 0:
            for example in examples:
                if common.unit_hash(seed, example.id) < TRAIN_SHARE:
                    train.append(example)
                    if len(train) >= self.train_size:
                        break
                else:
                    held.append(example)
        counts["train"] = len(train)
        rest = chain(held, examples)
        if limit is not None and self.sample == "seeded":
            return Splits(test=_seeded_sample(rest, limit, seed, counts), train=train, counts=counts)
        return Splits(test=_test_stream(rest, limit, counts), train=train, counts=counts)

    def _labelled(self, reviews: Iterable[Review], counts: Counter[str]) -> Iterator[Example]:
        for review in reviews if self.rows is None else islice(reviews, self.rows):
            counts["read"] += 1
            if review.stars is None:
                counts["no_stars"] += 1
                continue
            if review.stars == 3:
                counts["dropped_3star"] += 1
                continue
            text = common.review_input(review, self.input, self.markup)
            if not text.strip():
                counts["empty_text"] += 1
            counts["kept"] += 1
            label = 0 if review.stars <= 2 else 1
            yield Example(review.id, text, label, common.facets(review, self.slice_col), review.cluster)

    def fingerprint(self) -> str:
        return common.fingerprint(
            {
                "task": self.name,
                "labels": self.labels,
                "label_words": self.label_words,
                "prompt": self.prompt,
                "input": self.input,
                "markup": self.markup,
            }
        )


@hookimpl
def register_tasks(register: Register[TaskFactory]) -> None:
    register(
        "polarity",
        PolarityTask,
        options=OPTIONS,
        description="sentiment: 1-2 stars negative, 4-5 positive, 3 dropped",
    )
