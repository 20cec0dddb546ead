"""Cascades of three replayed from stored predictions: two thresholds over a grid, and their frontier.

`hybrid:A>B>C` lets A answer, escalates A's unsure reviews to B, and B's
unsure ones among those to C. With all three models' per-review
probabilities and latencies every pair of thresholds is exact arithmetic,
as for two models, so a grid of pairs costs no model run. The frontier is
the pairs no other pair beats on both quality and cost (dollars where the
run priced all three models, runtime otherwise); the cheapest
pair reaching each share of the gap between A alone and the best single
model is the one to use for that target; `--write-board` writes a board
running those cascades (`hybrid:A>B>C@R:T1>R:T2`) on the sweep's data.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.leaderboard._plots import save_png
from harness.plugins.routing import _calibration as calibration
from harness.plugins.routing._console_table import print_table
from harness.plugins.routing._replay import MetricFn, read_pair

if TYPE_CHECKING:
    from harness import PluginHost, Task
    from harness.plugins.routing.sweep import SweepSettings

GAP_TARGETS = (0.5, 0.8, 0.95)


@dataclass
class Cascade:
    """Three models' predictions on the same reviews, first model's order."""

    gold: np.ndarray
    probs: list[np.ndarray]
    latency: list[np.ndarray]
    cost: list[np.ndarray] | None = None  # dollars per review of each model, where all three are priced


def read_cascade(path: Path, task: str, labels: Sequence[str], specs: Sequence[str]) -> Cascade:
    """The three models' records for `task`, aligned on the first model's reviews."""
    first, second = (
        read_pair(path, task, labels, specs[0], specs[1]),
        read_pair(path, task, labels, specs[0], specs[2]),
    )
    costs = [first.small_cost, first.large_cost, second.large_cost]
    return Cascade(first.gold, [first.small, first.large, second.large],
                   [first.small_latency, first.large_latency, second.large_latency],
                   None if any(c is None for c in costs) else costs)  # type: ignore[arg-type]  # fmt: skip


@dataclass
class CascadePoint:
    """One pair of thresholds: the shares reaching the second and third model, runtime and metrics."""

    first: float
    second: float
    share_second: float
    share_third: float
    runtime_s: float
    metrics: dict[str, float]
    usd_per_1000: float | None = None
    frontier: bool = False

    def cost(self) -> float:
        """What the frontier and the picks minimise: dollars per 1,000 reviews where known, else runtime."""
        return self.runtime_s if self.usd_per_1000 is None else self.usd_per_1000


@dataclass
class CascadeReport:
    """Everything a three-model sweep found, as written to cascade.json."""

    task: str
    models: list[str]
    router: str
    metric: str
    n: int
    singles: dict[str, dict[str, float]]
    single_runtimes: dict[str, float]
    points: list[CascadePoint]
    best_for: dict[str, CascadePoint | None] = field(default_factory=dict)
    single_usd_per_1000: dict[str, float] | None = None  # each model alone, where all three are priced


def cascade_point(
    cascade: Cascade, scores: Sequence[np.ndarray], first: float, second: float, metric_fn: MetricFn
) -> CascadePoint:
    """A answers unless its score is below `first`; then B, unless B's is below `second`; then C."""
    from harness.plugins.routing._guarantee import escalate_at

    to_second = escalate_at(scores[0], first)
    to_third = to_second & escalate_at(scores[1], second)
    probs = np.where(to_third[:, None], cascade.probs[2],
                     np.where(to_second[:, None], cascade.probs[1], cascade.probs[0]))  # fmt: skip

    def spent(per_review: list[np.ndarray]) -> float:
        return float(per_review[0].sum() + per_review[1][to_second].sum() + per_review[2][to_third].sum())

    usd = None if cascade.cost is None else 1000 * spent(cascade.cost) / len(cascade.gold)
    return CascadePoint(first, second, float(to_second.mean()), float(to_third.mean()), spent(cascade.latency),
                        metric_fn(cascade.gold, probs), usd)  # fmt: skip


def replay_cascade(
    cascade: Cascade,
    score: Callable[[np.ndarray], np.ndarray],
    metric_fn: MetricFn,
    metric: str,
    shares: Sequence[float],
) -> tuple[list[CascadePoint], dict[str, CascadePoint | None]]:
    """Every pair of thresholds at the grid's quantiles of each model's score; the frontier and best pairs."""
    scores = [score(probs) for probs in cascade.probs[:2]]
    grids = [calibration.share_thresholds(s, shares) for s in scores]
    points = [cascade_point(cascade, scores, float(first), float(second), metric_fn)
              for first in grids[0] for second in grids[1]]  # fmt: skip
    best = -np.inf
    for point in sorted(points, key=lambda p: (p.cost(), -p.metrics[metric])):
        if point.metrics[metric] > best:
            point.frontier, best = True, point.metrics[metric]
    low = metric_fn(cascade.gold, cascade.probs[0])[metric]
    high = max(metric_fn(cascade.gold, probs)[metric] for probs in cascade.probs)
    best_for: dict[str, CascadePoint | None] = {}
    for fraction in GAP_TARGETS:
        goal = low + fraction * (high - low)
        reaching = [p for p in points if p.metrics[metric] >= goal - 1e-12]
        best_for[f"{fraction:.0%}"] = (
            min(reaching, key=lambda p: p.cost()) if reaching and high > low else None
        )
    return points, best_for


def cascade_csv(report: CascadeReport) -> str:
    """One row per pair of thresholds, the frontier flagged."""
    metrics = list(next(iter(report.singles.values())))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["first_threshold", "second_threshold", "share_to_second", "share_to_third", "runtime_s",
                     "usd_per_1000_reviews", "frontier", *metrics])  # fmt: skip
    for p in report.points:
        usd = "" if p.usd_per_1000 is None else f"{p.usd_per_1000:.8f}"
        writer.writerow([f"{p.first:.9g}", f"{p.second:.9g}", f"{p.share_second:.6f}", f"{p.share_third:.6f}",
                         f"{p.runtime_s:.6f}", usd, int(p.frontier), *(f"{p.metrics[m]:.6f}" for m in metrics)])  # fmt: skip
    return out.getvalue()


def plot_cascade(path: Path, report: CascadeReport) -> Path:
    """Quality against cost (dollars per 1,000 reviews, or runtime): every pair, the frontier, each model alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.plot([p.cost() for p in report.points], [p.metrics[report.metric] for p in report.points], ".",
              color="lightgrey", label="threshold pairs")  # fmt: skip
    frontier = sorted((p for p in report.points if p.frontier), key=lambda p: p.cost())
    axes.plot([p.cost() for p in frontier], [p.metrics[report.metric] for p in frontier], "o-", markersize=3,
              label="frontier")  # fmt: skip
    alone = report.single_usd_per_1000 or report.single_runtimes
    for (name, metrics), colour in zip(
        report.singles.items(), ("tab:green", "tab:orange", "tab:purple"), strict=False
    ):
        axes.plot(alone[name], metrics[report.metric], "s", color=colour, label=f"{name} alone")
    priced = report.single_usd_per_1000 is not None
    axes.set_xlabel("$ per 1,000 reviews" if priced else "runtime (s, summed per-review model time)")
    axes.set_ylabel(report.metric)
    axes.legend(loc="lower right", fontsize="small")
    figure.suptitle(f"{report.task}: {' > '.join(report.models)} ({report.router}, n = {report.n})")
    save_png(figure, path, dpi=110)
    return path


def cascade_report(
    path: Path, task: Task, host: PluginHost, specs: Sequence[str], settings: SweepSettings
) -> CascadeReport:
    """Replay every pair of thresholds of A>B>C from the predictions at `path`."""
    from harness.errors import HarnessError

    router = host.registries.routers.get(settings.router).obj(None)
    score = getattr(router, "score", None)
    if score is None:
        raise HarnessError(f"router {settings.router!r} has no score to take quantiles of")
    cascade = read_cascade(path, task.name, task.labels, specs)
    singles = {
        spec: task.metrics(cascade.gold, probs) for spec, probs in zip(specs, cascade.probs, strict=True)
    }
    first = singles[specs[0]]
    metric = settings.metric or ("macro_f1" if "macro_f1" in first else next(iter(first)))
    if metric not in first:
        raise HarnessError(f"unknown metric {metric!r}; task {task.name!r} reports {', '.join(first)}")
    points, best_for = replay_cascade(cascade, score, task.metrics, metric, settings.shares)
    return CascadeReport(
        task=task.name, models=list(specs), router=settings.router, metric=metric, n=len(cascade.gold),
        singles=singles, single_runtimes={s: float(t.sum()) for s, t in zip(specs, cascade.latency, strict=True)},
        points=points, best_for=best_for,
        single_usd_per_1000=None if cascade.cost is None else {
            s: float(1000 * c.mean()) for s, c in zip(specs, cascade.cost, strict=True)},
    )  # fmt: skip


def write_cascade(report: CascadeReport, run_dir: Path) -> list[Path]:
    """cascade.csv, cascade.json and cascade.png in the run directory; returns their paths."""
    from dataclasses import asdict

    from harness.files import atomic_write, write_json

    csv_path, json_path, png_path = run_dir / "cascade.csv", run_dir / "cascade.json", run_dir / "cascade.png"
    atomic_write(csv_path, cascade_csv(report))
    write_json(json_path, asdict(report))
    plot_cascade(png_path, report)
    return [csv_path, json_path, png_path]


def print_cascade(report: CascadeReport, console: Any) -> None:
    """The frontier, each model alone, and the cheapest pair for each share of the gap."""
    a, b, c = report.models
    priced = report.single_usd_per_1000 is not None
    axis = "dollars" if priced else "runtime (no dollars: not every model's row is priced)"
    title = (f"{report.task}: {a} > {b} > {c}, router {report.router}, n = {report.n}: "
             f"frontier of quality against {axis}")  # fmt: skip
    headers = ("first threshold", f"to {b}", "second threshold", f"to {c}", "runtime s",
               *(("$ per 1,000",) if priced else ()), report.metric)  # fmt: skip
    rows = [
        [f"{p.first:.6g}", f"{p.share_second:.1%}", f"{p.second:.6g}", f"{p.share_third:.1%}",
         f"{p.runtime_s:.2f}", *((f"${p.usd_per_1000:.4g}",) if p.usd_per_1000 is not None else ()),
         f"{p.metrics[report.metric]:.4f}"]
        for p in sorted((p for p in report.points if p.frontier), key=lambda p: p.cost())
    ]  # fmt: skip
    print_table(console, title, headers, rows, lead=0, labelled=False)
    for name, metrics in report.singles.items():
        usd = (
            f", ${report.single_usd_per_1000[name]:.4g} per 1,000 reviews"
            if report.single_usd_per_1000
            else ""
        )
        console.print(f"{name} alone: {report.metric} {metrics[report.metric]:.4f}, "
                      f"runtime {report.single_runtimes[name]:.2f} s{usd}")  # fmt: skip
    for fraction, best in report.best_for.items():
        if best is None:
            console.print(f"{fraction} of the gap to the best single model: no pair reaches it")
        else:
            console.print(f"{fraction} of the gap: thresholds {best.first:.6g} and {best.second:.6g} "
                          f"({best.share_second:.1%} to {b}, {best.share_third:.1%} to {c}), "
                          f"{report.metric} {best.metrics[report.metric]:.4f}, runtime {best.runtime_s:.2f} s"
                          + (f", ${best.usd_per_1000:.4g} per 1,000 reviews" if best.usd_per_1000 is not None else ""))  # fmt: skip


BOARD_SETTINGS = ("data", "dataset", "backend", "limit", "seed", "bootstrap", "price_per_hour")
BOARD_TABLES = ("task_options", "model_options", "source_options", "backend_options")


def _toml(value: Any) -> str:
    """A TOML value: JSON's strings, numbers and booleans are TOML's; tables are written inline."""
    import json

    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def cascade_specs(report: CascadeReport) -> dict[str, str]:
    """The nested hybrid running each target's best pair of thresholds, by target (targets no pair reaches
    are left out; targets sharing a pair share an entry)."""
    specs: dict[str, str] = {}
    for fraction, best in report.best_for.items():
        if best is None:
            continue
        steps = f"{report.router}:{best.first:.10g}>{report.router}:{best.second:.10g}"
        spec = f"hybrid:{'>'.join(report.models)}@{steps}"
        if spec not in specs.values():
            specs[fraction] = spec
    return specs


def board_toml(report: CascadeReport, config: dict[str, Any]) -> str:
    """A board (TOML) with each model alone and the cascades the sweep picked, on the sweep's data.

    `config` is the board the predictions came from (results.json's `config`),
    so `harness run` on the written board scores the same reviews.
    """
    about = "three-model cascades at the thresholds a sweep picked for each share of the gap"
    lines = [f"name = {_toml('cascade-' + report.task)}", f"description = {_toml(about)}",
             f"tasks = {_toml([report.task])}"]  # fmt: skip
    lines += [f"{key} = {_toml(config[key])}" for key in BOARD_SETTINGS if config.get(key) is not None]
    tables = {key: dict(config.get(key) or {}) for key in BOARD_TABLES}
    own = tables["task_options"].get(report.task)
    tables["task_options"] = {report.task: own} if own else {}
    lines += [f"{key} = {_toml(value)}" for key, value in tables.items() if value]
    for spec in report.models:
        lines += ["", "[[models]]", f"spec = {_toml(spec)}"]
    chain = " > ".join(report.models)
    for fraction, spec in cascade_specs(report).items():
        label = f"{chain} for {fraction} of the gap"
        lines += ["", "[[models]]", f"spec = {_toml(spec)}", f"label = {_toml(label)}"]
    return "\n".join(lines) + "\n"
