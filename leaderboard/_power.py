"""`harness power`: how many reviews (and clusters) a paired accuracy comparison needs before it is run.

The answer rests on two figures a pilot run measures best: how often two
models disagree on correctness, and the design effect of the reviews'
clusters. Without a pilot, errors are taken as independent and reviews as
unclustered, and the answer says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from harness import HarnessError
from harness.leaderboard._compare import compare_records
from harness.leaderboard._predictions import group_predictions, iter_predictions
from harness.power import independent_disagreement, reviews_needed


@dataclass
class Pilot:
    """What a pilot run measured of two of its rows on one task."""

    where: str
    n: int
    disagreement: float
    design_effect: float | None
    clusters: int | None


def read_pilot(run_dir: Path, task: str | None, models: tuple[str, ...]) -> Pilot:
    """The disagreement rate and design effect of two models of one run (the run's only two, by default)."""
    groups = group_predictions(iter_predictions(run_dir, task=task))
    if models:
        keys = [key for key in groups if key[1] in models]
        wanted = f"models {', '.join(models)}"
    else:
        keys, wanted = list(groups), "two models"
    tasks = {key[0] for key in keys}
    if len(keys) != 2 or len(tasks) != 1:
        found = ", ".join(f"{t}·{m}" for t, m in groups) or "no predictions"
        raise HarnessError(
            f"{run_dir}: a pilot needs {wanted} on one task (give --task and --models A,B); it has {found}"
        )
    (name, model_a), (_, model_b) = keys
    c = compare_records(name, model_a, groups[keys[0]], groups[keys[1]], show=0)
    where = f"{run_dir}: {model_a} and {model_b} on {name}, {c.n} reviews"
    return Pilot(where, c.n, (c.only_a_right + c.only_b_right) / c.n, c.design_effect, c.clusters)


def plan_comparison(
    baseline: float,
    difference: float,
    *,
    pilot: Pilot | None = None,
    disagreement: float | None = None,
    design_effect: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> str:
    """The planning answer as lines of text: the figures used, where each came from, and the reviews needed."""
    if disagreement is not None:
        rate, rate_from = disagreement, "given"
    elif pilot is not None:
        rate, rate_from = pilot.disagreement, f"measured in {pilot.where}"
    else:
        rate = independent_disagreement(baseline, difference)
        rate_from = "assumed: the two models' errors independent (give --from RUN to measure it)"
    if design_effect is not None:
        effect, effect_from = design_effect, "given"
    elif pilot is not None and pilot.clusters is not None and pilot.design_effect is not None:
        effect, effect_from = pilot.design_effect, f"measured over the pilot's {pilot.clusters} clusters"
    else:
        effect = 1.0
        effect_from = "reviews independent" + (
            "" if pilot is not None else " (give --from RUN to measure it)"
        )
    try:
        n = reviews_needed(difference, rate, design_effect=effect, alpha=alpha, power=power)
    except ValueError as error:
        raise HarnessError(str(error)) from None
    lines = [
        f"accuracy {baseline:.3f} against {baseline + difference:.3f} (difference {difference:+.3f}), "
        f"{power:.0%} power, {alpha:g} two-sided, paired on the same reviews (McNemar):",
        f"  disagreement rate {rate:.1%} ({rate_from})",
        f"  design effect {effect:.2f} ({effect_from})",
        f"  reviews needed: {n:,}",
    ]
    if pilot is not None and pilot.clusters:
        size = pilot.n / pilot.clusters
        lines.append(
            f"  clusters needed: {math.ceil(n / size):,} (at the pilot's {size:.2f} reviews per cluster)"
        )
    return "\n".join(lines) + "\n"
