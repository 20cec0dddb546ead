"""The leaderboard as data: one table per task, built once and drawn by every format.

Every exporter (terminal, text, Markdown, CSV, HTML) renders the same `Table`
objects, so the formats cannot drift apart: the same columns, the same best
values, the same Pareto marks and the same summary lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Row = Mapping[str, Any]

# (metric key, header) per task, in the study's order; other tasks show every metric they report.
TASK_METRICS: dict[str, tuple[tuple[str, str], ...]] = {
    "polarity": (
        ("macro_f1", "macro-F1"),
        ("accuracy", "Acc total"),
        ("accuracy_pos", "Acc pos"),
        ("accuracy_neg", "Acc neg"),
    ),
    "category": (("top1", "top-1"), ("top2", "top-2"), ("top3", "top-3"), ("map", "mAP")),
}
HEADLINE = {"polarity": "macro_f1", "category": "top1"}
LOWER_IS_BETTER = {"ece"}
DEVICE_HEADERS = {"cpu": "CPU runtime (s)", "gpu": "GPU runtime (s)"}
# The headline metric over the seeds of a multi-seed run, beside its mean ± combined interval.
SEED_COLUMNS = (("seed_sd", "seed sd"), ("seed_range", "seed min-max"), ("seed_reviews", "± reviews"))
IN_TRAINING_MARK = "†"
IN_TRAINING_NOTE = (
    f"{IN_TRAINING_MARK} the task's data is in the model's training mixture: in-domain, not zero-shot"
)
REPORTED = "reported"
CLUSTER_MARK = "‡"


@dataclass
class Cell:
    """One rendered value; `value` keeps the number so formats can sort and highlight."""

    text: str
    value: float | None = None
    best: bool = False


@dataclass
class Column:
    key: str
    header: str
    higher_is_better: bool | None = None  # None: never highlighted


@dataclass
class Entry:
    """One model on one task, merged over the runs given (a CPU run and a GPU run of the same model)."""

    task: str
    model: str
    label: str
    row: Row
    runtimes: dict[str, float] = field(default_factory=dict)
    pareto: str = ""
    pareto_cost: str = ""


@dataclass
class Table:
    task: str
    columns: list[Column]
    rows: list[list[Cell]]
    labels: list[str]
    summary: str
    errors: list[str]
    headline: str | None = None  # the task's main metric, the column views sort by and always keep


def device_kind(row: Row) -> str:
    """`cuda`/`mps` runs count as GPU; everything else, including rows without a backend, as CPU."""
    device = str((row.get("backend") or {}).get("device", "cpu")).lower()
    return "gpu" if device.startswith(("cuda", "mps", "gpu")) else "cpu"


def merge_runs(rows: Sequence[Row]) -> list[Entry]:
    """Group rows by (task, model): one entry per model with a runtime per device kind.

    A second run of the same model on the same kind of device becomes its own
    entry (labelled with its run), so no measurement is silently overwritten.
    """
    entries: list[Entry] = []
    index: dict[tuple[str, str], list[Entry]] = {}
    for row in rows:
        key = (str(row.get("task")), str(row.get("model")))
        if row.get("status") == REPORTED:  # a study's figures: their own entry, with the runtimes it gave
            entries.append(
                Entry(key[0], key[1], model_label(row), row, dict(row.get("reported_runtimes") or {}))
            )
            continue
        kind = device_kind(row)
        ok = row.get("status", "ok") == "ok"
        target = next((e for e in index.get(key, []) if ok and e.row.get("status", "ok") == "ok"
                       and kind not in e.runtimes), None)  # fmt: skip
        if target is None:
            label = model_label(row)
            if index.get(key):
                label = f"{label} [{row.get('run', len(index[key]))}]"
            target = Entry(task=key[0], model=key[1], label=label, row=row)
            index.setdefault(key, []).append(target)
            entries.append(target)
        if ok and row.get("runtime_s") is not None:
            target.runtimes[kind] = float(row["runtime_s"])
    return entries


def added_metrics(rows: Sequence[Row]) -> dict[str, bool]:
    """The metrics rows report beyond their task's own (`--metric`), with whether higher is better."""
    added: dict[str, bool] = {}
    for row in rows:
        for metric in row.get("added_metrics") or []:
            added.setdefault(str(metric["name"]), bool(metric.get("higher_is_better", True)))
    return added


def metric_columns(task: str, rows: Sequence[Row]) -> list[tuple[str, str]]:
    """The task's columns (the study's, or every metric its rows report), then the added metrics."""
    names: dict[str, None] = {}
    if task not in TASK_METRICS:
        for row in rows:
            names.update(dict.fromkeys(row.get("metrics") or {}))
    columns = list(TASK_METRICS.get(task, ())) + [(name, name) for name in names]
    shown = {key for key, _ in columns}
    return columns + [(name, name) for name in added_metrics(rows) if name not in shown]


def higher_is_better(key: str, rows: Sequence[Row]) -> bool:
    return added_metrics(rows).get(key, key not in LOWER_IS_BETTER)


def headline_metric(task: str, rows: Sequence[Row]) -> str | None:
    columns = metric_columns(task, rows)
    return HEADLINE.get(task) or (columns[0][0] if columns else None)


def format_metric(row: Row, key: str) -> Cell:
    """`0.912 ± 0.011`: the value and the half-width of its bootstrap interval, marked where the interval
    resampled clusters of reviews."""
    value = (row.get("metrics") or {}).get(key)
    if value is None:
        return Cell("")
    text = f"{value:.3f}"
    interval = (row.get("intervals") or {}).get(key)
    if interval and len(interval) == 2 and None not in interval:
        text += f" ± {(interval[1] - interval[0]) / 2:.3f}" + (CLUSTER_MARK if row.get("clustering") else "")
    return Cell(text, float(value))


def number(value: Any, digits: int) -> Cell:
    if value is None:
        return Cell("")
    return Cell(f"{float(value):.{digits}f}", float(value))


def dollars(value: Any) -> Cell:
    """Dollars with three significant digits: a thousand reviews can cost a tenth of a cent."""
    if value is None:
        return Cell("")
    return Cell(f"{float(value):.3g}", float(value))


def model_label(row: Row) -> str:
    """The row's display label, marked when the task's data is in the model's training mixture."""
    label = str(row.get("label") or row.get("model"))
    return f"{label} {IN_TRAINING_MARK}" if row.get("in_training") else label


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(quality, runtime): a is at least as good on both and strictly better on one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def cost_per_1000(entry: Entry) -> float | None:
    usd = (entry.row.get("cost") or {}).get("usd_per_1000_reviews")
    return None if usd is None else float(usd)


def mark_pareto(entries: Sequence[Entry], metric: str, kind: str) -> None:
    """Mark the quality-runtime front; a dominated entry names its best-quality dominator."""
    points = {}
    for entry in entries:
        quality = (entry.row.get("metrics") or {}).get(metric)
        if quality is not None and kind in entry.runtimes:
            points[id(entry)] = (float(quality), entry.runtimes[kind])
    for entry, mark in front_marks(entries, points):
        entry.pareto = mark


def mark_cost_pareto(entries: Sequence[Entry], metric: str) -> None:
    """Mark the quality-cost front ($ per 1,000 reviews, so rows of different sizes compare)."""
    points = {}
    for entry in entries:
        quality, usd = (entry.row.get("metrics") or {}).get(metric), cost_per_1000(entry)
        if quality is not None and usd is not None:
            points[id(entry)] = (float(quality), usd)
    for entry, mark in front_marks(entries, points):
        entry.pareto_cost = mark


def front_marks(
    entries: Sequence[Entry], points: Mapping[int, tuple[float, float]]
) -> list[tuple[Entry, str]]:
    """`front`, or `dominated by` the best-quality entry that dominates it, for each entry with a point
    (points keyed by the entry's id: (quality, the cost side))."""
    marks = []
    for entry in entries:
        point = points.get(id(entry))
        if point is None:
            continue
        rivals = [e for e in entries if id(e) in points and dominates(points[id(e)], point)]
        if not rivals:
            marks.append((entry, "front"))
        else:
            best = max(rivals, key=lambda e: (points[id(e)][0], -points[id(e)][1]))
            marks.append((entry, f"dominated by {best.label}"))
    return marks


def highlight_best(columns: Sequence[Column], body: Sequence[list[Cell]]) -> None:
    for i, column in enumerate(columns):
        if column.higher_is_better is None:
            continue
        values = [v for r in body if (v := r[i].value) is not None]
        if len(values) < 2:
            continue
        best = max(values) if column.higher_is_better else min(values)
        for r in body:
            r[i].best = r[i].value == best


def summary_line(rows: Sequence[Row]) -> str:
    """What happened to the data: nothing dropped for length, what was truncated, what was malformed."""
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    truncated = [(str(r.get("label") or r.get("model")), int(r.get("truncated") or 0)) for r in ok]
    total_truncated = sum(n for _, n in truncated)
    parts = ["dropped for length: 0"]
    detail = ", ".join(f"{label} {n}" for label, n in truncated if n)
    parts.append(f"truncated: {total_truncated}" + (f" ({detail})" if detail else ""))
    malformed = max((int((r.get("load_issues") or {}).get("total") or 0) for r in rows), default=0)
    parts.append(f"malformed rows: {malformed}")
    if any(r.get("in_training") for r in rows):
        parts.append(IN_TRAINING_NOTE)
    three_star = max((int((r.get("counts") or {}).get("dropped_3star") or 0) for r in ok), default=0)
    if three_star:
        parts.append(f"3-star reviews left out by the task: {three_star}")
    return " · ".join(parts)


def cluster_summary(task: str, rows: Sequence[Row]) -> str:
    """What the clustered intervals resampled and how much wider clustering made them (the design effect,
    clustered over unclustered standard error, of the headline metric)."""
    clustered = [r for r in rows if r.get("clustering")]
    if not clustered:
        return ""
    metric = headline_metric(task, rows) or ""
    columns = sorted({str(r["clustering"]["column"]) for r in clustered})
    counts = sorted({int(r["clustering"]["clusters"]) for r in clustered})
    effects = [r["clustering"].get("design_effect", {}).get(metric) for r in clustered]
    found = [e for e in effects if e is not None]
    shown = (
        f"{min(found):.2f}" + (f"-{max(found):.2f}" if max(found) - min(found) >= 0.005 else "")
        if found
        else "-"
    )
    many = f"{counts[0]}" + (f"-{counts[-1]}" if len(counts) > 1 else "")
    return (
        f"{CLUSTER_MARK} ± resamples {', '.join(columns)} clusters ({many} clusters), not single reviews; "
        f"design effect on {dict(metric_columns(task, rows)).get(metric, metric)}: {shown}"
    )


def seed_cell(row: Row, key: str, metric: str) -> Cell:
    """Standard deviation or range of the headline metric over the seeds, or a seed's mean review ±.

    A row whose predictions were the same in every seed (nothing it depends on
    was varied) shows `fixed` rather than a spread of zero.
    """
    stats = row.get("seed_stats") or {}
    values = (stats.get("metrics") or {}).get(metric)
    if not values:
        return Cell("")
    if key == "seed_sd":
        return Cell("fixed") if stats.get("same_predictions") else Cell(f"{values['sd']:.3f}", values["sd"])
    if key == "seed_range":
        return Cell(f"{values['min']:.3f}-{values['max']:.3f}")
    widths = [(hi - lo) / 2 for lo, hi in (i for i in values["intervals"] if i and None not in i)]
    return Cell(f"{sum(widths) / len(widths):.3f}") if widths else Cell("")


def seed_summary(task: str, rows: Sequence[Row]) -> str:
    """Which seeds, what they varied, and what the ± and the seed columns mean."""
    stats = next(r["seed_stats"] for r in rows if r.get("seed_stats"))
    varied = stats.get("vary")
    metric = dict(metric_columns(task, rows)).get(headline_metric(task, rows) or "", "")
    return (
        f"mean over seeds {', '.join(map(str, stats['seeds']))}"
        + (f" (varying {', '.join(varied)})" if varied else "")
        + f"; ± is the half-width of the 95% interval over seeds and reviews; seed sd, seed min-max and "
        f"± reviews (a seed's own review bootstrap, averaged) are of {metric}; fixed: nothing the row "
        "depends on was varied"
    )


def device_kinds(entries: Sequence[Entry]) -> list[str]:
    return [k for k in ("cpu", "gpu") if any(k in e.runtimes for e in entries)] or ["cpu"]


def ranked_entries(task: str, rows: Sequence[Row]) -> list[Entry]:
    """Merged entries with Pareto marks, on the device kind most entries were timed on (GPU on a tie)."""
    entries = merge_runs(rows)
    ok_entries = [e for e in entries if e.row.get("status", "ok") == "ok"]
    metric = headline_metric(task, rows)
    if metric is not None:
        kinds = device_kinds(entries)
        pareto_kind = max(reversed(kinds), key=lambda k: sum(k in e.runtimes for e in ok_entries))
        mark_pareto(ok_entries, metric, pareto_kind)
        mark_cost_pareto(ok_entries, metric)
    return entries


def build_table(task: str, rows: Sequence[Row]) -> Table:
    """One task's table: the study's columns, runtime per device kind, hybrid columns, Pareto marks."""
    entries = ranked_entries(task, rows)
    ok_entries = [e for e in entries if e.row.get("status", "ok") == "ok"]
    kinds = device_kinds(entries)
    hybrid = any("escalated_share" in (e.row.get("extra") or {}) for e in entries)
    columns = [Column("task", "task"), Column("model", "model"), Column("n", "n")]
    columns += [Column(k, h, higher_is_better(k, rows)) for k, h in metric_columns(task, rows)]
    seeded = any(e.row.get("seed_stats") for e in entries)
    if seeded:
        columns += [Column(key, header, None) for key, header in SEED_COLUMNS]
    if len(kinds) == 2:
        columns += [Column(f"runtime_{k}", DEVICE_HEADERS[k], False) for k in kinds]
    else:
        columns.append(Column(f"runtime_{kinds[0]}", "runtime (s)", False))
    columns.append(Column("reviews_per_s", "reviews/s", True))
    if any((e.row.get("cost") or {}).get("usd") is not None for e in entries):  # runs before costs: none
        columns += [
            Column("cost_usd", "cost ($)", False),
            Column("usd_per_1000", "$ per 1,000 reviews", False),
        ]
    if any(e.row.get("latency") for e in entries):
        columns.append(Column("latency", "latency p50/p95 (s)", None))
    if hybrid:
        columns.append(Column("escalated_share", "to large model", None))
    columns.append(Column("pareto", "Pareto", None))
    if any(e.pareto_cost for e in ok_entries):
        columns.append(Column("pareto_cost", "Pareto ($)", None))
    body = [entry_cells(e, columns) for e in entries]
    highlight_best(columns, [r for r, e in zip(body, entries, strict=True) if e in ok_entries])
    errors = [f"{e.label}: {e.row.get('error')}" for e in entries if e.row.get("status", "ok") == "error"]
    errors += [
        f"{e.label}: {len(lost)} review(s) failed and are left out of n, within the error budget "
        f"(see failed_reviews in results.json)"
        for e in ok_entries
        if (lost := e.row.get("failed_reviews"))
    ]
    summary = summary_line(rows)
    if clustered := cluster_summary(task, rows):
        summary += " · " + clustered
    if seeded:
        summary += " · " + seed_summary(task, rows)
    headline = headline_metric(task, rows)
    return Table(task, columns, body, [e.label for e in entries], summary, errors, headline)


def entry_cells(entry: Entry, columns: Sequence[Column]) -> list[Cell]:
    row = entry.row
    failed = row.get("status", "ok") == "error"
    cells = []
    for column in columns:
        key = column.key
        if key == "task":
            cells.append(Cell(entry.task))
        elif key == "model":
            cells.append(Cell(entry.label))
        elif failed:
            cells.append(Cell("error" if key == "n" else ""))
        elif key == "n":
            cells.append(number(row.get("n"), 0))
        elif key.startswith("runtime_"):
            cells.append(number(entry.runtimes.get(key.removeprefix("runtime_")), 2))
        elif key == "reviews_per_s":
            cells.append(number(row.get("reviews_per_s"), 1))
        elif key == "cost_usd":
            cells.append(dollars((row.get("cost") or {}).get("usd")))
        elif key == "usd_per_1000":
            cells.append(dollars((row.get("cost") or {}).get("usd_per_1000_reviews")))
        elif key == "latency":
            latency = row.get("latency") or {}
            p50, p95 = latency.get("p50_s"), latency.get("p95_s")
            cells.append(Cell("" if p50 is None else f"{p50:.3g} / {p95:.3g}", p50))
        elif key == "escalated_share":
            share = (row.get("extra") or {}).get("escalated_share")
            cells.append(Cell("" if share is None else f"{100 * share:.1f}%", share))
        elif key == "pareto":
            cells.append(Cell(REPORTED if row.get("status") == REPORTED else entry.pareto))
        elif key == "pareto_cost":  # the runtime column already names dominators: here only the front
            cells.append(Cell("front" if entry.pareto_cost == "front" else ""))
        elif key.startswith("seed_"):
            cells.append(seed_cell(row, key, headline_metric(entry.task, [row]) or ""))
        else:
            cells.append(format_metric(row, key))
    return cells


def build_tables(rows: Sequence[Row]) -> list[Table]:
    """Tables in the order tasks first appear in the rows."""
    tasks = list(dict.fromkeys(str(r.get("task")) for r in rows))
    return [build_table(task, [r for r in rows if str(r.get("task")) == task]) for task in tasks]
