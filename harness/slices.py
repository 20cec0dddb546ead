"""Quality on slices of the scored reviews: by length, by density of negative words, by category, by stars.

The study found that small models fail on long reviews and on reviews full of
negative words while LLMs judge the whole context; one number over all reviews
cannot show that. Every scored review gets its features here (recorded in
predictions.jsonl), and every row gets its metrics with bootstrap intervals per
slice (recorded in results.json), plus the share of each flag a model reads in its raw texts (a
hybrid's escalations) per slice.

Length is counted in word tokens: runs of letters and digits (with an inner
apostrophe, so "don't" is one) and single punctuation marks, the pieces BERT's
basic tokenizer splits text into before WordPiece. It needs no model and
counts the same for every model; WordPiece counts come out somewhat higher
(a rare word splits into several pieces), so the "over 512" bucket holds
fewer reviews than a model's 512-token window truncates.

Negation density is the number of words from `NEGATIVE_WORDS` (or ending in
"n't") per 100 words of the review.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.intervals import MetricFn, bootstrap_intervals, on_resamples

TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)?|[^\w\s]|_")

# Negations and the negative words reviews use most; every word is matched lower-cased and whole.
NEGATIONS = ("not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "cannot",
             "without", "hardly", "barely")  # fmt: skip
NEGATIVES = ("bad", "worse", "worst", "poor", "poorly", "terrible", "horrible", "awful", "disappointing",
             "disappointed", "disappointment", "waste", "wasted", "useless", "broken", "broke", "junk", "crap",
             "boring", "annoying", "cheap", "defective", "refund", "return", "returned", "fail", "failed",
             "fails", "failure", "problem", "problems", "unfortunately", "hate", "hated", "mediocre",
             "flimsy")  # fmt: skip
NEGATIVE_WORDS = frozenset(NEGATIONS + NEGATIVES)

LENGTH_BUCKETS = ((64, "up to 64"), (128, "65-128"), (256, "129-256"), (512, "257-512"))
LENGTH_OVER = "over 512"
NEGATION_BUCKETS = ((0.0, "none"), (2.0, "under 2"), (4.0, "2-4"))
NEGATION_OVER = "4 and over"
MISSING = "(none)"
BUILTIN_DIMENSIONS = ("length", "negation", "category", "stars")


def text_features(text: str) -> dict[str, float]:
    """The features slicing reads from a review's text: `tokens` and `negation` (negative words per 100)."""
    tokens = TOKEN.findall(text.lower())
    words = [t for t in tokens if t[0].isalnum()]
    negative = sum(1 for w in words if w in NEGATIVE_WORDS or w.endswith(("n't", "n’t")))
    density = 100.0 * negative / len(words) if words else 0.0
    return {"tokens": len(tokens), "negation": round(density, 3)}


def length_bucket(tokens: float) -> str:
    for bound, name in LENGTH_BUCKETS:
        if tokens <= bound:
            return name
    return LENGTH_OVER


def negation_bucket(density: float) -> str:
    if density <= 0:
        return NEGATION_BUCKETS[0][1]
    for bound, name in NEGATION_BUCKETS[1:]:
        if density < bound:
            return name
    return NEGATION_OVER


def slice_of(record: Mapping[str, Any], dimension: str) -> str:
    """The slice a prediction record falls in along one dimension (a built-in one or a data column)."""
    features = record.get("features") or {}
    if dimension == "length":
        return length_bucket(float(features.get("tokens", 0)))
    if dimension == "negation":
        return negation_bucket(float(features.get("negation", 0.0)))
    value = (record.get("facets") or {}).get(dimension)
    return MISSING if value in (None, "") else str(value)


def slice_order(dimension: str, names: set[str]) -> list[str]:
    """Buckets in their natural order; categories and columns by name, stars by number."""
    if dimension == "length":
        fixed = [name for _, name in LENGTH_BUCKETS] + [LENGTH_OVER]
    elif dimension == "negation":
        fixed = [name for _, name in NEGATION_BUCKETS] + [NEGATION_OVER]
    else:
        return sorted(names, key=lambda n: (n == MISSING, len(n) if n.isdigit() else 0, n))
    return [name for name in fixed if name in names]


class SliceNames:
    """Each scored review's slice along every dimension, as the runner scores them.

    A run streams its reviews, so what it keeps of each to slice by must stay
    small: a 4-byte code per review and dimension, into the dimension's slice
    names. A data column first seen part-way through a run puts the reviews
    before it in its `MISSING` slice, as `slice_of` does for a review without it.
    """

    def __init__(self) -> None:
        self.count = 0
        self._codes: dict[str, array[int]] = {"length": array("I"), "negation": array("I")}
        self._names: dict[str, dict[str, int]] = {"length": {}, "negation": {}}

    @classmethod
    def of_records(cls, records: Iterable[Mapping[str, Any]]) -> SliceNames:
        """The slices of prediction records, in their order."""
        slices = cls()
        for record in records:
            slices.add(record)
        return slices

    def add(self, record: Mapping[str, Any]) -> None:
        """Add the next review's slices from its prediction record (its `features` and `facets`)."""
        for dimension in record.get("facets") or {}:
            if dimension not in self._codes:  # the reviews before this one are without it
                self._names[dimension] = {MISSING: 0} if self.count else {}
                self._codes[dimension] = array("I", [0]) * self.count
        for dimension, codes in self._codes.items():
            codes.append(self._code(dimension, slice_of(record, dimension)))
        self.count += 1

    def _code(self, dimension: str, name: str) -> int:
        names = self._names[dimension]
        return names.setdefault(name, len(names))

    def dimensions(self) -> list[str]:
        """Length and negation always, the other built-in dimensions where reviews carry them, then the
        data's own columns in the order they were first seen."""
        builtin = [d for d in BUILTIN_DIMENSIONS if d in self._codes]
        return builtin + [d for d in self._codes if d not in BUILTIN_DIMENSIONS]

    def along(self, dimension: str) -> tuple[list[str], np.ndarray]:
        """The slice names seen along `dimension`, and each review's index into them."""
        return list(self._names[dimension]), np.frombuffer(self._codes[dimension], dtype=np.uintc)


def slice_report(
    slices: SliceNames,
    gold: np.ndarray,
    probs: np.ndarray,
    metric_fn: MetricFn,
    *,
    resamples: int,
    seed: int,
    clusters: np.ndarray | None = None,
    flags: Mapping[str, Sequence[bool]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per dimension, per slice: n, metrics, bootstrap 95% intervals and the share of each flag.

    `slices` hold the reviews in the order of `gold` and `probs`; with
    `clusters` (each review's cluster number) a slice's intervals resample
    the clusters of its reviews; `flags` (a model's `RowStats.flags`) hold one bool per review.
    """
    flagged = {name: np.asarray(values, dtype=bool) for name, values in (flags or {}).items()}
    report: dict[str, list[dict[str, Any]]] = {}
    for dimension in slices.dimensions():
        names, codes = slices.along(dimension)
        rows = []
        for name in slice_order(dimension, set(names)):
            index = np.flatnonzero(codes == names.index(name))
            # A metric a slice cannot define (accuracy on positives among 1-star reviews) is left out.
            values = {k: v for k, v in metric_fn(gold[index], probs[index]).items() if np.isfinite(v)}
            defined = _Only(metric_fn, frozenset(values))
            part = clusters[index] if clusters is not None else None
            intervals = bootstrap_intervals(
                defined, gold[index], probs[index], resamples=resamples, seed=seed, clusters=part
            )
            entry: dict[str, Any] = {
                "slice": name,
                "n": len(index),
                "metrics": values,
                "intervals": {metric: [low, high] for metric, (low, high) in intervals.items()},
            }
            for flag, marked in flagged.items():
                entry[f"{flag}_share"] = float(np.mean(marked[index]))
            rows.append(entry)
        report[dimension] = rows
    return report


@dataclass(frozen=True)
class _Only:
    """A slice's metrics: those defined on the whole slice, resampled as the row's metrics are."""

    metric_fn: MetricFn
    names: frozenset[str]

    def __call__(self, gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
        return {k: v for k, v in self.metric_fn(gold, probs).items() if k in self.names}

    def resampled(self, gold: np.ndarray, probs: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v for k, v in on_resamples(self.metric_fn, gold, probs, index).items() if k in self.names}
