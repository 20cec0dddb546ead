"""`harness sweep SMALL LARGE --task T`: every routing threshold of a hybrid, from one run of each model.

The sweep runs both models through the ordinary runner (so predictions land
in the run directory's cache and a second sweep re-runs nothing), then
replays each threshold from predictions.jsonl: share escalated, the task's
metrics, and the runtime the hybrid would take. It writes sweep.csv,
sweep.json and sweep.png into the run directory, and can pick a threshold
on a calibration half and show what it achieves on the held-out half.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness import Board, ModelEntry, RunSettings, board_from_options, board_options, hookimpl
from harness.boards import task_name
from harness.command_helpers import EXIT_CODES
from harness.errors import HarnessError, RunFailed
from harness.leaderboard._terminal import UNFOLDED, View, view_options
from harness.plugins.routing._console_table import print_table

if TYPE_CHECKING:
    import numpy as np

    from harness import PluginHost, Task
    from harness.plugins.routing._bands import ResampledMetric, SweepBands
    from harness.plugins.routing._guarantee import CertifiedResult, CoverageRow
    from harness.plugins.routing._learned import RouterScore
    from harness.plugins.routing._replay import PairedPredictions, Point, TargetResult, TemperatureResult

DEFAULT_SHARES = "0:1:0.02"
GAP_FRACTIONS = (0.5, 0.8)


def parse_thresholds(text: str) -> list[float]:
    """`START:STOP:STEP` (STOP included) or a comma list, each within [0, 1]."""
    try:
        if ":" in text:
            start, stop, step = (float(part) for part in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(round((stop - start) / step)) + 1
            values = [round(start + i * step, 10) for i in range(count) if start + i * step <= stop + 1e-9]
        else:
            values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise HarnessError(
            f"thresholds {text!r} must be START:STOP:STEP or a comma list of numbers"
        ) from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise HarnessError(f"thresholds {text!r} must be between 0 and 1")
    return sorted(set(values))


def parse_target_metric(text: str) -> tuple[str, float]:
    """`macro_f1=0.9` -> ("macro_f1", 0.9)."""
    name, eq, value = text.partition("=")
    try:
        if not eq or not name.strip():
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise HarnessError(
            f"--target-metric {text!r} must look like METRIC=VALUE, e.g. macro_f1=0.9"
        ) from None


@dataclass
class SweepSettings:
    """How to replay: the router, its grid, the headline metric and the optional calibration.

    The grid is `shares` (thresholds at those quantiles of the router's score)
    unless raw `thresholds` are given.
    """

    router: str = "confidence"
    shares: list[float] = field(default_factory=lambda: parse_thresholds(DEFAULT_SHARES))
    thresholds: list[float] | None = None
    metric: str | None = None
    target_share: float | None = None
    target_metric: tuple[str, float] | None = None
    temperature: bool = False
    guarantee: tuple[str, float] | None = None
    deltas: list[float] = field(default_factory=lambda: [0.1])
    batch: int | None = None
    coverage_splits: int = 0
    compare_routers: bool = False
    seed: int = 0
    bootstrap: int = 1000


@dataclass
class Saving:
    """The cheapest threshold at least as good as the large model alone on the headline metric, and its saving.

    Two models' escalated sets grow with the threshold, so their dollars do
    too: the cheapest threshold meeting a quality bar is also the least
    escalating, and every pick the sweep makes by share is its pick by cost.
    """

    threshold: float | None
    share: float
    quality: float
    usd_per_1000: float
    large_usd_per_1000: float
    saving: float  # the share of the large model's dollars not spent


def cheapest_at_large_quality(curve: list[Point], large_only: Point, metric: str) -> Saving | None:
    """The saving at equal quality; None when no threshold reaches the large model or nothing is priced."""
    if large_only.usd_per_1000 is None:
        return None
    bar = large_only.metrics[metric] - 1e-12
    reaching = [p for p in curve if p.usd_per_1000 is not None and p.metrics[metric] >= bar]
    if not reaching:
        return None
    best = min(reaching, key=lambda p: (p.usd_per_1000, p.share))
    assert best.usd_per_1000 is not None
    large = large_only.usd_per_1000
    return Saving(best.threshold, best.share, best.metrics[metric], best.usd_per_1000, large,
                  1.0 - best.usd_per_1000 / large if large > 0 else 0.0)  # fmt: skip


@dataclass
class SweepReport:
    """Everything a sweep found, as written to sweep.json."""

    task: str
    small: str
    large: str
    router: str
    metric: str
    n: int
    curve: list[Point]
    oracle: list[Point]
    small_only: Point
    large_only: Point
    apgr: float | None
    share_to_recover: dict[str, float | None]
    target: TargetResult | None = None
    temperature: TemperatureResult | None = None
    certified: list[CertifiedResult] = field(default_factory=list)
    coverage: list[CoverageRow] = field(default_factory=list)
    routers: list[RouterScore] = field(default_factory=list)
    saving: Saving | None = None
    notes: list[str] = field(default_factory=list)
    bands: SweepBands | None = None  # the curve's band and the summary figures' intervals


def replay_sweep(
    pair: PairedPredictions, task: Task, host: PluginHost, small: str, large: str, settings: SweepSettings
) -> SweepReport:
    """Replay every threshold, the oracle and the optional calibration from paired predictions."""
    from harness.plugins.routing import _calibration as calibration
    from harness.plugins.routing import _replay as replay
    from harness.plugins.routing._bands import sweep_bands

    make_router, router_score = _router(host, settings.router)
    notes: list[str] = []
    half = calibration.calibration_mask(pair.ids, settings.seed)
    temperature = None
    if settings.temperature:
        pair, temperature = replay.scale_small_model(pair, half)
        notes.append(f"small model temperature-scaled (T = {temperature.temperature:.3f}) for every curve")
    small_only, large_only = replay.single_model_points(pair, task.metrics)
    metric = _headline_metric(settings.metric, small_only, task.name)
    thresholds = _grid(settings, router_score, pair)
    curve = replay.router_curve(pair, make_router, thresholds, task.metrics)
    bands = sweep_bands(
        pair, [make_router(t).escalate(pair.small) for t in thresholds], headline_on_resamples(task, metric),
        resamples=settings.bootstrap, seed=settings.seed,
    )  # fmt: skip
    shares = [p.share for p in curve]
    quality = [p.metrics[metric] for p in curve]
    low, high = small_only.metrics[metric], large_only.metrics[metric]
    if not high > low:
        notes.append(f"the large model is not better than the small one on {metric}: no gap to recover")
    target = None
    if settings.target_share is not None or settings.target_metric is not None:
        target = replay.calibrate_target(
            pair, half, make_router, task.metrics,
            share=settings.target_share, metric=settings.target_metric, grid=settings.thresholds or (),
            router_score=router_score, resamples=settings.bootstrap, seed=settings.seed,
        )  # fmt: skip
        if not target.reached:
            notes.append(f"target {target.target} not reached on the calibration half; best threshold used")
    certified, coverage = _certify(pair, half, router_score, task, settings)
    saving = cheapest_at_large_quality(curve, large_only, metric)
    notes += _saving_notes(saving, large_only, metric)
    routers = []
    if settings.compare_routers:
        from harness.plugins.routing._learned import compare_routers

        routers = compare_routers(pair, half, task.metrics, metric, settings.shares)
        if pair.small_embeddings is None:
            notes.append(f"no embedding router: {small}'s predictions carry no review embeddings")
    share_to_recover = {
        f"{fraction:.0%}": calibration.share_to_recover(shares, quality, low, high, fraction)
        for fraction in GAP_FRACTIONS
    }
    return SweepReport(
        task=task.name, small=small, large=large, router=settings.router, metric=metric, n=len(pair),
        curve=curve, oracle=replay.oracle_curve(pair, task.metrics), small_only=small_only,
        large_only=large_only, apgr=calibration.apgr(shares, quality, low, high),
        share_to_recover=share_to_recover, target=target, temperature=temperature, certified=certified,
        coverage=coverage, routers=routers, saving=saving, notes=notes, bands=bands,
    )  # fmt: skip


def _router(host: PluginHost, name: str) -> tuple[Callable[[float], Any], Callable[..., Any] | None]:
    """The router at a threshold, and the score its thresholds cut (None for a router without one)."""
    from harness import LearnsToRoute

    factory = host.registries.routers.get(name).obj
    try:
        default = factory(None)
    except HarnessError:  # a router without a default threshold: calibrate over the grid only
        default = None
    if isinstance(default, LearnsToRoute):
        raise HarnessError(f"router {name!r} learns on calibration reviews: compare it with "
                           "--compare-routers, which fits it on the calibration half")  # fmt: skip

    def make_router(threshold: float) -> Any:
        return factory(repr(float(threshold)))

    return make_router, getattr(default, "score", None)


def _headline_metric(chosen: str | None, small_only: Point, task: str) -> str:
    """The metric the curve is summarised by: the one chosen, else macro F1 where the task reports it."""
    metric = chosen or ("macro_f1" if "macro_f1" in small_only.metrics else next(iter(small_only.metrics)))
    if metric not in small_only.metrics:
        raise HarnessError(
            f"unknown metric {metric!r}; task {task!r} reports {', '.join(small_only.metrics)}"
        )
    return metric


def _grid(
    settings: SweepSettings, router_score: Callable[..., Any] | None, pair: PairedPredictions
) -> list[float]:
    """The raw thresholds given, else those escalating each share of the grid."""
    from harness.plugins.routing._calibration import share_thresholds

    if settings.thresholds is not None:
        return settings.thresholds
    if router_score is None:
        raise HarnessError(f"router {settings.router!r} has no score to take quantiles of: give --thresholds")
    return share_thresholds(router_score(pair.small), settings.shares).tolist()


def _certify(
    pair: PairedPredictions, half: np.ndarray, router_score: Callable[..., Any] | None, task: Task,
    settings: SweepSettings,
) -> tuple[list[CertifiedResult], list[CoverageRow]]:  # fmt: skip
    """With --guarantee: a certified threshold per delta, and their coverage over random splits if asked."""
    if settings.guarantee is None:
        return [], []
    from harness.plugins.routing import _guarantee as guarantee

    if router_score is None:
        raise HarnessError(f"router {settings.router!r} has no score to certify thresholds of")
    certified = [
        guarantee.certify_on_halves(pair, half, router_score, settings.guarantee, delta, task.metrics,
                                    resamples=settings.bootstrap, seed=settings.seed, batch=settings.batch)
        for delta in settings.deltas
    ]  # fmt: skip
    coverage = []
    if settings.coverage_splits:
        coverage = guarantee.coverage(pair, router_score, settings.guarantee, settings.deltas,
                                      settings.coverage_splits, settings.seed)  # fmt: skip
    return certified, coverage


def _saving_notes(saving: Saving | None, large_only: Point, metric: str) -> list[str]:
    if large_only.usd_per_1000 is None:
        return [
            "no dollars: the run priced neither model's rows (a run records prices; see --price-per-hour)"
        ]
    if saving is None:
        return [f"no threshold reaches the large model's {metric} alone: no saving at equal quality"]
    return []


def headline_on_resamples(task: Task, metric: str) -> ResampledMetric:
    """The headline metric on many resamples at once, in array operations where the task's metrics allow."""
    from harness.intervals import on_resamples
    from harness.metrics import RegisteredMetrics, resampled_report, task_metrics

    found = [m for m in task_metrics(task) if m.name == metric] if isinstance(task, RegisteredMetrics) else []
    if found:
        return lambda gold, probs, index: resampled_report(found, gold, probs, task.labels, index)[metric]
    return lambda gold, probs, index: on_resamples(task.metrics, gold, probs, index)[metric]


def run_models(
    host: PluginHost,
    board: Board,
    run_dir: Path,
    run_settings: RunSettings | None = None,
) -> tuple[Task, dict[str, Any]]:
    """Run (or find in the cache) every model of a one-task board; the task and the run's results."""
    from harness import run_board

    results = run_board(host, board, run_dir, run_settings)
    for row in results["rows"]:
        if row["status"] != "ok":
            raise RunFailed(f"model {row['model']!r} failed on {row['task']!r}: {row['error']}")
    [task_name] = board.tasks
    return host.registries.tasks.build(task_name, board.task_options.get(task_name, {})), results


def run_sweep(
    host: PluginHost,
    board: Board,
    run_dir: Path,
    settings: SweepSettings,
    run_settings: RunSettings | None = None,
) -> tuple[SweepReport, dict[str, Any]]:
    """Run (or find in the cache) both models of a two-model, one-task board, then replay the sweep."""
    from harness.plugins.routing._replay import read_pair

    if len(board.tasks) != 1 or len(board.models) != 2:
        raise HarnessError("a sweep needs exactly one task and two models (small, then large)")
    small, large = (entry.spec for entry in board.models)
    task, results = run_models(host, board, run_dir, run_settings)
    pair = read_pair(run_dir / "predictions.jsonl", task.name, task.labels, small, large)
    return replay_sweep(pair, task, host, small, large, settings), results


def finished_predictions(run_dir: Path) -> Path:
    """A finished run's predictions.jsonl, or a clear error."""
    path = run_dir / "predictions.jsonl"
    if not path.is_file():
        raise HarnessError(f"{run_dir} has no predictions.jsonl: run the models there first")
    return path


def sweep_from_run(
    host: PluginHost, run_dir: Path, task_name: str, task_options: dict[str, str], small: str, large: str,
    settings: SweepSettings,
) -> SweepReport:  # fmt: skip
    """Replay the sweep from a finished run's predictions.jsonl: no model is built or run."""
    from harness.plugins.routing._replay import read_pair

    path = finished_predictions(run_dir)
    task = host.registries.tasks.get(task_name).obj(task_options)
    pair = read_pair(path, task.name, task.labels, small, large)
    return replay_sweep(pair, task, host, small, large, settings)


CSV_FIELDS = ("curve", "threshold", "share_escalated", "escalated", "runtime_s", "usd_per_1000_reviews")


def sweep_csv(report: SweepReport) -> str:
    """One row per point: the router's thresholds, then the small-only, large-only and oracle references."""
    metrics = list(report.small_only.metrics)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_FIELDS, *metrics])
    for point in [*report.curve, report.small_only, report.large_only, *report.oracle]:
        threshold = "" if point.threshold is None else f"{point.threshold:g}"
        usd = "" if point.usd_per_1000 is None else f"{point.usd_per_1000:.8f}"
        writer.writerow([point.curve, threshold, f"{point.share:.6f}", point.escalated, f"{point.runtime_s:.6f}",
                         usd, *(f"{point.metrics.get(m, float('nan')):.6f}" for m in metrics)])  # fmt: skip
    return out.getvalue()


def write_outputs(report: SweepReport, run_dir: Path) -> list[Path]:
    """sweep.csv, sweep.json and sweep.png in the run directory; returns their paths."""
    from harness.files import atomic_write, write_json
    from harness.plugins.routing._sweep_plots import plot_sweep

    csv_path, json_path, png_path = run_dir / "sweep.csv", run_dir / "sweep.json", run_dir / "sweep.png"
    atomic_write(csv_path, sweep_csv(report))
    write_json(json_path, asdict(report))
    chosen = report.target.held_out if report.target is not None else None
    certified = next((r.held_out for r in report.certified if r.held_out is not None), None)
    if chosen is None:
        chosen = certified
    band = (report.bands.low, report.bands.high) if report.bands is not None else None
    plot_sweep(png_path, report.metric, report.curve, report.oracle, report.small_only, report.large_only,
               title=f"{report.task}: {report.small} > {report.large} ({report.router}, n = {report.n})",
               chosen=chosen, band=band, certified=certified)  # fmt: skip
    return [csv_path, json_path, png_path]


def _usd(value: float | None) -> str:
    """Dollars to four significant figures: a small model's cost per 1,000 reviews can be a fraction of a cent."""
    return "n/a" if value is None else f"${value:.4g}"


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def curve_columns(report: SweepReport, view: View) -> tuple[bool, bool, list[str]]:
    """What the threshold table shows in `view`, as the board chooses its columns: runtime (the `cost` sets),
    dollars (where priced) and the headline metric, or every metric (the `quality` sets)."""
    keys = set(view.keys())
    runtime = "runtime" in keys
    dollars = report.large_only.usd_per_1000 is not None and "usd_per_1000" in keys
    every = list(report.small_only.metrics)
    return runtime, dollars, every if "metrics" in keys else [m for m in every if m == report.metric]


def print_report(report: SweepReport, console: Any, view: View | None = None) -> None:
    """The threshold table, the reference rows, the gap summary and the calibration, on a rich console."""
    runtime, dollars, metrics = curve_columns(report, view or View())
    headers = ["curve", "threshold", "escalated", *(["runtime s"] if runtime else []),
               *(["$ per 1,000"] if dollars else []), *metrics]  # fmt: skip
    changed = [
        p for i, p in enumerate(report.curve) if i == 0 or p.escalated != report.curve[i - 1].escalated
    ]
    oracle_exact = max(report.oracle, key=lambda p: (p.metrics[report.metric], -p.share))
    rows = [
        [point.curve, "" if point.threshold is None else f"{point.threshold:g}",
         f"{point.share:.1%} ({point.escalated})", *([f"{point.runtime_s:.2f}"] if runtime else []),
         *([_usd(point.usd_per_1000)] if dollars else []), *(_fmt(point.metrics.get(m)) for m in metrics)]
        for point in [*changed, report.small_only, report.large_only, oracle_exact]
    ]  # fmt: skip
    title = f"{report.task}: {report.small} > {report.large}, router {report.router}, n = {report.n}"
    print_table(console, title, headers, rows, lead=3)
    if len(metrics) < len(report.small_only.metrics):
        console.print("the other metrics: --columns quality, or sweep.csv")
    if report.saving is not None:
        s = report.saving
        console.print(f"at the large model's {report.metric} or better: threshold {_fmt(s.threshold, 6)} "
                      f"({s.share:.1%} escalated, {report.metric} {_fmt(s.quality)}) costs {_usd(s.usd_per_1000)} "
                      f"per 1,000 reviews against {_usd(s.large_usd_per_1000)} for the large model alone: "
                      f"{s.saving:.1%} saved")  # fmt: skip
    if len(changed) < len(report.curve):
        console.print(f"{len(report.curve) - len(changed)} thresholds escalating the same reviews as the one above "
                      "are left out here; sweep.csv has every threshold")  # fmt: skip
    gaps = ", ".join(f"{k} of the gap at {_fmt(v, 3)} escalated" for k, v in report.share_to_recover.items())
    console.print(f"APGR ({report.metric}): {_fmt(report.apgr, 3)}; {gaps}")
    if report.bands is not None:
        _print_bands(report, console)
    if report.temperature is not None:
        t = report.temperature
        console.print(f"temperature {t.temperature:.3f}: held-out ECE {t.ece_before:.4f} -> {t.ece_after:.4f}, "
                      f"NLL {t.nll_before:.4f} -> {t.nll_after:.4f}")  # fmt: skip
    if report.target is not None:
        _print_target(report.target, report.metric, console)
    for result in report.certified:
        _print_certified(result, console)
    if report.coverage:
        _print_coverage(report.coverage, report.certified[0].certificate, console)
    if report.routers:
        _print_routers(report.routers, report.metric, console)
    for note in report.notes:
        console.print(f"note: {note}")


def _print_bands(report: SweepReport, console: Any) -> None:
    """APGR, CPT, AIQ and the saving at equal quality, each with its bootstrap interval."""
    bands = report.bands
    assert bands is not None
    unit = f"{bands.clusters} clusters of reviews" if bands.clusters is not None else "reviews"
    values: dict[str, tuple[str, float | None]] = {
        "apgr": ("APGR (gap recovered, averaged over share escalated)", report.apgr),
        **{f"cpt_{k}": (f"CPT({k}): share escalated to recover {k} of the gap", v)
           for k, v in report.share_to_recover.items()},
        "aiq": ("AIQ (area under the cost-quality hull)", bands.aiq),
        "saving": ("saving at equal quality", report.saving.saving if report.saving is not None else None),
    }  # fmt: skip
    rows = []
    for key, (name, value) in values.items():
        low, high = bands.intervals.get(key, (None, None))
        rows.append(
            [name, _fmt(value, 3), f"[{_fmt(low, 3)}, {_fmt(high, 3)}]" if low is not None else "n/a"]
        )
    title = f"routing curve ({report.metric}): 95% bootstrap intervals, {bands.resamples} resamples of {unit}"
    print_table(console, title, ("figure", "value", "95% interval"), rows)
    console.print(f"AIQ's cost axis: {bands.cost_axis}")


def _print_target(target: TargetResult, metric: str, console: Any) -> None:
    def interval(name: str) -> str:
        low, high = target.intervals.get(name, (float("nan"), float("nan")))
        return f"[{_fmt(low)}, {_fmt(high)}]"

    calib, held = target.calibration, target.held_out
    console.print(
        f"target {target.target}: threshold {target.threshold:.4f} picked on {target.n_calibration} "
        f"calibration reviews{'' if target.reached else ' (target not reached)'}"
    )
    console.print(f"  calibration: escalated {calib.share:.1%}, {metric} {_fmt(calib.metrics[metric])}")
    console.print(
        f"  held-out ({target.n_held_out}): escalated {held.share:.1%} {interval('share_escalated')}, "
        f"{metric} {_fmt(held.metrics[metric])} {interval(metric)}; small-only "
        f"{_fmt(target.held_out_small[metric])}, large-only {_fmt(target.held_out_large[metric])}"
    )


def _print_certified(result: CertifiedResult, console: Any) -> None:
    c = result.certificate
    name = f"{c.metric}>={c.target:g}"
    scope = "the population" if c.batch is None else f"a batch of {c.batch} new reviews"
    head = (f"guarantee {name} on {scope} with probability {1 - c.delta:g} (delta {c.delta:g}), "
            f"{c.n_calibration} calibration reviews")  # fmt: skip
    if c.threshold is None or result.held_out is None:
        console.print(f"{head}: nothing can be certified")
        where = f"at the best threshold on {c.n_ordering} ordering reviews ({c.start:.9g}, {c.start_share:.1%} escalated)"
        if c.reviews_needed is None:
            console.print(f"  {where} the error rate is {c.observed_error:.4f}, not below {1 - c.target:.4f}: "
                          "no number of calibration reviews would certify the target")  # fmt: skip
        else:
            console.print(f"  {where} the error rate is {c.observed_error:.4f}: about {c.reviews_needed} "
                          "calibration reviews would certify it at that rate")  # fmt: skip
    else:
        low, high = result.intervals.get("share_escalated", (float("nan"), float("nan")))
        console.print(f"{head}: certified threshold {c.threshold:.9g}, escalating {c.share:.1%} of the testing "
                      f"reviews ({c.metric} {_fmt(c.calibration_quality)}, lower bound {_fmt(c.bound)}, p = {c.p_value:.3g})")  # fmt: skip
        spread = result.intervals.get(c.metric)
        console.print(f"  held-out: {result.held_out.share:.1%} [{_fmt(low, 3)}, {_fmt(high, 3)}] escalated, "
                      f"{c.metric} {_fmt(result.held_out_quality)}"
                      + (f" [{_fmt(spread[0])}, {_fmt(spread[1])}]" if spread else "")
                      + ("" if result.held_out.usd_per_1000 is None
                         else f", {_usd(result.held_out.usd_per_1000)} per 1,000 reviews"))  # fmt: skip
    if result.best_on_calibration is None:
        console.print(
            f"  uncertified best on calibration: no threshold reaches {name} on the calibration half"
        )
    else:
        console.print(f"  uncertified best on calibration: threshold {result.best_on_calibration:.9g}, "
                      f"{result.best_on_calibration_share:.1%} escalated, held-out {c.metric} "
                      f"{_fmt(result.best_on_calibration_held_out)}")  # fmt: skip


def _print_coverage(rows: list[CoverageRow], certificate: Any, console: Any) -> None:
    name = f"{certificate.metric}>={certificate.target:g}"
    first = rows[0]
    shown: list[list[str]] = []

    def add(pick: str, delta: str, tally: Any) -> None:
        shown.append([pick, delta, f"{tally.promised}/{first.splits}",
                      f"{tally.missed} ({tally.missed / first.splits:.1%})",
                      "n/a" if tally.share is None else f"{tally.share:.1%}"])  # fmt: skip

    for row in rows:
        add("certified for the population", f"{row.delta:g}", row.certified)
        if row.batch_certified.promised or certificate.metric == "accuracy":
            add(f"certified for a batch of {row.batch}", f"{row.delta:g}", row.batch_certified)
    add("best on calibration (uncertified)", "", first.best_on_calibration)
    title = (
        f"coverage of {name} over {first.splits} random calibration/held-out splits ({first.batch} held out)"
    )
    headers = ("pick", "delta", "promised", "missed held out", "escalated held out")
    print_table(console, title, headers, shown)
    console.print("a miss: the pick promised the target and the held-out half fell short; a batch certificate "
                  "allows misses in at most delta of the splits")  # fmt: skip


def _print_routers(rows: list[RouterScore], metric: str, console: Any) -> None:
    title = f"routers on the held-out half ({metric}; learned, embedding: fitted on the calibration half)"
    headers = ("router", "APGR", "escalated for 50% of the gap", "escalated for 80%", f"best {metric}",
               "escalated there")  # fmt: skip
    shown = [[row.router, _fmt(row.apgr, 3), _fmt(row.share_for_50, 3), _fmt(row.share_for_80, 3),
              _fmt(row.best_quality), f"{row.best_share:.1%}"] for row in rows]  # fmt: skip
    print_table(console, title, headers, shown)


def _default_run_dir(task: str, models: Sequence[str]) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(["sweep", task, *models]))
    return Path("runs") / slug


def sweep_location(
    run_dir: Path, board: Board, cache_path: Path | None
) -> tuple[Path, Path | None, Path | None]:
    """Where a sweep writes its rows, and the cache and fine-tuned weights it reuses.

    `--out` may name another command's run directory, to reuse its cache:
    that run's results.json and predictions.jsonl stay as they are, and the
    sweep writes into a sub-directory sharing the run's cache and weights.
    """
    if not _holds_another_run(run_dir, board):
        return run_dir, cache_path, None
    own = run_dir / _default_run_dir(board.tasks[0], [entry.spec for entry in board.models]).name
    return own, cache_path or run_dir / "cache.sqlite", run_dir / "models"


def _holds_another_run(run_dir: Path, board: Board) -> bool:
    """True when run_dir holds the results of another command than a sweep (a sweep's own are replaced)."""
    results = run_dir / "results.json"
    if not results.exists():
        return False
    try:
        return bool(json.loads(results.read_text(encoding="utf-8")).get("board") != board.name)
    except (OSError, ValueError, AttributeError):
        return True


def board_for_sweep(models: Sequence[str], task: str, opts: Mapping[str, Any]) -> Board:
    """The one-task board a sweep runs (two or three models), from the same options as `harness run`."""
    entries = [ModelEntry(spec=spec) for spec in models]
    return board_from_options(opts, Board(name="sweep", tasks=[task_name(task)], models=entries))


def check_sweep_flags(models: Sequence[str], opts: Mapping[str, Any]) -> None:
    """Refuse flags that contradict each other or the number of models, before anything runs."""
    if len(models) not in (2, 3):
        raise HarnessError(f"a sweep needs two models (small, large) or three (a cascade), got {len(models)}")
    if opts.get("target_share") is not None and opts.get("target_metric"):
        raise HarnessError("give --target-share or --target-metric, not both")
    if (opts.get("deltas") or opts.get("coverage_splits") or opts.get("batch")) and not opts.get("guarantee"):
        raise HarnessError("--delta, --batch and --coverage-splits need --guarantee METRIC>=VALUE")
    if opts.get("write_board") and len(models) != 3:
        raise HarnessError("--write-board writes the cascades of a three-model sweep: give three models")
    two_only = ("thresholds", "target_share", "target_metric", "temperature", "guarantee", "compare_routers")
    if len(models) == 3 and any(opts.get(name) for name in two_only):
        raise HarnessError("a three-model sweep takes --shares only: --" + ", --".join(
            name.replace("_", "-") for name in two_only if opts.get(name)) + " need two models")  # fmt: skip


def settings_from_options(opts: Mapping[str, Any], board: Board) -> SweepSettings:
    """The replay settings `harness sweep`'s flags ask for; seed and resamples are the board's."""
    from harness.plugins.routing._certify import parse_guarantee

    guarantee = parse_guarantee(opts["guarantee"]) if opts.get("guarantee") else None
    if opts.get("batch") and guarantee is not None and guarantee[0] != "accuracy":
        raise HarnessError("--batch promises accuracy only: a batch's class mix is not known in advance")
    return SweepSettings(
        router=opts.get("router") or "confidence",
        shares=parse_thresholds(opts.get("shares") or DEFAULT_SHARES),
        thresholds=parse_thresholds(opts["thresholds"]) if opts.get("thresholds") else None,
        metric=opts.get("metric"),
        target_share=opts.get("target_share"),
        target_metric=parse_target_metric(opts["target_metric"]) if opts.get("target_metric") else None,
        temperature=bool(opts.get("temperature")),
        guarantee=guarantee,
        deltas=list(opts.get("deltas") or ()) or [0.1],
        batch=opts.get("batch"),
        coverage_splits=opts.get("coverage_splits") or 0,
        compare_routers=bool(opts.get("compare_routers")),
        seed=board.seed,
        bootstrap=board.bootstrap,
    )


def sweep_and_report(
    host: PluginHost, board: Board, settings: SweepSettings, run_dir: Path, console: Any, *,
    cache_path: Path | None = None, from_run: Path | None = None, write_board: bool = False,
    view: View | None = None,
) -> list[Path]:  # fmt: skip
    """What `harness sweep` does once its flags are read: run the board's models (or replay `from_run`'s
    predictions), print the sweep or the cascade, and write its files; returns the files written."""
    from harness import preflight
    from harness.progress import progress_for_stderr

    models = [entry.spec for entry in board.models]
    run_dir, cache_path, model_dir = sweep_location(run_dir, board, cache_path)
    if from_run is not None:
        path = finished_predictions(from_run)
        task = host.registries.tasks.build(board.tasks[0], board.task_options[board.tasks[0]])
        run_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
    else:
        preflight(host, board, run_dir, cache_path=cache_path).raise_problems()
        with progress_for_stderr() as progress:
            task, results = run_models(host, board, run_dir, RunSettings(cache_path, model_dir, progress))
        for row in results["rows"]:
            console.print(f"{row['model']}: {row['computed']} computed, {row['cached']} from the cache")
        path = run_dir / "predictions.jsonl"
        written = [run_dir / "results.json", path]
    if len(models) == 3:
        return [*_cascade(host, path, task, models, settings, run_dir, console, write_board), *written]
    from harness.plugins.routing._replay import read_pair

    pair = read_pair(path, task.name, task.labels, models[0], models[1])
    report = replay_sweep(pair, task, host, models[0], models[1], settings)
    print_report(report, console, view)
    return [*write_outputs(report, run_dir), *written]


def _cascade(
    host: PluginHost, path: Path, task: Task, models: Sequence[str], settings: SweepSettings, run_dir: Path,
    console: Any, write_board: bool,
) -> list[Path]:  # fmt: skip
    """Replay a three-model cascade, print it and write its files (and the board of its picks if asked)."""
    from harness.plugins.routing import _cascade as cascade

    three = cascade.cascade_report(path, task, host, models, settings)
    cascade.print_cascade(three, console)
    written = cascade.write_cascade(three, run_dir)
    if write_board:
        from harness.files import atomic_write
        from harness.results import read_results

        config = read_results(path.parent)["config"]
        board_path = run_dir / "cascade-board.toml"
        atomic_write(board_path, cascade.board_toml(three, config))
        console.print(f"run the picked cascades with: harness run --board {board_path}")
        written.append(board_path)
    return written


@click.command(name="sweep", epilog=EXIT_CODES)
@click.argument("models", nargs=-1, required=True)
@click.option("--task", required=True, help="Task to sweep, e.g. polarity.")
@board_options("data", "dataset", "categories", "limit", "backend", limit="Score at most N examples.",
               backend="cpu, cuda, mps or auto.")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory [default: runs/sweep-TASK-MODELS].")  # fmt: skip
@click.option("--from-run", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Replay a finished run's predictions.jsonl instead of running the models.")  # fmt: skip
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Prediction cache file [default: RUN_DIR/cache.sqlite].")  # fmt: skip
@board_options("seed", "task_opts", "model_opts", "backend_opts", "text_col", "stars_col", "category_col",
               "title_col", "cluster_col",
               seed="Seed for splits, fine-tuning and the calibration half [default: 0].",
               task_opts="KEY=VALUE for the task (repeatable).", model_opts="KEY=VALUE for both models (repeatable).",
               backend_opts="KEY=VALUE for the backend.", cluster_col="Column grouping reviews for intervals "
               "[default: product_id where the data has it]; 'none' resamples reviews.")  # fmt: skip
@click.option("--router", default="confidence", show_default=True, help="confidence, margin or entropy.")
@click.option("--shares", default=DEFAULT_SHARES, show_default=True,
              help="Shares escalated to put thresholds at (quantiles of the router's score): "
                   "START:STOP:STEP (inclusive) or a comma list.")  # fmt: skip
@click.option("--thresholds", help="Raw thresholds instead of --shares: START:STOP:STEP or a comma list.")
@click.option("--metric", help="Headline metric for APGR and the plot [default: macro_f1].")
@click.option("--target-share", type=click.FloatRange(0, 1),
              help="Pick the threshold escalating this share on a calibration half.")  # fmt: skip
@click.option(
    "--target-metric", help="Pick the cheapest threshold reaching METRIC=VALUE on a calibration half."
)
@click.option(
    "--temperature", is_flag=True, help="Temperature-scale the small model on the calibration half."
)
@click.option("--guarantee", help="Certify the least escalating threshold reaching METRIC>=VALUE "
              "(accuracy or class_accuracy) on a calibration half, e.g. accuracy>=0.9.")  # fmt: skip
@click.option("--delta", "deltas", type=click.FloatRange(0, 1, min_open=True, max_open=True), multiple=True,
              help="Allowed chance that a certified threshold misses the target [default: 0.1]; repeatable.")  # fmt: skip
@click.option("--batch", type=click.IntRange(min=1),
              help="With --guarantee (accuracy): promise it for a batch of this many new reviews.")  # fmt: skip
@click.option("--coverage-splits", type=click.IntRange(min=0), default=0,
              help="With --guarantee: certify on this many random splits and count held-out misses.")  # fmt: skip
@click.option("--compare-routers", is_flag=True, help="Score confidence, margin, entropy and the routers "
              "learned on the calibration half (embedding too, where the small model gives embeddings), "
              "on the held-out half.")  # fmt: skip
@click.option("--write-board", is_flag=True, help="Three models: also write cascade-board.toml, a board "
              "running the cascade at the pair of thresholds picked for each share of the gap.")  # fmt: skip
@board_options("bootstrap")
@view_options
def sweep_command(models: tuple[str, ...], **opts: Any) -> None:
    """Sweep the routing thresholds of SMALL>LARGE (or A>B>C) on one task, replayed from one run of each model.

    \b
    Writes sweep.csv, sweep.json and sweep.png (cascade.* for three models) into the run directory, e.g.
      harness sweep minilm smollm2 --task polarity --target-share 0.2 --temperature
      harness sweep minilm smollm2 --task polarity --guarantee 'accuracy>=0.9' --delta 0.1
      harness sweep minilm distilbert smollm2 --task polarity --write-board
    """
    from rich.console import Console

    from harness import get_host

    check_sweep_flags(models, opts)
    board = board_for_sweep(models, opts["task"], opts)
    settings = settings_from_options(opts, board)
    view = View(opts.pop("columns"), opts.pop("wide"))
    console = Console(width=UNFOLDED if view.wide else view.console_width())
    run_dir = opts["out"] or _default_run_dir(opts["task"], models)
    written = sweep_and_report(get_host(), board, settings, run_dir, console, cache_path=opts["cache_path"],
                               from_run=opts["from_run"], write_board=opts["write_board"], view=view)  # fmt: skip
    for path in written:
        click.echo(f"wrote {path}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(sweep_command)
