"""Paired comparison of two runs on the same examples: metric differences, bootstrap intervals, McNemar.

Pairing by example id makes the comparison far more sensitive than comparing
two leaderboard numbers: both runs' errors on the same review cancel out, and
only the reviews where they disagree carry information. Where the reviews
carry clusters (their product), every resample draws whole clusters, the same
ones for both runs. Beside the difference stands the smallest accuracy
difference the comparison could have detected (see `harness.power`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import HarnessError
from harness.intervals import cluster_codes, cluster_count, design_effects, resample_blocks, resampling_units
from harness.leaderboard._predictions import group_predictions, iter_predictions
from harness.power import min_detectable_difference
from harness.results import read_results


@dataclass
class MetricDiff:
    name: str
    a: float
    b: float
    low: float | None
    high: float | None

    @property
    def diff(self) -> float:
        return self.b - self.a


@dataclass
class Comparison:
    """Run B minus run A for one (task, model) on the examples both runs scored."""

    task: str
    model: str
    n: int
    metrics: list[MetricDiff]
    only_a_right: int
    only_b_right: int
    p_value: float
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    disagreement_count: int = 0
    clusters: int | None = None  # clusters resampled; None: the reviews were resampled
    design_effect: float | None = None  # of the accuracy difference: clustered over unclustered SE
    min_detectable: float | None = None  # accuracy difference detectable at 80% power, 5% two-sided
    notes: list[str] = field(default_factory=list)  # what makes the pairing less than the two whole runs


def mcnemar_exact(only_a_right: int, only_b_right: int) -> float:
    """Two-sided exact McNemar test: a binomial test of the discordant pairs against p = 1/2."""
    total = only_a_right + only_b_right
    if total == 0:
        return 1.0
    smaller = min(only_a_right, only_b_right)
    tail = sum(math.comb(total, i) for i in range(smaller + 1)) / 2**total
    return min(1.0, 2 * tail)


def paired_metrics(gold: np.ndarray, pred: np.ndarray, classes: int) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 and per-class accuracy of a batch of resamples: gold and pred are [r, n] indices.

    As in the task metrics, macro-F1 averages over the classes that occur in
    the gold or predicted labels of each resample (F1 = 2 tp / (support + predicted)).
    """
    out = {"accuracy": (gold == pred).mean(axis=1)}
    f1s = []
    for c in range(classes):
        true_c, pred_c = gold == c, pred == c
        hits = (true_c & pred_c).sum(axis=1)
        support, predicted = true_c.sum(axis=1), pred_c.sum(axis=1)
        out[f"accuracy[{c}]"] = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
        seen = support + predicted
        f1s.append(np.where(seen > 0, 2 * hits / np.maximum(seen, 1), np.nan))
    stacked = np.stack(f1s)
    present = (~np.isnan(stacked)).sum(axis=0)
    out["macro_f1"] = np.where(present > 0, np.nansum(stacked, axis=0) / np.maximum(present, 1), np.nan)
    return out


def paired_draws(
    gold: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    classes: int,
    *,
    resamples: int,
    seed: int,
    clusters: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """B minus A of every metric on resamples drawn once for both runs (of reviews, or of clusters)."""
    parts: dict[str, list[np.ndarray]] = {}
    for picks in resample_blocks(len(gold), resamples, seed, clusters):
        sample_a = paired_metrics(gold[picks], pred_a[picks], classes)
        sample_b = paired_metrics(gold[picks], pred_b[picks], classes)
        for name in sample_a:
            parts.setdefault(name, []).append(sample_b[name] - sample_a[name])
    return {name: np.concatenate(values) for name, values in parts.items()}


def pair_by_id(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> list[tuple[dict, dict]]:
    """Records of both runs for the examples both scored, in run A's order; gold labels must agree."""
    by_id = {str(r["id"]): r for r in b}
    pairs = [(r, by_id[str(r["id"])]) for r in a if str(r["id"]) in by_id]
    if not pairs:
        raise HarnessError("the two runs share no example ids: they did not score the same reviews")
    for ra, rb in pairs:
        if ra["gold"] != rb["gold"]:
            raise HarnessError(
                f"example {ra['id']!r} has gold {ra['gold']!r} in run A and {rb['gold']!r} in run B"
            )
    return pairs


def compare_records(
    task: str,
    model: str,
    a: Sequence[dict[str, Any]],
    b: Sequence[dict[str, Any]],
    *,
    resamples: int = 1000,
    seed: int = 0,
    show: int = 10,
) -> Comparison:
    """Compare two runs' records of one (task, model), resampling example indices jointly for both runs."""
    pairs = pair_by_id(a, b)
    labels = sorted({str(r[k]) for pair in pairs for r in pair for k in ("gold", "pred")})
    index = {label: i for i, label in enumerate(labels)}
    gold = np.array([index[str(ra["gold"])] for ra, _ in pairs])
    pred_a = np.array([index[str(ra["pred"])] for ra, _ in pairs])
    pred_b = np.array([index[str(rb["pred"])] for _, rb in pairs])
    point_a = paired_metrics(gold[None], pred_a[None], len(labels))
    point_b = paired_metrics(gold[None], pred_b[None], len(labels))
    clusters = cluster_codes([ra.get("cluster") for ra, _ in pairs])
    samples: dict[str, np.ndarray] = {}
    effect: float | None = None if clusters is not None else 1.0
    if resamples > 0 and cluster_count(clusters, len(pairs)) > 1:
        k = len(labels)
        samples = paired_draws(gold, pred_a, pred_b, k, resamples=resamples, seed=seed, clusters=clusters)
        if clusters is not None:
            naive = paired_draws(gold, pred_a, pred_b, k, resamples=resamples, seed=seed, clusters=None)
            effect = design_effects(samples, naive).get("accuracy")
    diffs = []
    for name in point_a:
        value_a, value_b = float(point_a[name][0]), float(point_b[name][0])
        if math.isnan(value_a) or math.isnan(value_b):
            continue
        low = high = None
        if name in samples and not np.all(np.isnan(samples[name])):
            low, high = (float(x) for x in np.nanpercentile(samples[name], [2.5, 97.5]))
        diffs.append(MetricDiff(shown_name(name, labels), value_a, value_b, low, high))
    right_a, right_b = pred_a == gold, pred_b == gold
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    disagree = [(ra, rb) for ra, rb in pairs if ra["pred"] != rb["pred"]]
    examples = [
        {
            "id": ra["id"],
            "gold": ra["gold"],
            "pred_a": ra["pred"],
            "pred_b": rb["pred"],
            "text": ra.get("text") or rb.get("text"),
        }  # fmt: skip
        for ra, rb in disagree[:show]
    ]
    detectable = None
    if effect is not None:
        detectable = min_detectable_difference(
            len(pairs), (only_a + only_b) / len(pairs), design_effect=effect
        )
    return Comparison(task, model, len(pairs), diffs, only_a, only_b, mcnemar_exact(only_a, only_b),
                      examples, len(disagree), None if clusters is None else cluster_count(clusters, len(pairs)),
                      effect, detectable, pairing_notes(a, b, pairs))  # fmt: skip


def pairing_notes(
    a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]], pairs: list[tuple[dict, dict]]
) -> list[str]:
    """What a reader of the differences must know: reviews left unpaired, and shared ids of other texts."""
    notes = []
    if len(pairs) < max(len(a), len(b)):
        notes.append(
            f"paired on the {len(pairs)} reviews both runs scored; {len(a) - len(pairs)} scored by A only, "
            f"{len(b) - len(pairs)} by B only"
        )
    other = sum(1 for ra, rb in pairs if "text" in ra and "text" in rb and ra["text"] != rb["text"])
    if other:
        notes.append(
            f"{other} of the paired ids hold different texts in the two runs: they are not the same reviews"
        )
    return notes


DATA_KEYS = ("data", "dataset", "source_options", "seed")  # what decides which reviews a run scores


def data_notes(run_a: Path, run_b: Path) -> list[str]:
    """A note for each setting of the two runs that decides their reviews and differs, e.g. the data file."""
    config_a = read_results(run_a).get("config") or {}
    config_b = read_results(run_b).get("config") or {}
    return [
        f"the runs differ in {key}: A {config_a.get(key)!r}, B {config_b.get(key)!r}"
        for key in DATA_KEYS
        if config_a.get(key) != config_b.get(key)
    ]


def compare_runs(
    run_a: Path,
    run_b: Path,
    *,
    task: str | None = None,
    model: str | None = None,
    resamples: int = 1000,
    seed: int = 0,
    show: int = 10,
) -> list[Comparison]:
    """One comparison per (task, model) present in both runs."""
    groups_a = group_predictions(iter_predictions(run_a, task=task, model=model))
    groups_b = group_predictions(iter_predictions(run_b, task=task, model=model))
    shared = [key for key in groups_a if key in groups_b]
    if not shared:
        raise HarnessError(
            f"no (task, model) is in both runs; run A has {sorted(groups_a)}, run B has {sorted(groups_b)}"
        )
    comparisons = [
        compare_records(
            key[0], key[1], groups_a[key], groups_b[key], resamples=resamples, seed=seed, show=show
        )
        for key in shared
    ]
    settings = data_notes(run_a, run_b)
    for comparison in comparisons:
        comparison.notes[:0] = settings
    return comparisons


@dataclass
class SeedDiff:
    """One metric's B-minus-A difference, seed by seed and as a mean over the seeds both runs ran."""

    name: str
    a: float
    b: float
    diffs: list[float]
    sd: float
    low: float | None
    high: float | None
    t_p_value: float | None

    @property
    def diff(self) -> float:
        return self.b - self.a


@dataclass
class SeedComparison:
    """Run B minus run A for one (task, model) over the seeds of two multi-seed runs."""

    task: str
    model: str
    seeds: list[int]
    n: list[int]
    metrics: list[SeedDiff]
    mcnemar_p: list[float]
    interval: str
    disagreement: float = 0.0  # share of the pooled paired reviews exactly one run got right
    design_effect: float | None = None  # of the mean accuracy difference, seeds and reviews over pooled
    min_detectable: float | None = None  # accuracy difference detectable at 80% power, 5% two-sided


def seed_runs(run_dir: Path) -> dict[int, Path] | None:
    """Seed -> run directory of a multi-seed run; None for a single-seed run."""
    block = read_results(run_dir).get("seeds")
    if not block:
        return None
    return {int(seed): run_dir / name for seed, name in block["runs"].items()}


def t_test_over_seeds(diffs: Sequence[float]) -> float | None:
    """Two-sided one-sample t-test of the per-seed differences against 0; None without seed spread."""
    from scipy import stats

    sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0
    if sd == 0 or math.isnan(sd):
        return None
    t = float(np.mean(diffs)) / (sd / math.sqrt(len(diffs)))
    return float(2 * stats.t.sf(abs(t), df=len(diffs) - 1))


def compare_seed_runs(
    run_a: Path,
    run_b: Path,
    *,
    task: str | None = None,
    model: str | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> list[SeedComparison]:
    """Pair two multi-seed runs seed by seed (each seed's reviews by id) and pool the differences.

    The interval is a two-level bootstrap of the mean difference: seeds
    resampled, then the paired reviews (see `harness.intervals.two_level_draws`). So a difference that changes sign from seed
    to seed is not called significant on the strength of many reviews; the
    t-test over the per-seed differences asks the same of the seed spread alone.
    """
    seeds_a, seeds_b = seed_runs(run_a), seed_runs(run_b)
    if seeds_a is None or seeds_b is None:
        single = run_a if seeds_a is None else run_b
        raise HarnessError(
            f"{single} is a single-seed run; compare it with one seed of the other (RUN_DIR/seed-N)"
        )
    shared = sorted(set(seeds_a) & set(seeds_b))
    if len(shared) < 2:
        raise HarnessError(
            f"the runs share seeds {shared or 'none'} (A ran {sorted(seeds_a)}, B ran {sorted(seeds_b)}); "
            "pooling over seeds needs two or more seeds run by both"
        )
    groups = [
        (group_predictions(iter_predictions(seeds_a[s], task=task, model=model)),
         group_predictions(iter_predictions(seeds_b[s], task=task, model=model)))
        for s in shared
    ]  # fmt: skip
    keys = [key for key in groups[0][0] if all(key in a and key in b for a, b in groups)]
    if not keys:
        raise HarnessError("no (task, model) is in every shared seed of both runs")
    return [
        pool_seeds(key, shared, [(a[key], b[key]) for a, b in groups], resamples=resamples, seed=seed)
        for key in keys
    ]


def pool_seeds(
    key: tuple[str, str],
    seeds: list[int],
    records: Sequence[tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]]],
    *,
    resamples: int,
    seed: int,
) -> SeedComparison:
    """One (task, model): each seed's paired comparison, and their differences pooled over the seeds."""
    from harness.intervals import percentile_interval, two_level_draws

    per_seed = [compare_records(*key, a, b, resamples=0, show=0) for a, b in records]
    pairs = [pair_by_id(a, b) for a, b in records]
    labels = sorted({str(r[k]) for seed_pairs in pairs for pair in seed_pairs for r in pair
                     for k in ("gold", "pred")})  # fmt: skip
    index = {label: i for i, label in enumerate(labels)}
    arrays = [
        [np.array([index[str(pair[side][field])] for pair in seed_pairs])
         for side, field in ((0, "gold"), (0, "pred"), (1, "pred"))]
        for seed_pairs in pairs
    ]  # fmt: skip

    def measure(s: int, rows: np.ndarray) -> dict[str, float]:
        gold, pred_a, pred_b = (column[rows][None] for column in arrays[s])
        before, after = paired_metrics(gold, pred_a, len(labels)), paired_metrics(gold, pred_b, len(labels))
        return {shown_name(name, labels): float(after[name][0] - before[name][0]) for name in before}

    draws = {}
    if resamples > 0:
        units = [
            resampling_units([str(a["id"]) for a, _ in seed_pairs], [a.get("cluster") for a, _ in seed_pairs])
            for seed_pairs in pairs
        ]
        draws = two_level_draws(measure, units, resamples=resamples, seed=seed)
    pooled = [np.concatenate([seed_arrays[i] for seed_arrays in arrays]) for i in range(3)]
    disagreement = sum(c.only_a_right + c.only_b_right for c in per_seed) / len(pooled[0])
    effect = detectable = None
    if "accuracy" in draws:
        effect, detectable = seed_detectable(
            pooled, len(labels), disagreement, draws["accuracy"], resamples=resamples, seed=seed
        )
    metrics = []
    for first in per_seed[0].metrics:
        found = [m for c in per_seed for m in c.metrics if m.name == first.name]
        if len(found) < len(per_seed):
            continue
        diffs = [m.diff for m in found]
        low, high = percentile_interval(draws[first.name]) if first.name in draws else (None, None)
        metrics.append(SeedDiff(
            first.name, float(np.mean([m.a for m in found])), float(np.mean([m.b for m in found])),
            diffs, float(np.std(diffs, ddof=1)), low, high, t_test_over_seeds(diffs),
        ))  # fmt: skip
    return SeedComparison(key[0], key[1], seeds, [c.n for c in per_seed], metrics, [c.p_value for c in per_seed],
                          "two-level bootstrap, 95%: seeds resampled, then the paired reviews (or their clusters) of all seeds once",
                          disagreement, effect, detectable)  # fmt: skip


def seed_detectable(
    pooled: list[np.ndarray],
    classes: int,
    disagreement: float,
    seed_draws: np.ndarray,
    *,
    resamples: int,
    seed: int,
) -> tuple[float | None, float | None]:
    """The design effect and minimum detectable accuracy difference of a comparison over seeds.

    `pooled` holds gold, A's and B's predictions of every seed's paired reviews, one seed after another,
    `disagreement` the share of them exactly one run got right, and `seed_draws` the two-level bootstrap's
    draws of the mean accuracy difference. The detectable difference is McNemar's on the pooled reviews at
    their disagreement rate, with a design effect that is the two-level bootstrap's standard error over that
    of the pooled reviews resampled as if independent. Pooling alone would be wrong twice over: a review
    every seed scored would count once per seed, and the seed-to-seed spread of the difference would be
    left out, both making a difference look easier to see than it is. The design effect carries both, as
    it carries the clusters, so the detectable difference widens exactly as the interval beside it does;
    for seeds that changed nothing on the same reviews it is one seed's.
    """
    gold, pred_a, pred_b = pooled
    naive = paired_draws(gold, pred_a, pred_b, classes, resamples=resamples, seed=seed, clusters=None)
    effect = design_effects({"accuracy": seed_draws}, naive).get("accuracy")
    if effect is None:
        return None, None
    return effect, min_detectable_difference(len(gold), disagreement, design_effect=effect)


def shown_name(name: str, labels: Sequence[str]) -> str:
    """`accuracy[1]` -> `accuracy[positive]`; other metric names unchanged."""
    return f"accuracy[{labels[int(name[9:-1])]}]" if name.startswith("accuracy[") else name
