"""Bootstrap confidence intervals for any task's metrics, so a leaderboard shows its uncertainty.

One run's interval resamples its reviews, or, when the reviews fall into
clusters (reviews of one product), whole clusters: reviews of one product
share the product's quality and wording, so resampling them as if each were
independent understates the uncertainty. The resampling unit is the one
parameter `clusters` of the one bootstrap below; the design effect is the
ratio of the clustered to the unclustered standard error. A multi-seed run adds a second
source of variation, the seed (split, fine-tuning, demonstrations,
calibration), and its combined interval comes from a two-level bootstrap:
resample the seeds with replacement and, once per draw, every review any seed
scored; each seed drawn is measured on its own reviews' copies, and the mean
over the seeds drawn is one draw.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], dict[str, float]]

# Resample indices drawn per block: a block of [resamples, n] indices stays near 8 MB however many reviews.
BLOCK_INDICES = 1_000_000


@runtime_checkable
class ResampledMetrics(Protocol):
    """Metrics that can also score many resamples in one array operation.

    `resampled(gold, probs, index)` gives, per metric, its value on every row
    of `index` [resamples, n] (the examples of one resample), exactly what
    calling the metrics on `gold[row], probs[row]` gives row by row. The
    bootstrap of a run and of each of its slices then costs a few array
    operations rather than a metric call per resample.
    """

    def __call__(self, gold: np.ndarray, probs: np.ndarray) -> dict[str, float]: ...

    def resampled(self, gold: np.ndarray, probs: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]: ...


def on_resamples(
    metric_fn: MetricFn, gold: np.ndarray, probs: np.ndarray, index: np.ndarray
) -> dict[str, np.ndarray]:
    """Every metric on every resample, a row of `index` [r, n]: in array operations where it can, else per call."""
    if isinstance(metric_fn, ResampledMetrics):
        return metric_fn.resampled(gold, probs, index)
    samples: dict[str, list[float]] = {}
    for row in index:
        for name, value in metric_fn(gold[row], probs[row]).items():
            samples.setdefault(name, []).append(value)
    return {name: np.asarray(values, dtype=np.float64) for name, values in samples.items()}


def cluster_codes(keys: Sequence[str | None]) -> np.ndarray | None:
    """Each review's cluster as a number 0..G-1 (a review without a key is a cluster of its own);
    None when no review has a key, so the bootstrap resamples reviews."""
    if all(key is None for key in keys):
        return None
    codes: dict[str, int] = {}
    return np.array(
        [
            codes.setdefault(f"k{key}" if key is not None else f"r{i}", len(codes))
            for i, key in enumerate(keys)
        ],
        dtype=np.int64,
    )


def cluster_count(clusters: np.ndarray | None, n: int) -> int:
    """How many units the bootstrap resamples: clusters, or the reviews themselves."""
    return n if clusters is None else len(np.unique(clusters))


def resample_blocks(
    n: int, resamples: int, seed: int, clusters: np.ndarray | None = None
) -> Iterator[np.ndarray]:
    """The bootstrap's resample indices, in blocks of [some resamples, length].

    Without `clusters` every resample draws n reviews; the blocks come from
    one seeded stream in order, so they hold the same indices as drawing one
    resample at a time. With `clusters` (each review's cluster number) a
    resample draws as many clusters as there are, with replacement, and takes
    every review of each cluster drawn, so resamples differ in length: each
    block holds the resamples of one length.
    """
    rng = np.random.default_rng(seed)
    if clusters is None:
        block = max(1, BLOCK_INDICES // n)
        for start in range(0, resamples, block):
            yield rng.integers(0, n, size=(min(block, resamples - start), n))
        return
    _, codes = np.unique(clusters, return_inverse=True)
    order = np.argsort(
        codes, kind="stable"
    )  # the reviews of cluster g are order[starts[g]:starts[g] + sizes[g]]
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    by_length: dict[int, list[np.ndarray]] = {}
    for picks in rng.integers(0, len(sizes), size=(resamples, len(sizes))):
        counts = sizes[picks]
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        by_length.setdefault(int(counts.sum()), []).append(order[np.repeat(starts[picks], counts) + offsets])
    for rows in by_length.values():
        yield np.stack(rows)


def bootstrap_samples(
    metric_fn: MetricFn,
    gold: np.ndarray,
    probs: np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 0,
    clusters: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every metric on `resamples` resamples of the examples, or of their `clusters` (with replacement);
    empty below two units."""
    n = len(gold)
    if cluster_count(clusters, n) < 2 or resamples < 1:
        return {}
    parts: dict[str, list[np.ndarray]] = {}
    for index in resample_blocks(n, resamples, seed, clusters):
        for name, values in on_resamples(metric_fn, gold, probs, index).items():
            parts.setdefault(name, []).append(values)
    return {name: np.concatenate(values).astype(np.float64) for name, values in parts.items()}


def percentile_interval(draws: np.ndarray) -> tuple[float, float]:
    """The central 95% of the draws (NaN draws, from resamples where a metric is undefined, left out);
    NaN when the metric is undefined in every resample."""
    defined = draws[~np.isnan(draws)]
    if defined.size == 0:
        return math.nan, math.nan
    return float(np.percentile(defined, 2.5)), float(np.percentile(defined, 97.5))


def bootstrap_intervals(
    metric_fn: MetricFn,
    gold: np.ndarray,
    probs: np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 0,
    clusters: np.ndarray | None = None,
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of every metric over resampled examples or clusters (with replacement)."""
    samples = bootstrap_samples(metric_fn, gold, probs, resamples=resamples, seed=seed, clusters=clusters)
    return {name: percentile_interval(draws) for name, draws in samples.items()}


def design_effects(clustered: dict[str, np.ndarray], naive: dict[str, np.ndarray]) -> dict[str, float]:
    """Per metric, the clustered bootstrap's standard error over the review bootstrap's (1: no clustering)."""
    effects = {}
    for name, draws in clustered.items():
        kept, reference = draws[np.isfinite(draws)], naive.get(name, np.empty(0))
        reference = reference[np.isfinite(reference)]
        if len(kept) > 1 and len(reference) > 1 and np.std(reference) > 0:
            effects[name] = float(np.std(kept, ddof=1) / np.std(reference, ddof=1))
    return effects


def clustered_intervals(
    metric_fn: MetricFn,
    gold: np.ndarray,
    probs: np.ndarray,
    *,
    resamples: int,
    seed: int,
    clusters: np.ndarray | None,
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """The intervals a row reports (clustered where there are clusters) and, per metric, the design effect
    measured against the review bootstrap (empty without clusters)."""
    samples = bootstrap_samples(metric_fn, gold, probs, resamples=resamples, seed=seed, clusters=clusters)
    effects = {}
    if clusters is not None:
        naive = bootstrap_samples(metric_fn, gold, probs, resamples=resamples, seed=seed)
        effects = design_effects(samples, naive)
    return {name: percentile_interval(draws) for name, draws in samples.items()}, effects


def resampling_units(ids: Sequence[str], clusters: Sequence[str | None] | None) -> list[str]:
    """What a two-level bootstrap resamples for each review: its cluster, or the review itself."""
    if clusters is None:
        return [f"r{i}" for i in ids]
    return [f"k{c}" if c is not None else f"r{i}" for i, c in zip(ids, clusters, strict=True)]


def two_level_draws(
    measure: Callable[[int, np.ndarray], dict[str, float]],
    units: Sequence[Sequence[str]],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Draws of every measure's mean over the seeds, varying both the seed and the reviews.

    `units[s]` names, for each review seed s scored (in the order of its
    arrays), the unit resampled: the review's id, or its cluster (see
    `resampling_units`); `measure(s, index)` is seed s's figures on its
    reviews `index`. Each draw picks len(units) seeds with replacement and
    resamples, once, every unit any seed scored (with replacement); each seed
    picked is measured on the copies drawn of its own reviews (a review of a
    cluster drawn twice counts twice), and the draw is the mean over the seeds
    picked. Seeds that scored the same reviews thus see the same resample
    (seeds that agree add no spread), and seeds whose reviews overlap share
    the overlap's resample. A seed picked twice counts its one resample twice,
    which makes the interval somewhat wider (never narrower) than resampling
    each pick's reviews afresh would when seeds scored different reviews.
    """
    rng = np.random.default_rng(seed)
    universe: dict[str, int] = {}
    members = [np.array([universe.setdefault(u, len(universe)) for u in seed_units]) for seed_units in units]
    count = len(units)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        picks = rng.integers(0, count, size=count)
        copies = np.bincount(rng.integers(0, len(universe), size=len(universe)), minlength=len(universe))
        totals: dict[str, float] = {}
        for s, weight in enumerate(np.bincount(picks, minlength=count)):
            if weight:
                index = np.repeat(np.arange(len(members[s])), copies[members[s]])
                for name, value in measure(s, index).items():
                    totals[name] = totals.get(name, 0.0) + weight * value
        for name, total in totals.items():
            draws.setdefault(name, []).append(total / count)
    return {name: np.asarray(values, dtype=np.float64) for name, values in draws.items()}


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (n - 1), minimum and maximum of one metric over the seeds."""
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }
