"""PNG pictures of a run: quality against runtime with the Pareto front, confusion matrices, per-class accuracy.

Figures are drawn with matplotlib's object API on the Agg canvas (never
pyplot), so plotting sets no global state and needs no display.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.files import atomic_write
from harness.leaderboard._predictions import group_predictions, iter_predictions, label_order
from harness.leaderboard._table import cost_per_1000, headline_metric, ranked_entries

DPI = 120


def slug(text: str) -> str:
    """A file-name-safe form of a task or model spec (`hybrid:a>b@confidence:0.9` -> `hybrid-a-b-confidence-0.9`)."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.") or "model"


def plain(text: str) -> str:
    """Matplotlib reads `$...$` as math (and fails on bad math): a label is shown literally."""
    return text.replace("$", r"\$")


def new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Any, target: Any, **options: Any) -> None:
    """`figure.savefig` without matplotlib's "Glyph ... missing from font" warnings on stderr: a label in a
    script the font lacks is drawn as boxes, and the tables beside the picture show it in full."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        figure.savefig(target, **options)


def png_bytes(figure: Any) -> bytes:
    buffer = io.BytesIO()
    save_png(figure, buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def pareto_figure(task: str, rows: Sequence[Mapping[str, Any]], on: str = "runtime") -> Any | None:
    """Headline quality against runtime, or against $ per 1,000 reviews (`on="cost"`), on a log scale,
    with intervals, front points joined by a step line.

    None below two points: one model on one backend is compared with nothing,
    and the table already shows its figures.
    """
    metric = headline_metric(task, rows)
    entries = [e for e in ranked_entries(task, rows) if e.row.get("status", "ok") == "ok"]
    points = []
    for entry in entries:
        quality = (entry.row.get("metrics") or {}).get(metric)
        interval = (entry.row.get("intervals") or {}).get(metric)
        if on == "cost":
            usd = cost_per_1000(entry)
            sides = [(next(iter(entry.runtimes), "cpu"), usd)] if usd else []
            mark = entry.pareto_cost
        else:
            sides, mark = list(entry.runtimes.items()), entry.pareto
        for kind, side in sides:
            if quality is not None and side and side > 0:
                points.append((entry.label, kind, float(side), float(quality), interval, mark))
    if len(points) < 2:
        return None
    figure = new_figure(7, 4.5)
    axes = figure.add_subplot()
    for label, kind, runtime, quality, interval, mark in points:
        on_front = mark == "front"
        yerr = [[quality - interval[0]], [interval[1] - quality]] if interval else None
        axes.errorbar(runtime, quality, yerr=yerr, fmt="o" if kind == "cpu" else "s",
                      color="tab:blue" if on_front else "tab:gray", capsize=3)  # fmt: skip
        axes.annotate(plain(f"{label} ({kind.upper()})"), (runtime, quality), textcoords="offset points",
                      xytext=(5, 4), fontsize=8)  # fmt: skip
    front = sorted((r, q) for _, _, r, q, _, m in points if m == "front")
    if len(front) > 1:
        axes.step([r for r, _ in front], [q for _, q in front], where="post", color="tab:blue", alpha=0.5)
    axes.set_xscale("log")
    scale = "log scale; circles CPU, squares GPU"
    axes.set_xlabel(f"$ per 1,000 reviews ({scale})" if on == "cost" else f"runtime (s, {scale})")
    axes.set_ylabel(metric)
    axes.set_title(f"{task}: {metric} against {'cost' if on == 'cost' else 'runtime'} (blue: Pareto front)")
    axes.grid(alpha=0.3)
    return figure


def slice_figure(task: str, dimension: str, rows: Sequence[Mapping[str, Any]]) -> Any | None:
    """The headline metric per slice of one dimension (length buckets...), one line per model, with intervals.

    None when no row of the task recorded that dimension.
    """
    metric = headline_metric(task, rows)
    lines: list[tuple[str, list[Mapping[str, Any]]]] = []
    for row in rows:
        slices = (row.get("slices") or {}).get(dimension) or []
        if any(metric in (s.get("metrics") or {}) for s in slices):
            lines.append((str(row.get("label") or row.get("model")), slices))
    if not lines or metric is None:
        return None
    names = list(dict.fromkeys(str(s["slice"]) for _, slices in lines for s in slices))
    figure = new_figure(7, 4.5)
    axes = figure.add_subplot()
    for offset, (label, slices) in enumerate(lines):
        points = [(names.index(str(s["slice"])), s) for s in slices if metric in (s.get("metrics") or {})]
        xs = [x + 0.06 * (offset - (len(lines) - 1) / 2) for x, _ in points]
        ys, low, high = [], [], []
        for _, entry in points:
            y = float(entry["metrics"][metric])
            bounds = (entry.get("intervals") or {}).get(metric) or [y, y]
            ys.append(y)
            low.append(y - bounds[0])
            high.append(bounds[1] - y)
        axes.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=plain(label))
    counts = {str(s["slice"]): s["n"] for s in lines[0][1]}
    axes.set_xticks(range(len(names)), [plain(f"{n}\n(n={counts.get(n, '?')})") for n in names], fontsize=8)
    axes.set_xlabel(dimension)
    axes.set_ylabel(metric)
    axes.set_title(plain(f"{task}: {metric} by {dimension}, bootstrap 95% intervals"))
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    return figure


def confusion_counts(records: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> list[list[int]]:
    """counts[gold][pred] over the records, rows and columns in `labels` order.

    An unparseable generated answer predicts no label: it is in no column, as in the metrics.
    """
    index = {label: i for i, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for record in records:
        if record.get("pred") is None:
            continue
        counts[index[str(record["gold"])]][index[str(record["pred"])]] += 1
    return counts


def confusion_figure(task: str, model: str, records: Sequence[Mapping[str, Any]]) -> Any:
    labels = label_order(records)
    counts = confusion_counts(records, labels)
    size = 2.5 + 0.45 * len(labels)
    figure = new_figure(size + 1, size)
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8)
    peak = max(max(r) for r in counts) or 1
    for g, row in enumerate(counts):
        for p, value in enumerate(row):
            colour = "white" if value > peak / 2 else "black"
            axes.text(p, g, str(value), ha="center", va="center", fontsize=7, color=colour)
    names = [plain(label) for label in labels]
    axes.set_xticks(range(len(labels)), names, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(labels)), names, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title(plain(f"{task}: {model}"), fontsize=9)
    return figure


def per_class_accuracy(records: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> list[float | None]:
    """Share of each gold class predicted correctly (None for a class with no examples)."""
    totals = dict.fromkeys(labels, 0)
    right = dict.fromkeys(labels, 0)
    for record in records:
        totals[str(record["gold"])] += 1
        right[str(record["gold"])] += bool(record.get("correct"))
    return [right[label] / totals[label] if totals[label] else None for label in labels]


def per_class_figure(task: str, groups: Mapping[str, Sequence[Mapping[str, Any]]]) -> Any:
    """Grouped bars: one group per class, one bar per model."""
    labels = label_order(r for records in groups.values() for r in records)
    figure = new_figure(max(7.0, 0.6 * len(labels) * max(1, len(groups)) / 2), 4.5)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(groups))
    for m, (model, records) in enumerate(groups.items()):
        shares = per_class_accuracy(records, labels)
        xs = [i + m * width for i in range(len(labels))]
        axes.bar(xs, [s or 0.0 for s in shares], width=width, label=plain(model))
    ticks = [i + 0.4 - width / 2 for i in range(len(labels))]
    axes.set_xticks(ticks, [plain(label) for label in labels], rotation=45, ha="right")
    axes.set_ylim(0, 1)
    axes.set_ylabel("accuracy")
    axes.set_title(f"{task}: accuracy per class")
    axes.legend(fontsize=7)
    axes.grid(axis="y", alpha=0.3)
    return figure


def write_plots(run_dir: Path, rows: Sequence[Mapping[str, Any]], out_dir: Path | None = None) -> list[Path]:
    """Every picture of a run, written atomically into `out_dir` (default: the run directory)."""
    out_dir = out_dir or run_dir
    written: list[Path] = []

    def save(name: str, figure: Any) -> None:
        path = out_dir / name
        atomic_write(path, png_bytes(figure))
        written.append(path)

    tasks = list(dict.fromkeys(str(r.get("task")) for r in rows))
    for task in tasks:
        figure = pareto_figure(task, [r for r in rows if str(r.get("task")) == task])
        if figure is not None:
            save(f"pareto_{slug(task)}.png", figure)
        figure = pareto_figure(task, [r for r in rows if str(r.get("task")) == task], on="cost")
        if figure is not None:
            save(f"pareto_cost_{slug(task)}.png", figure)
        figure = slice_figure(task, "length", [r for r in rows if str(r.get("task")) == task])
        if figure is not None:
            save(f"slices_length_{slug(task)}.png", figure)
    if (run_dir / "predictions.jsonl").exists():
        labels = {str(r.get("model")): str(r.get("label") or r.get("model")) for r in rows}
        groups = group_predictions(iter_predictions(run_dir, task="category"))
        for (task, model), records in groups.items():
            save(
                f"confusion_{slug(task)}_{slug(model)}.png",
                confusion_figure(task, labels.get(model, model), records),
            )
        if groups:
            by_label = {labels.get(model, model): records for (_, model), records in groups.items()}
            save("per_class_category.png", per_class_figure("category", by_label))
    return written
