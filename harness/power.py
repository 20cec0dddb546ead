"""How small a paired accuracy difference a comparison can see, and how many reviews it needs to see one.

Two models scored on the same reviews differ only where exactly one of them is
right: with a share `p` of such reviews (the disagreement rate) and a true
difference `d` in accuracy, McNemar's test at level alpha (two-sided) reaches
power 1 - beta on

    n = deff^2 * (z_{alpha/2} sqrt(p) + z_beta sqrt(p - d^2))^2 / d^2

reviews (Connor, 1987), where deff is the design effect of the difference:
the clustered over the unclustered standard error where reviews come in
clusters (reviews of one product), 1 where they are independent. The minimum
detectable difference of a comparison of n reviews is the `d` that solves the
same equation. Without a pilot run the disagreement rate is taken as that of
two models whose errors are independent, which is the most they disagree
for their accuracies short of anti-correlated errors, and so errs towards more reviews.
"""

from __future__ import annotations

import math
from statistics import NormalDist

ALPHA = 0.05
POWER = 0.8


def _z(alpha: float, power: float) -> tuple[float, float]:
    normal = NormalDist()
    return normal.inv_cdf(1 - alpha / 2), normal.inv_cdf(power)


def _reviews(d: float, disagreement: float, design_effect: float, z_alpha: float, z_power: float) -> float:
    """Connor's sample size, unrounded, times the design effect squared."""
    spread = z_alpha * math.sqrt(disagreement) + z_power * math.sqrt(max(0.0, disagreement - d * d))
    return design_effect**2 * spread**2 / (d * d)


def reviews_needed(
    difference: float, disagreement: float, *, design_effect: float = 1.0, alpha: float = ALPHA,
    power: float = POWER,
) -> int:  # fmt: skip
    """Reviews a paired comparison needs to detect `difference` in accuracy with the given power."""
    d = abs(difference)
    if d <= 0:
        raise ValueError("the difference to detect must be non-zero")
    if not d < disagreement <= 1:
        raise ValueError(
            f"a difference of {d:g} needs a disagreement rate above it (models differ only where they "
            f"disagree); got {disagreement:g}"
        )
    return math.ceil(_reviews(d, disagreement, design_effect, *_z(alpha, power)))


def min_detectable_difference(
    n: int, disagreement: float, *, design_effect: float = 1.0, alpha: float = ALPHA, power: float = POWER
) -> float | None:
    """The smallest accuracy difference that `n` paired reviews detect with the given power; None when the
    models never disagree (nothing then measures how they would)."""
    if n < 1 or disagreement <= 0:
        return None
    z_alpha, z_power = _z(alpha, power)

    def needed(d: float) -> float:
        return _reviews(d, disagreement, design_effect, z_alpha, z_power)

    low, high = 0.0, math.sqrt(disagreement)  # needed() falls from infinity to its least at sqrt(p)
    if needed(high) > n:
        return None  # no difference this disagreement allows is detectable on n reviews
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if needed(middle) > n else (low, middle)
    return high


def independent_disagreement(baseline: float, difference: float) -> float:
    """The share of reviews exactly one of two models gets right when their errors are independent."""
    other = baseline + difference
    if not (0 < baseline < 1 and 0 < other < 1):
        raise ValueError(f"accuracies must lie strictly between 0 and 1; got {baseline:g} and {other:g}")
    return baseline * (1 - other) + other * (1 - baseline)
