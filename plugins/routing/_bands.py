"""How sure a routing curve is: bootstrap bands on the curve and intervals on its summary figures.

Every resample draws reviews (or whole clusters of reviews, where the run
recorded each review's product) once, and on that one resample measures
the small and large models alone, the hybrid at every threshold, and from
those the summary figures, so each figure's interval carries the
variation of the whole curve:

- APGR: the average share of the small-to-large quality gap recovered over
  the share escalated (RouteLLM);
- CPT(x%): the smallest share of calls to the large model that recovers x%
  of the gap (RouteLLM's call-performance threshold);
- AIQ: the area under the non-decreasing upper convex hull of quality
  against cost (RouterBench), with cost normalised as the share of
  reviews sent to the large model, so the axis runs from 0 (the small model
  alone) to 1 (the large model on every review) and AIQ is the hull's mean
  quality over that range;
- the saving at equal quality: the share of the large model's dollars the
  cheapest threshold at least as good as the large model alone does not spend.

A router decides each review from that review's own scores, so its choice at
each threshold is fixed per review and a resample only reselects reviews.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.intervals import cluster_count, percentile_interval, resample_blocks
from harness.plugins.routing import _calibration as calibration
from harness.plugins.routing._replay import PairedPredictions, hybrid_probs

# One metric on resamples: (gold [n], probs [n, k], index [r, length]) -> values [r].
ResampledMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
GAP_FRACTIONS = (0.5, 0.8)
COST_AXIS = "share of reviews sent to the large model (0: small model alone, 1: large model on every review)"


def hull_area(costs: Sequence[float], quality: Sequence[float]) -> float:
    """AIQ of one curve: the area under the non-decreasing upper convex hull of (cost, quality) over
    cost 0..1, points outside that range left out; the points must include cost 0 and cost 1."""
    points = sorted(zip(costs, quality, strict=True))
    hull: list[tuple[float, float]] = []
    for x, y in points:
        if hull and hull[-1][0] == x:  # one cost: the best quality
            if y <= hull[-1][1]:
                continue
            hull.pop()
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (y2 - y1) * (x - x1) <= (y - y1) * (x2 - x1):  # the middle point lies on or under the chord
                hull.pop()
            else:
                break
        hull.append((x, y))
    xs = np.array([x for x, _ in hull])
    ys = np.maximum.accumulate(np.array([y for _, y in hull]))  # paying more never has to cost quality
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))


def aiq(shares: Sequence[float], quality: Sequence[float], small: float, large: float) -> float:
    """AIQ of a router's curve, anchored at the small model alone (cost 0) and the large alone (cost 1)."""
    return hull_area([0.0, *shares, 1.0], [small, *quality, large])


@dataclass
class SweepBands:
    """The curve's 95% band per threshold and the 95% interval of each summary figure."""

    resamples: int
    clusters: int | None  # clusters resampled; None: reviews were resampled
    cost_axis: str
    aiq: float
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    intervals: dict[str, list[float]] = field(default_factory=dict)


def summary_figures(
    shares: np.ndarray, quality: np.ndarray, small: float, large: float, usd: np.ndarray | None,
    large_usd: float | None,
) -> dict[str, float]:  # fmt: skip
    """APGR, CPT, AIQ and the saving at equal quality of one curve (figures a curve cannot define left out)."""
    share_list, quality_list = shares.tolist(), quality.tolist()
    figures = {"aiq": aiq(share_list, quality_list, small, large)}
    recovered = calibration.apgr(share_list, quality_list, small, large)
    if recovered is not None:
        figures["apgr"] = recovered
        for fraction in GAP_FRACTIONS:
            share = calibration.share_to_recover(share_list, quality_list, small, large, fraction)
            if share is not None:
                figures[f"cpt_{fraction:.0%}"] = share
    if usd is not None and large_usd:
        reaching = usd[quality >= large - 1e-12]
        if len(reaching):
            figures["saving"] = 1.0 - float(reaching.min()) / large_usd
    return figures


def sweep_bands(
    pair: PairedPredictions,
    escalations: Sequence[np.ndarray],
    metric: ResampledMetric,
    *,
    resamples: int,
    seed: int,
) -> SweepBands | None:
    """Bands and intervals from `resamples` resamples; `escalations[t]` is the router's mask at threshold t."""
    n = len(pair)
    units = cluster_count(pair.clusters, n)
    if resamples < 1 or units < 2:
        return None
    masks = np.stack([np.asarray(m, dtype=bool) for m in escalations])  # [thresholds, n]
    hybrids = [hybrid_probs(pair, mask) for mask in masks]
    priced = pair.small_cost is not None and pair.large_cost is not None
    per_review = masks * pair.large_cost + pair.small_cost if priced else None  # type: ignore[operator]
    curves, figures = [], []
    for index in resample_blocks(n, resamples, seed, pair.clusters):
        small, large = metric(pair.gold, pair.small, index), metric(pair.gold, pair.large, index)
        quality = np.stack([metric(pair.gold, probs, index) for probs in hybrids], axis=1)  # [r, thresholds]
        shares = masks[:, index].mean(axis=2).T
        usd = None if per_review is None else 1000 * per_review[:, index].mean(axis=2).T
        large_usd = None if not priced else 1000 * pair.large_cost[index].mean(axis=1)  # type: ignore[index]
        curves.append(quality)
        for r in range(len(index)):
            figures.append(summary_figures(shares[r], quality[r], small[r], large[r],
                                           None if usd is None else usd[r],
                                           None if large_usd is None else float(large_usd[r])))  # fmt: skip
    band = np.concatenate(curves)
    whole = np.arange(n)[None]
    point = summary_figures(
        masks.mean(axis=1), np.array([metric(pair.gold, probs, whole)[0] for probs in hybrids]),
        metric(pair.gold, pair.small, whole)[0], metric(pair.gold, pair.large, whole)[0], None, None,
    )  # fmt: skip
    names = dict.fromkeys(name for f in figures for name in f)
    intervals = {
        name: list(percentile_interval(np.array([f.get(name, np.nan) for f in figures]))) for name in names
    }
    return SweepBands(
        resamples=resamples,
        clusters=None if pair.clusters is None else units,
        cost_axis=COST_AXIS,
        aiq=point["aiq"],
        low=np.nanpercentile(band, 2.5, axis=0).tolist(),
        high=np.nanpercentile(band, 97.5, axis=0).tolist(),
        intervals=intervals,
    )
