"""Whether the data could have separated two rows whose intervals overlap.

Overlapping intervals say the data did not separate two rows, not whether it
could have. The rows' paired predictions answer that: from the share of
reviews exactly one of them got right and the design effect of their
difference (clusters, and seeds in a multi-seed run), `harness.power` gives
the smallest accuracy difference those reviews detect at 80% power and 5%
significance, and how many reviews the observed difference would need. The
measure is accuracy (top-1 on the category task) because that is what
McNemar's test, the one the power formula is for, compares; the headline
metric decides only which intervals overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from harness.power import reviews_needed

if TYPE_CHECKING:
    from harness.leaderboard._findings import Difference
    from harness.leaderboard._table import Entry

SHOWN_PAIRS = 3  # pairs of the top row named in the sentence; results.json keeps them all


@dataclass
class Reach:
    """What two rows' paired predictions could detect, on the accuracy of the reviews both scored."""

    n: int  # paired reviews, over all seeds of a multi-seed run
    seeds: int
    accuracy_first: float
    accuracy_second: float
    disagreement: float  # share of the paired reviews exactly one row got right
    design_effect: float | None  # of the accuracy difference: clusters and seeds against independent reviews
    min_detectable: float | None  # accuracy difference detectable at 80% power, 5% two-sided

    @property
    def observed(self) -> float:
        return abs(self.accuracy_first - self.accuracy_second)

    @property
    def separable(self) -> bool:
        """Whether the observed difference is one these reviews detect with 80% power."""
        return self.min_detectable is not None and self.observed >= self.min_detectable

    def reviews_needed(self) -> int | None:
        """Reviews (over all seeds) that detect the observed difference with 80% power at this
        disagreement and design effect; None where no number would (equal accuracies)."""
        if self.design_effect is None or self.observed == 0:
            return None
        try:
            return reviews_needed(self.observed, self.disagreement, design_effect=self.design_effect)
        except ValueError:  # every disagreement goes one way: the formula's bound, past any useful answer
            return None


def interval(entry: Entry, metric: str) -> tuple[float, float] | None:
    found = (entry.row.get("intervals") or {}).get(metric)
    if not found or len(found) != 2 or None in found:
        return None
    return float(found[0]), float(found[1])


def overlapping_pairs(ranked: Sequence[Entry], metric: str) -> list[tuple[Entry, Entry]]:
    """Every pair of rows whose intervals of `metric` overlap, the better-ranked row first."""
    pairs = []
    for i, first in enumerate(ranked):
        for second in ranked[i + 1 :]:
            a, b = interval(first, metric), interval(second, metric)
            if a is not None and b is not None and a[0] <= b[1] and b[0] <= a[1]:
                pairs.append((first, second))
    return pairs


def overlap_record(first: Entry, second: Entry, metric: str, difference: Difference) -> dict[str, Any] | None:
    """The figures of one overlapping pair for results.json; None without paired predictions."""
    reach = difference.reach
    if reach is None:
        return None
    return {
        "first": first.label,
        "second": second.label,
        "first_model": first.model,
        "second_model": second.model,
        "values": [float(first.row["metrics"][metric]), float(second.row["metrics"][metric])],
        "intervals": [interval(first, metric), interval(second, metric)],
        **asdict(reach),
        "paired_verdict": difference.verdict,
        "separable": reach.separable,
        "reviews_needed": reach.reviews_needed(),
    }


def about(count: int) -> str:
    """A count to two significant figures: the formula's answer is no more precise than its inputs."""
    return f"{round(count, 2 - len(str(count))) if count >= 100 else count:,}"


def pair_clause(record: dict[str, Any]) -> str:
    seeds = f" over {record['seeds']} seeds" if record["seeds"] > 1 else ""
    sample = f"these {record['n']:,} reviews{seeds}"
    accuracies = f"{record['accuracy_first']:.3f} vs {record['accuracy_second']:.3f}"
    pair = f"{record['first']} and {record['second']}, {accuracies}"
    detectable = record["min_detectable"]
    if record["separable"]:
        return f"{pair}, at least the {detectable:.3f} {sample} detect reliably"
    if detectable is None:
        return f"{pair}, closer than anything {sample} detect reliably"
    needed = record["reviews_needed"]
    more = f" (about {about(needed)}{seeds} would be needed)" if needed is not None else ""
    return f"{pair}, below the {detectable:.3f} {sample} detect reliably{more}"


def reach_sentence(header: str, top_model: str, records: Sequence[dict[str, Any]]) -> str | None:
    """One sentence on the overlapping pairs that their paired interval does not separate: a few named,
    the top row's first, the rest counted. A pair the paired interval separates is left out: the data
    did tell it apart, whatever a power calculation says of a difference its size."""
    records = [r for r in records if r.get("paired_verdict") == "not separated"]
    if not records:
        return None
    ordered = sorted(records, key=lambda r: r["first_model"] != top_model)  # stable: ranked order kept
    named, rest = ordered[:SHOWN_PAIRS], ordered[SHOWN_PAIRS:]
    parts = [pair_clause(r) for r in named]
    if rest:
        close = sum(not r["separable"] for r in rest)
        one = len(rest) == 1
        verb = "is" if close == 1 else "are"
        parts.append(
            f"of {len(rest)} more overlapping pair{'' if one else 's'}, {close} {verb} below what "
            f"{'its' if one else 'their'} reviews detect reliably (listed in the JSON findings)"
        )
    opening = (
        f"Overlapping {header} intervals no paired interval separates, against the accuracy difference "
        "their reviews detect with 80% power at 5% significance"
    )
    return f"{opening}: {'; '.join(parts)}."
