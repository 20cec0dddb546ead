"""Bands on routing curves: AIQ against a hull drawn by hand, and intervals that widen with clustering."""

from __future__ import annotations

import numpy as np
import pytest

from harness.plugins.routing._bands import aiq, hull_area, sweep_bands
from harness.plugins.routing._replay import PairedPredictions


def test_aiq_is_the_area_under_the_non_decreasing_upper_hull_computed_by_hand() -> None:
    # (0.1, 0.81) and (0.4, 0.85) lie under the hull; past (0.5, 0.90) paying more loses quality,
    # so the hull stays at 0.90: 0.2 * 0.84 + 0.3 * 0.89 + 0.5 * 0.90 = 0.885
    costs = [0.0, 0.1, 0.2, 0.4, 0.5, 1.0]
    quality = [0.80, 0.81, 0.88, 0.85, 0.90, 0.89]
    assert hull_area(costs, quality) == pytest.approx(0.885)
    assert aiq([0.1, 0.2, 0.4, 0.5], quality[1:5], 0.80, 0.89) == pytest.approx(0.885)
    assert aiq([], [], 0.7, 0.9) == pytest.approx(0.8)  # the straight line between the two models
    assert aiq([0.5, 0.5], [0.6, 0.95], 0.7, 0.9) == pytest.approx(0.25 * 1.65 + 0.5 * 0.95)


def clustered_pair(seed: int, clusters: int, size: int, spread: float, keys: bool) -> PairedPredictions:
    """A small model whose accuracy varies by cluster (sd `spread`) and a large model right on 95%."""
    rng = np.random.default_rng(seed)
    n = clusters * size
    gold = rng.integers(0, 2, n)
    rate = np.clip(0.75 + spread * np.repeat(rng.standard_normal(clusters), size), 0.05, 0.99)
    small_right = rng.random(n) < rate
    confidence = np.where(small_right, rng.uniform(0.6, 1.0, n), rng.uniform(0.5, 0.8, n))
    small_pos = np.where((gold == 1) == small_right, confidence, 1 - confidence)
    large_pos = np.where((gold == 1) == (rng.random(n) < 0.95), 0.9, 0.1)
    return PairedPredictions(
        ids=[str(i) for i in range(n)], gold=gold, small=np.column_stack([1 - small_pos, small_pos]),
        large=np.column_stack([1 - large_pos, large_pos]), small_latency=np.ones(n), large_latency=np.ones(n),
        clusters=np.repeat(np.arange(clusters), size) if keys else None,
    )  # fmt: skip


def accuracy(gold: np.ndarray, probs: np.ndarray, index: np.ndarray) -> np.ndarray:
    return (probs[index].argmax(axis=2) == gold[index]).mean(axis=1)


def masks(pair: PairedPredictions) -> list[np.ndarray]:
    return [pair.small.max(axis=1) < t for t in np.linspace(0.5, 1.0, 21)]


def test_bands_hold_the_curve_and_clustered_intervals_are_wider() -> None:
    clustered = clustered_pair(1, 40, 15, 0.25, keys=True)
    bands = sweep_bands(clustered, masks(clustered), accuracy, resamples=300, seed=0)
    assert bands is not None and bands.clusters == 40
    curve = [accuracy(clustered.gold, np.where(m[:, None], clustered.large, clustered.small), np.arange(600)[None])[0]
             for m in masks(clustered)]  # fmt: skip
    assert all(lo <= q <= hi for lo, q, hi in zip(bands.low, curve, bands.high, strict=True))
    assert set(bands.intervals) >= {"apgr", "cpt_50%", "cpt_80%", "aiq"}
    low, high = bands.intervals["aiq"]
    assert low <= bands.aiq <= high
    flat = sweep_bands(
        clustered_pair(1, 40, 15, 0.25, keys=False), masks(clustered), accuracy, resamples=300, seed=0
    )
    assert flat is not None and flat.clusters is None
    # at the first threshold nothing is escalated: the small model alone, whose accuracy varies by cluster
    assert bands.high[0] - bands.low[0] > 1.4 * (flat.high[0] - flat.low[0])
    aiq_width = [b.intervals["aiq"][1] - b.intervals["aiq"][0] for b in (bands, flat)]
    assert aiq_width[0] > 1.1 * aiq_width[1]
    assert sweep_bands(clustered, masks(clustered), accuracy, resamples=0, seed=0) is None
