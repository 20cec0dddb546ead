"""Replaying hybrids from their parts' stored predictions: any threshold, no model run.

A hybrid's prediction for a review is the small model's when the router keeps
it and the large model's when it escalates, and its runtime is the small
model's time on every review plus the large model's time on the escalated
ones. So with both models' per-review probabilities and latencies (from
predictions.jsonl) every threshold, the oracle and a calibrated threshold can
be evaluated exactly, in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness import HarnessError, Router, predictions
from harness.cache import embedding_from_text
from harness.intervals import bootstrap_intervals, cluster_codes
from harness.plugins.routing import _calibration as calibration

MetricFn = Callable[[np.ndarray, np.ndarray], dict[str, float]]
RouterFactory = Callable[[float], Router]


@dataclass
class PairedPredictions:
    """Both models' predictions on the same examples, aligned row by row."""

    ids: list[str]
    gold: np.ndarray
    small: np.ndarray
    large: np.ndarray
    small_latency: np.ndarray
    large_latency: np.ndarray
    texts: list[str] = field(
        default_factory=list
    )  # as predictions.jsonl keeps them (the first 500 characters)
    small_embeddings: np.ndarray | None = None  # [n, d] where the small model returns embeddings
    # Dollars per review of each model, where the run priced its rows (see `review_costs`)
    small_cost: np.ndarray | None = None
    large_cost: np.ndarray | None = None
    # Each review's cluster number (its product) where the run recorded one: intervals resample clusters.
    clusters: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, mask: np.ndarray) -> PairedPredictions:
        return PairedPredictions(
            ids=[i for i, keep in zip(self.ids, mask, strict=True) if keep],
            gold=self.gold[mask],
            small=self.small[mask],
            large=self.large[mask],
            small_latency=self.small_latency[mask],
            large_latency=self.large_latency[mask],
            texts=[t for t, keep in zip(self.texts, mask, strict=True) if keep] if self.texts else [],
            small_embeddings=None if self.small_embeddings is None else self.small_embeddings[mask],
            small_cost=None if self.small_cost is None else self.small_cost[mask],
            large_cost=None if self.large_cost is None else self.large_cost[mask],
            clusters=None if self.clusters is None else self.clusters[mask],
        )


def _records(path: Path, task: str, model: str) -> list[dict[str, Any]]:
    found = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if record["task"] == task and record["model"] == model:
                found.append(record)
    return found


def read_pair(path: Path, task: str, labels: Sequence[str], small: str, large: str) -> PairedPredictions:
    """Both models' records for `task` from a predictions.jsonl, aligned by example id."""
    small_records, large_records = _records(path, task, small), _records(path, task, large)
    for model, records in ((small, small_records), (large, large_records)):
        if not records:
            raise HarnessError(f"{path} has no predictions of {model!r} on task {task!r}")
    if [r["id"] for r in small_records] != [r["id"] for r in large_records]:
        by_id = {r["id"]: r for r in large_records}
        if len(by_id) != len(large_records) or set(by_id) != {r["id"] for r in small_records}:
            raise HarnessError(f"{small!r} and {large!r} were scored on different examples in {path}")
        large_records = [by_id[r["id"]] for r in small_records]
    index = {label: i for i, label in enumerate(labels)}
    results = _results_beside(path)
    small_latency = np.asarray([r["latency_s"] for r in small_records], dtype=np.float64)
    large_latency = np.asarray([r["latency_s"] for r in large_records], dtype=np.float64)
    return PairedPredictions(
        ids=[r["id"] for r in small_records],
        gold=np.asarray([index[r["gold"]] for r in small_records], dtype=np.int64),
        small=np.asarray([r["probs"] for r in small_records], dtype=np.float64),
        large=np.asarray([r["probs"] for r in large_records], dtype=np.float64),
        small_latency=small_latency,
        large_latency=large_latency,
        texts=[r.get("text", "") for r in small_records],
        small_embeddings=_embeddings(small_records),
        small_cost=review_costs(results, task, small, small_latency),
        large_cost=review_costs(results, task, large, large_latency),
        clusters=cluster_codes([r.get("cluster") for r in small_records]),
    )


def _results_beside(path: Path) -> dict[str, Any]:
    """The results.json written with a predictions.jsonl (empty when there is none to read)."""
    try:
        results = json.loads((path.parent / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return results if isinstance(results, dict) else {}


def review_costs(results: dict[str, Any], task: str, model: str, latency: np.ndarray) -> np.ndarray | None:
    """Dollars per review of `model`, as its row in results.json priced it; None when it has no price.

    A model with token prices costs its row's token dollars shared equally by
    its reviews; a local one its hardware's price per hour times each
    review's seconds. Fitting is a one-off and is left out: routing changes
    what scoring costs, not what training did.
    """
    row = next(
        (r for r in results.get("rows", []) if r.get("task") == task and r.get("model") == model), None
    )
    if row is None:
        return None
    token_cost = (row.get("extra") or {}).get("token_cost_usd")
    if token_cost is not None and row.get("n"):
        return np.full(len(latency), float(token_cost) / int(row["n"]))
    pricing = results.get("pricing") or {}
    if (row.get("cost") or {}).get("usd") is None or pricing.get("usd_per_hour") is None:
        return None
    return float(pricing["usd_per_hour"]) / 3600 * np.asarray(latency, dtype=np.float64)


def _embeddings(records: Sequence[dict[str, Any]]) -> np.ndarray | None:
    """The records' embeddings [n, d], or None unless every record has one."""
    if not all("embedding" in r for r in records):
        return None
    return np.stack([embedding_from_text(r["embedding"]) for r in records])


@dataclass
class Point:
    """One way of answering every example: a curve name, its threshold, share escalated, runtime, metrics."""

    curve: str
    threshold: float | None
    share: float
    escalated: int
    runtime_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    usd_per_1000: float | None = None  # dollars per 1,000 reviews, where both models are priced


def hybrid_probs(pair: PairedPredictions, escalate: np.ndarray) -> np.ndarray:
    """The small model's probabilities where kept, the large model's where escalated."""
    return np.where(np.asarray(escalate, dtype=bool)[:, None], pair.large, pair.small)


def evaluate(
    pair: PairedPredictions, escalate: np.ndarray, metric_fn: MetricFn, curve: str, threshold: float | None
) -> Point:
    escalate = np.asarray(escalate, dtype=bool)
    return Point(
        curve=curve,
        threshold=threshold,
        share=float(escalate.mean()) if len(escalate) else float("nan"),
        escalated=int(escalate.sum()),
        runtime_s=float(pair.small_latency.sum() + pair.large_latency[escalate].sum()),
        metrics=metric_fn(pair.gold, hybrid_probs(pair, escalate)),
        usd_per_1000=usd_per_1000(pair, escalate),
    )


def usd_per_1000(pair: PairedPredictions, escalate: np.ndarray) -> float | None:
    """Dollars per 1,000 reviews when the small model answers all and the large one the escalated."""
    if pair.small_cost is None or pair.large_cost is None or not len(pair):
        return None
    return float(1000 * (pair.small_cost.sum() + pair.large_cost[escalate].sum()) / len(pair))


def router_curve(
    pair: PairedPredictions, make_router: RouterFactory, thresholds: Sequence[float], metric_fn: MetricFn
) -> list[Point]:
    """The hybrid at every threshold, escalating exactly what the router would."""
    return [
        evaluate(pair, make_router(t).escalate(pair.small), metric_fn, "router", float(t)) for t in thresholds
    ]


def single_model_points(pair: PairedPredictions, metric_fn: MetricFn) -> tuple[Point, Point]:
    """Small-only (nothing escalated) and large-only (the large model alone, without the small one)."""
    n = len(pair)
    small = Point(
        "small-only", None, 0.0, 0, float(pair.small_latency.sum()), metric_fn(pair.gold, pair.small),
        usd_per_1000(pair, np.zeros(n, dtype=bool)),
    )  # fmt: skip
    large_usd = None if pair.large_cost is None or not n else float(1000 * pair.large_cost.sum() / n)
    large = Point(
        "large-only",
        None,
        1.0,
        n,
        float(pair.large_latency.sum()),
        metric_fn(pair.gold, pair.large),
        large_usd,
    )
    return small, large


def oracle_order(pair: PairedPredictions) -> np.ndarray:
    """Examples in the order a perfect router escalates them.

    First those the small model gets wrong and the large one right, then those
    both get wrong, then those both get right, and last those only the small
    model gets right (escalating them can only hurt).
    """
    small_right = predictions(pair.small) == pair.gold
    large_right = predictions(pair.large) == pair.gold
    return np.lexsort((~large_right, small_right))


def oracle_curve(pair: PairedPredictions, metric_fn: MetricFn, steps: int = 50) -> list[Point]:
    """Quality when escalating the first k examples of the oracle order, for shares 0..1.

    The point escalating exactly the reviews the small model gets wrong is always included.
    """
    n = len(pair)
    order = oracle_order(pair)
    wrong = int(np.sum(predictions(pair.small) != pair.gold))
    counts = sorted({*np.round(np.linspace(0, n, steps + 1)).astype(int).tolist(), wrong})
    points = []
    for count in counts:
        escalate = np.zeros(n, dtype=bool)
        escalate[order[:count]] = True
        points.append(evaluate(pair, escalate, metric_fn, "oracle", None))
    return points


@dataclass
class TargetResult:
    """A threshold picked on the calibration half and what it achieves on the held-out half."""

    target: str
    threshold: float
    reached: bool
    calibration: Point
    held_out: Point
    intervals: dict[str, tuple[float, float]]
    held_out_small: dict[str, float]
    held_out_large: dict[str, float]
    n_calibration: int
    n_held_out: int


def held_out_intervals(
    pair: PairedPredictions, escalate: np.ndarray, metric_fn: MetricFn, *, resamples: int, seed: int
) -> dict[str, tuple[float, float]]:
    """Bootstrap 95% intervals of the escalated share and every metric, resampling examples (or their
    clusters, where the run recorded them)."""
    k = pair.small.shape[1]
    packed = np.hstack([hybrid_probs(pair, escalate), np.asarray(escalate, dtype=np.float64)[:, None]])

    def measure(gold: np.ndarray, rows: np.ndarray) -> dict[str, float]:
        return {"share_escalated": float(rows[:, k].mean()), **metric_fn(gold, rows[:, :k])}

    return bootstrap_intervals(
        measure, pair.gold, packed, resamples=resamples, seed=seed, clusters=pair.clusters
    )


def calibrate_target(
    pair: PairedPredictions,
    calibration_half: np.ndarray,
    make_router: RouterFactory,
    metric_fn: MetricFn,
    *,
    share: float | None = None,
    metric: tuple[str, float] | None = None,
    grid: Sequence[float] = (),
    router_score: Callable[[np.ndarray], np.ndarray] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> TargetResult:
    """Pick a threshold on the calibration half for a target share or metric; measure it on the rest.

    Candidate thresholds are the sweep grid plus, when the router exposes its
    confidence score, every threshold that changes the calibration half's
    escalated share.
    """
    if (share is None) == (metric is None):
        raise HarnessError("give exactly one target: a share to escalate or a metric value to reach")
    calib, held = pair.subset(calibration_half), pair.subset(~calibration_half)
    if not len(calib) or not len(held):
        raise HarnessError("too few examples to split into calibration and held-out halves")
    candidates = (
        calibration.candidate_thresholds(router_score(calib.small), grid)
        if router_score is not None
        else np.unique(np.asarray(grid, dtype=np.float64))
    )
    points = router_curve(calib, make_router, candidates.tolist(), metric_fn)
    shares = np.asarray([p.share for p in points])
    if share is not None:
        best, reached, target = (
            calibration.pick_for_share(candidates, shares, share),
            True,
            f"share={share:g}",
        )
    else:
        name, value = metric  # type: ignore[misc]
        if name not in points[0].metrics:
            raise HarnessError(f"unknown metric {name!r}; this task reports {', '.join(points[0].metrics)}")
        values = np.asarray([p.metrics[name] for p in points])
        best, reached = calibration.pick_for_metric(shares, values, value)
        target = f"{name}>={value:g}"
    threshold = float(candidates[best])
    escalate = make_router(threshold).escalate(held.small)
    return TargetResult(
        target=target,
        threshold=threshold,
        reached=reached,
        calibration=replace(points[best], curve="calibration"),
        held_out=evaluate(held, escalate, metric_fn, "held-out", threshold),
        intervals=held_out_intervals(held, escalate, metric_fn, resamples=resamples, seed=seed),
        held_out_small=metric_fn(held.gold, held.small),
        held_out_large=metric_fn(held.gold, held.large),
        n_calibration=len(calib),
        n_held_out=len(held),
    )


@dataclass
class TemperatureResult:
    """The small model's fitted temperature and its calibration on the held-out half, before and after."""

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float


def scale_small_model(
    pair: PairedPredictions, calibration_half: np.ndarray
) -> tuple[PairedPredictions, TemperatureResult]:
    """Fit the small model's temperature on the calibration half and apply it to every example."""
    temperature = calibration.fit_temperature(pair.gold[calibration_half], pair.small[calibration_half])
    scaled = replace(pair, small=calibration.apply_temperature(pair.small, temperature))
    held = ~calibration_half
    gold = pair.gold[held]
    result = TemperatureResult(
        temperature=temperature,
        ece_before=calibration.expected_calibration_error(gold, pair.small[held]),
        ece_after=calibration.expected_calibration_error(gold, scaled.small[held]),
        nll_before=calibration.negative_log_likelihood(gold, pair.small[held]),
        nll_after=calibration.negative_log_likelihood(gold, scaled.small[held]),
    )
    return scaled, result
