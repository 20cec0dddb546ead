"""What a board found, in at most four sentences per task, from the numbers the harness already computes.

The best row and whether the paired interval separates it from the next;
what each hybrid gains against its small model and gives up against its
large one; which rows the quality-runtime Pareto front dominates; for rows
whose intervals overlap, whether their reviews could have told them apart
(`_reach`). Paired differences come from `harness compare`'s own code
(`_compare`), on the predictions the run wrote, so the board and `harness
compare` cannot disagree; a difference is called a gain or a loss only when
its 95% interval excludes zero. Rows without predictions (a study's reported
figures, a bare export) get no paired claims.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness import HarnessError
from harness.leaderboard._reach import Reach, overlap_record, overlapping_pairs, reach_sentence
from harness.leaderboard._table import (
    REPORTED,
    Entry,
    Row,
    cost_per_1000,
    headline_metric,
    higher_is_better,
    metric_columns,
    ranked_entries,
)

RESAMPLES = 1000  # as `harness compare`, with its default seed, so both give the same interval
SEED = 0
# The headline metrics a paired comparison of predictions recomputes (`_compare.paired_metrics`);
# top-1 is the accuracy of the top label. Other metrics get no paired interval.
PAIRED_NAME = {"macro_f1": "macro_f1", "accuracy": "accuracy", "top1": "accuracy"}
SINGLE_INTERVAL = "paired bootstrap 95% over the reviews both rows scored"
DOMINATED_PREFIX = "dominated by "


@dataclass
class Difference:
    """`first` minus `second` on the headline metric, with its paired 95% interval (None: not computed)."""

    first: str
    second: str
    diff: float
    low: float | None = None
    high: float | None = None
    interval: str | None = None
    mcnemar_p: float | None = None
    reach: Reach | None = None  # what the paired predictions could detect; None without them

    @property
    def verdict(self) -> str:
        """`gain`, `loss`, `not separated`, or `no paired interval`: only what the interval supports."""
        if self.low is None or self.high is None:
            return "no paired interval"
        if self.low > 0:
            return "gain"
        if self.high < 0:
            return "loss"
        return "not separated"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


@dataclass
class Findings:
    """One task's sentences, and the figures behind them for other tools (results.json `findings`)."""

    task: str
    metric: str
    metric_header: str
    sentences: list[str] = field(default_factory=list)
    best: dict[str, Any] | None = None
    hybrids: list[dict[str, Any]] = field(default_factory=list)
    dominated: list[dict[str, str]] = field(default_factory=list)
    overlaps: list[dict[str, Any]] = field(default_factory=list)  # pairs whose intervals overlap (`_reach`)
    # What the reviews could detect for the overlapping pairs no paired interval separates: a note shown
    # after the sentences, which stay the three a reader decides on
    reach: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Grouped = dict[tuple[str, str], list[dict[str, Any]]]


class RunPredictions:
    """Each run's predictions, read once per board: (seeds, one grouping by (task, model) per seed).

    A single-seed run has no seeds and one grouping; a run without predictions gives None.
    """

    def __init__(self) -> None:
        self._runs: dict[str, tuple[list[int], list[Grouped]] | None] = {}
        self.differences: dict[tuple[str, ...], Difference] = {}  # a pair compared twice is drawn once

    def load(self, run: str) -> tuple[list[int], list[Grouped]] | None:
        if run not in self._runs:
            from harness.leaderboard._compare import seed_runs
            from harness.leaderboard._predictions import group_predictions, iter_predictions

            try:
                found = seed_runs(Path(run)) or {}
                dirs = [found[s] for s in sorted(found)] or [Path(run)]
                self._runs[run] = (sorted(found), [group_predictions(iter_predictions(d)) for d in dirs])
            except HarnessError:
                self._runs[run] = None
        return self._runs[run]


def paired_difference(
    task: str, first: Entry, second: Entry, metric: str, predictions: RunPredictions
) -> Difference:
    """`first` minus `second` on the reviews both scored, with `harness compare`'s interval where it applies."""
    key = (str(first.row.get("run")), str(second.row.get("run")), task, first.model, second.model, metric)
    if key not in predictions.differences:
        predictions.differences[key] = measured_difference(task, first, second, metric, predictions)
    return predictions.differences[key]


def measured_difference(
    task: str, first: Entry, second: Entry, metric: str, predictions: RunPredictions
) -> Difference:
    value_first = float(first.row["metrics"][metric])
    value_second = float(second.row["metrics"][metric])
    plain = Difference(first.label, second.label, value_first - value_second)
    run, name = first.row.get("run"), PAIRED_NAME.get(metric)
    if name is None or not run or run != second.row.get("run"):
        return plain
    loaded = predictions.load(str(run))
    keys = ((task, first.model), (task, second.model))
    if loaded is None or not all(key in g for g in loaded[1] for key in keys):
        return plain
    seeds, groups = loaded
    from harness.leaderboard._compare import compare_records, pool_seeds

    try:
        if len(groups) == 1:
            compared = compare_records(task, first.model, groups[0][keys[1]], groups[0][keys[0]],
                                       resamples=RESAMPLES, seed=SEED, show=0)  # fmt: skip
            found = next((m for m in compared.metrics if m.name == name), None)
            accuracy = next(m for m in compared.metrics if m.name == "accuracy")
            disagreement = (compared.only_a_right + compared.only_b_right) / compared.n
            reach = Reach(compared.n, 1, accuracy.b, accuracy.a, disagreement, compared.design_effect,
                          compared.min_detectable)  # fmt: skip
            if found is None:
                return Difference(first.label, second.label, plain.diff, reach=reach)
            return Difference(first.label, second.label, found.diff, found.low, found.high,
                              SINGLE_INTERVAL, compared.p_value, reach)  # fmt: skip
        pooled = pool_seeds((task, first.model), seeds, [(g[keys[1]], g[keys[0]]) for g in groups],
                            resamples=RESAMPLES, seed=SEED)  # fmt: skip
    except HarnessError:  # the two rows scored no review in common, or disagree on a gold label
        return plain
    seed_accuracy = next(m for m in pooled.metrics if m.name == "accuracy")
    reach = Reach(sum(pooled.n), len(seeds), seed_accuracy.b, seed_accuracy.a, pooled.disagreement,
                  pooled.design_effect, pooled.min_detectable)  # fmt: skip
    seed_diff = next((m for m in pooled.metrics if m.name == name), None)
    if seed_diff is None:
        return Difference(first.label, second.label, plain.diff, reach=reach)
    return Difference(first.label, second.label, seed_diff.diff, seed_diff.low, seed_diff.high,
                      pooled.interval, reach=reach)  # fmt: skip


def signed(value: float) -> str:
    return f"{value:+.3f}"


def with_interval(difference: Difference) -> str:
    if difference.low is None or difference.high is None:
        return signed(difference.diff)
    return f"{signed(difference.diff)} [{signed(difference.low)}, {signed(difference.high)}]"


def best_sentence(header: str, ranked: Sequence[Entry], metric: str, difference: Difference | None) -> str:
    best = ranked[0]
    value = f"{float(best.row['metrics'][metric]):.3f}"
    if difference is None:
        return f"{best.label} is the only row scored on {header} ({value})."
    runner_up = difference.second
    if difference.verdict == "no paired interval":
        return (f"Best on {header}: {best.label} ({value}), {signed(difference.diff)} ahead of {runner_up}; "
                "without paired predictions no separation is claimed.")  # fmt: skip
    if difference.verdict == "gain":
        return (f"Best on {header}: {best.label} ({value}), ahead of {runner_up} by {with_interval(difference)} "
                "(paired 95% interval), a lead the data support.")  # fmt: skip
    if difference.verdict == "loss":  # rows that scored different reviews: the shared ones reverse the order
        return (f"Best on {header}: {best.label} ({value}), yet behind {runner_up} on the reviews both scored: "
                f"the paired difference is {with_interval(difference)}.")  # fmt: skip
    bound = f", so a lead above {difference.high:.3f} is ruled out" if (difference.high or 0) > 0 else ""
    return (f"Best on {header}: {best.label} ({value}), but not separated from {runner_up}: the paired "
            f"difference is {with_interval(difference)}{bound}.")  # fmt: skip


def hybrid_parts(entry: Entry, entries: Sequence[Entry]) -> tuple[Entry, Entry] | None:
    """The rows of a hybrid's small and large models on the same board, when both are there."""
    from harness.plugins.models.hybrid import parse_hybrid

    spec = entry.model
    if not spec.startswith("hybrid:"):
        return None
    try:
        small, large, _ = parse_hybrid(spec.removeprefix("hybrid:"))
    except HarnessError:
        return None
    found = {e.model: e for e in entries if e is not entry}
    return (found[small], found[large]) if small in found and large in found else None


def price_or_speed(entry: Entry, priced: bool) -> str:
    if priced:
        return f"${cost_per_1000(entry):.3g}"
    speed = entry.row.get("reviews_per_s")
    return "?" if speed is None else f"{float(speed):.0f} reviews/s"


def hybrid_clause(
    header: str, hybrid: Entry, small: Entry, large: Entry, gain: Difference, loss: Difference
) -> str:
    share = (hybrid.row.get("extra") or {}).get("escalated_share")
    sends = f"sends {100 * share:.1f}% of reviews to {large.label}" if share is not None else "escalates"
    priced = all(cost_per_1000(e) is not None for e in (hybrid, small, large))
    at = (f"at {price_or_speed(hybrid, priced)}{' per 1,000 reviews' if priced else ''} against "
          f"{price_or_speed(small, priced)} and {price_or_speed(large, priced)}")  # fmt: skip
    return (f"{hybrid.label} {sends}: {header} {with_interval(gain)} against {small.label} alone "
            f"({gain.verdict}) and {with_interval(loss)} against {large.label} alone ({loss.verdict}), "
            f"{at}")  # fmt: skip


def dominated_sentence(header: str, dominated: Sequence[Entry]) -> str:
    if not dominated:
        return f"No row is dominated on {header} and runtime."
    pairs = [f"{e.label} by {e.pareto.removeprefix(DOMINATED_PREFIX)}" for e in dominated]
    return f"On the point estimates of {header} and runtime, dominated: {'; '.join(pairs)}."


def task_findings(
    task: str, rows: Sequence[Row], predictions: RunPredictions | None = None
) -> Findings | None:
    """The task's sentences: best row, hybrids, dominated rows (None when no row has the main metric)."""
    predictions = predictions or RunPredictions()
    metric = headline_metric(task, rows)
    if metric is None:
        return None
    header = dict(metric_columns(task, rows)).get(metric, metric)
    entries = [
        e
        for e in ranked_entries(task, rows)
        if e.row.get("status", "ok") == "ok" and e.row.get("status") != REPORTED
        and (e.row.get("metrics") or {}).get(metric) is not None
    ]  # fmt: skip
    if not entries:
        return None
    sign = 1 if higher_is_better(metric, rows) else -1
    ranked = sorted(entries, key=lambda e: -sign * float(e.row["metrics"][metric]))
    findings = Findings(task, metric, header)
    difference = (
        paired_difference(task, ranked[0], ranked[1], metric, predictions) if len(ranked) > 1 else None
    )
    findings.sentences.append(best_sentence(header, ranked, metric, difference))
    findings.best = {
        "label": ranked[0].label,
        "model": ranked[0].model,
        "value": float(ranked[0].row["metrics"][metric]),
        "against_next": difference.as_dict() if difference else None,
    }
    clauses = []
    for entry in entries:
        parts = hybrid_parts(entry, entries)
        if parts is None:
            continue
        small, large = parts
        gain = paired_difference(task, entry, small, metric, predictions)
        loss = paired_difference(task, entry, large, metric, predictions)
        clauses.append(hybrid_clause(header, entry, small, large, gain, loss))
        findings.hybrids.append({
            "label": entry.label, "model": entry.model, "small": small.label, "large": large.label,
            "escalated_share": (entry.row.get("extra") or {}).get("escalated_share"),
            "usd_per_1000": {"hybrid": cost_per_1000(entry), "small": cost_per_1000(small),
                             "large": cost_per_1000(large)},
            "against_small": gain.as_dict(), "against_large": loss.as_dict(),
        })  # fmt: skip
    if clauses:
        findings.sentences.append("; ".join(clauses) + ".")
    dominated = [e for e in ranked if e.pareto.startswith(DOMINATED_PREFIX)]
    if any(e.pareto for e in entries):
        findings.sentences.append(dominated_sentence(header, dominated))
        findings.dominated = [
            {"label": e.label, "model": e.model, "by": e.pareto.removeprefix(DOMINATED_PREFIX)}
            for e in dominated
        ]
    for first, second in overlapping_pairs(ranked, metric):
        record = overlap_record(
            first, second, metric, paired_difference(task, first, second, metric, predictions)
        )
        if record is not None:
            findings.overlaps.append(record)
    findings.reach = reach_sentence(header, ranked[0].model, findings.overlaps)
    return findings


def stored_findings(rows: Sequence[Mapping[str, Any]]) -> list[Findings] | None:
    """The findings results.json holds when the rows are exactly one run's rows, so a board shown again
    does not draw its bootstraps again."""
    from harness.results import read_results

    runs = {r.get("run") for r in rows}
    if len(runs) != 1 or None in runs:
        return None
    try:
        results = read_results(Path(str(runs.pop())))
    except HarnessError:
        return None
    stored = results.get("findings")
    if not isinstance(stored, list) or len(results["rows"]) != len(rows):
        return None
    names = {f.name for f in fields(Findings)}
    if not all(isinstance(found, dict) and set(found) == names for found in stored):
        return None  # written by another version of the harness: computed afresh
    return [Findings(**found) for found in stored]


def board_findings(rows: Sequence[Mapping[str, Any]], *, stored: bool = True) -> list[Findings]:
    """Every task's findings, in the order tasks first appear: those stored for the run when there are
    (`stored`), else computed, reading each run's predictions once."""
    if stored and (kept := stored_findings(rows)) is not None:
        return kept
    predictions = RunPredictions()
    tasks = list(dict.fromkeys(str(r.get("task")) for r in rows))
    found = [task_findings(t, [r for r in rows if str(r.get("task")) == t], predictions) for t in tasks]
    return [f for f in found if f is not None]
