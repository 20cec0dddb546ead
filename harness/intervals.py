"""Bootstrap confidence intervals for any task's metrics, so a leaderboard shows its uncertainty."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], dict[str, float]]


def bootstrap_intervals(
    metric_fn: MetricFn, gold: np.ndarray, probs: np.ndarray, *, resamples: int = 1000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of every metric over resampled examples (with replacement)."""
    n = len(gold)
    if n < 2 or resamples < 1:
        return {}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(resamples):
        index = rng.integers(0, n, size=n)
        for name, value in metric_fn(gold[index], probs[index]).items():
            samples.setdefault(name, []).append(value)
    return {
        name: (float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5)))
        for name, values in samples.items()
    }
