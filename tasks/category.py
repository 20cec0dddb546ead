"""Product category, the study's second task: which of a list of categories a review was written in.

Options (all strings):
- `categories`: `study` (default: the study's 11 labels in its order), a
  comma-separated list of names (release names or other schemes' slugs, see
  `category_names`), or `auto:N` for the N categories with the most usable
  reviews in the data;
- `min_chars` (80): only reviews longer than this many characters are used,
  as in the study; `drop_3star` (true): 3-star reviews are left out, as in the
  study;
- `train_per_class` (150) and `test_per_class` (50): the study's split;
  `balance` (true): when a class has fewer reviews than that, every class
  gets as many as the smallest non-empty one, so the test set stays balanced;
  with `balance=false` each short class is split on its own;
- `input`, `markup`, `prompt`, `label_words`: as for the polarity task.

Sampling is seeded and needs one pass with bounded memory: per category the
reviews with the smallest seeded hashes of their ids are kept (a uniform
sample that does not depend on the order of the data); the first
`train_per_class` of them are the train split, the next `test_per_class` the
test set. A class with fewer reviews is split in the same proportion (train
rounded down) and the shortfall is reported in the notes. With `auto:N` the
label set is only known after `split`, so `labels` is empty until then.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice

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
from harness.tasks._category_names import STUDY_CATEGORIES, normalise, to_release_name

NOTED_NAMES = 20
OPTIONS = common.SHARED_OPTIONS + OptionSet(
    Option("categories", str, "study", "study (the 11), a comma list, or auto:N (the N most frequent)"),
    Option("min_chars", int, 80, "shortest review kept, in characters (the study's 80)", minimum=0),
    Option("train_per_class", int, 150, "train reviews per category", minimum=0),
    Option("test_per_class", int, 50, "scored reviews per category", minimum=1),
    Option("drop_3star", bool, True, "drop 3-star reviews, as the study did"),
    Option("balance", bool, True, "keep classes even when some have fewer reviews than the split asks"),
)

PROMPT = (
    "Please perform product category classification task.\n"
    "Given the customer review, assign the product category that fits it best from [{options}].\n"
    "Return the category only without any other text.\n"
    "Customer review:\n{text}"
)

# A sampled review: (negated seeded hash, arrival number, id, text, facets, cluster); the heap keeps the
# smallest hashes (arrival numbers are unique, so facets and clusters are never compared).
Sampled = tuple[float, int, str, str, dict[str, str], str | None]


def _parse_categories(spec: str) -> tuple[tuple[str, ...], int | None]:
    """The fixed label list, or () and N for `auto:N`."""
    spec = spec.strip()
    if spec == "study":
        return STUDY_CATEGORIES, None
    if spec.startswith("auto:"):
        try:
            top = int(spec.removeprefix("auto:"))
        except ValueError:
            top = 0
        if top < 2:
            raise ValueError(f"option categories: auto:N needs an integer N of at least 2, got {spec!r}")
        return (), top
    labels = tuple(to_release_name(name) or name.strip() for name in spec.split(",") if name.strip())
    keys = [normalise(label) for label in labels]
    if len(labels) < 2 or len(set(keys)) != len(keys):
        raise ValueError(f"option categories needs at least two distinct comma-separated names, got {spec!r}")
    return labels, None


def _test_stream(examples: list[Example], limit: int | None, counts: Counter[str]) -> Iterator[Example]:
    """The scored examples, at most `limit` of them, counted as they are consumed."""
    for example in examples if limit is None else islice(examples, limit):
        counts["test"] += 1
        yield example


def _names_note(what: str, names: Counter[str]) -> str:
    shown = ", ".join(f"{name} ({n})" for name, n in names.most_common(NOTED_NAMES))
    more = f" and {len(names) - NOTED_NAMES} more" if len(names) > NOTED_NAMES else ""
    return f"{what}: {shown}{more}"


class CategoryTask(RegisteredMetrics):
    """Multi-class product category over a configurable label list."""

    name = "category"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        values = OPTIONS.parse(options or {}, strict=True, owner="task 'category'")
        self._label_words: str | None = values["label_words"]
        self.categories: str = values["categories"]
        labels, self.auto = _parse_categories(self.categories)
        self.min_chars: int = values["min_chars"]
        self.train_per_class: int = values["train_per_class"]
        self.test_per_class: int = values["test_per_class"]
        self.drop_3star: bool = values["drop_3star"]
        self.balance: bool = values["balance"]
        self.input: str = values["input"]
        self.markup: str = values["markup"]
        self.slice_col: str | None = values["slice_col"]
        self.prompt = common.prompt_option(values["prompt"], PROMPT)
        self._set_labels(labels)

    def _set_labels(self, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.label_words = common.label_words_option(self._label_words, labels) if labels else ()
        self._lookup = {normalise(label): label for label in labels}

    def _label_of(self, raw: str, mapped: str | None) -> tuple[str | None, str]:
        """The label for a raw category name (`mapped`: its release name), or None and why it has none."""
        if self.auto is not None:
            return mapped or raw, ""
        label = self._lookup.get(normalise(mapped or raw))
        if label is not None:
            return label, ""
        return None, "unmapped_category" if mapped is None else "out_of_label_set"

    def split(self, reviews: Iterable[Review], *, limit: int | None, seed: int) -> Splits:
        """Sample the seeded per-class train and test sets in one pass over the reviews."""
        counts: Counter[str] = Counter()
        notes: list[str] = []
        unmapped: Counter[str] = Counter()
        frequency: Counter[str] = Counter()
        pools = self._sample(reviews, seed, counts, unmapped, frequency)
        if self.auto is not None:
            self._choose_auto_labels(frequency, unmapped, counts, notes)
        elif unmapped:
            notes.append(_names_note("categories with no entry in the name table (not scored)", unmapped))

        samples = [sorted(pools.get(label, []), reverse=True) for label in self.labels]
        sizes = self._class_sizes([len(sample) for sample in samples], notes)
        train: list[tuple[float, Example]] = []
        test: list[tuple[float, Example]] = []
        for index, (label, sample, (n_train, n_test)) in enumerate(
            zip(self.labels, samples, sizes, strict=True)
        ):
            for position, (negated, _, review_id, text, facets, cluster) in enumerate(
                sample[: n_train + n_test]
            ):
                example = Example(review_id, text, index, facets, cluster)
                (train if position < n_train else test).append((-negated, example))
            counts["kept"] += frequency[label]
        counts["train"] = len(train)
        counts["not_sampled"] = counts["kept"] - len(train) - len(test)
        test_examples = [example for _, example in sorted(test, key=lambda pair: pair[0])]
        return Splits(
            test=_test_stream(test_examples, limit, counts),
            train=[example for _, example in sorted(train, key=lambda pair: pair[0])],
            counts=counts,
            notes=notes,
        )

    def _sample(
        self,
        reviews: Iterable[Review],
        seed: int,
        counts: Counter[str],
        unmapped: Counter[str],
        frequency: Counter[str],
    ) -> dict[str, list[Sampled]]:
        """Filter the reviews and keep, per category, the quota with the smallest seeded hashes."""
        pools: dict[str, list[Sampled]] = {}
        quota = self.train_per_class + self.test_per_class
        for review in reviews:
            counts["read"] += 1
            raw = (review.category or "").strip()
            if not raw:
                counts["no_category"] += 1
                continue
            mapped = to_release_name(raw)
            label, reason = self._label_of(raw, mapped)
            if mapped is None and (label is None or self.auto is not None):
                unmapped[raw] += 1
            if label is None:
                counts[reason] += 1
                continue
            if review.stars is None:
                counts["no_stars"] += 1
            elif review.stars == 3 and self.drop_3star:
                counts["dropped_3star"] += 1
                continue
            text = common.review_input(review, self.input, self.markup)
            if not text.strip():
                counts["empty_text"] += 1
            if len(text) <= self.min_chars:
                counts["too_short"] += 1
                continue
            frequency[label] += 1
            facets = common.facets(review, self.slice_col)
            item = (
                -common.unit_hash(seed, review.id),
                counts["read"],
                review.id,
                text,
                facets,
                review.cluster,
            )
            pool = pools.setdefault(label, [])
            if len(pool) < quota:
                heapq.heappush(pool, item)
            elif item > pool[0]:
                heapq.heapreplace(pool, item)
        return pools

    def _class_sizes(self, available: list[int], notes: list[str]) -> list[tuple[int, int]]:
        """Train and test counts per class: the quotas, or less where the data has less (noted).

        With `balance` every class gets the counts of the smallest non-empty
        class, so that the test set stays balanced as in the study; without
        it each short class is split on its own in the quotas' proportion.
        """
        quota = self.train_per_class + self.test_per_class

        def shares(n: int) -> tuple[int, int]:
            if n >= quota:
                return self.train_per_class, self.test_per_class
            n_train = n * self.train_per_class // quota
            return n_train, n - n_train

        for label, n in zip(self.labels, available, strict=True):
            if n == 0:
                notes.append(f"class {label!r}: no usable reviews in the data")
            elif n < quota:
                n_train, n_test = shares(n)
                notes.append(
                    f"class {label!r}: {n} usable reviews, fewer than {self.train_per_class} train + "
                    f"{self.test_per_class} test"
                    + ("" if self.balance else f"; split {n_train} train / {n_test} test")
                )
        present = [n for n in available if n > 0]
        if not self.balance or not present or min(present) >= quota:
            return [shares(n) for n in available]
        n_train, n_test = shares(min(present))
        notes.append(f"balanced split: every class gets {n_train} train / {n_test} test reviews")
        return [(n_train, n_test) if n > 0 else (0, 0) for n in available]

    def _choose_auto_labels(
        self, frequency: Counter[str], unmapped: Counter[str], counts: Counter[str], notes: list[str]
    ) -> None:
        """Take the N most frequent usable categories (ties by name) as the label set."""
        assert self.auto is not None
        ranked = sorted(frequency, key=lambda name: (-frequency[name], name))
        chosen = tuple(ranked[: self.auto])
        counts["out_of_label_set"] += sum(frequency[name] for name in ranked[self.auto :])
        if len(chosen) < self.auto:
            notes.append(f"auto:{self.auto} asked for {self.auto} categories; the data has {len(chosen)}")
        raw_chosen = Counter({name: unmapped[name] for name in chosen if name in unmapped})
        if raw_chosen:
            notes.append(_names_note("categories with no entry in the name table, used as named", raw_chosen))
        self._set_labels(chosen)

    def fingerprint(self) -> str:
        return common.fingerprint(
            {
                "task": self.name,
                "categories": self.categories,
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
        "category",
        CategoryTask,
        options=OPTIONS,
        description="product category over the study's 11 labels, a list, or auto:N; seeded per-class split",
    )
