"""Multi-seed runs: the board once per seed, then one leaderboard of means, spreads and combined intervals.

Seed N runs into RUN_DIR/seed-N/ (a complete run directory of its own); all
seeds share one prediction cache and one model work directory, so whatever
does not depend on the varied components (VADER, a ready checkpoint, a
fine-tuning held fixed) is computed once. RUN_DIR/results.json then holds one
row per model and task: the mean of each metric over the seeds, its spread
(sample standard deviation, minimum, maximum), every seed's value and review
bootstrap interval, and a combined 95% interval from a two-level bootstrap
(seeds resampled, then reviews; see `harness.intervals.two_level_draws`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from harness import provenance
from harness.boards import Board
from harness.errors import HarnessError
from harness.files import RunDirLock, write_json
from harness.intervals import percentile_interval, resampling_units, spread, two_level_draws
from harness.metrics import resolve
from harness.plugin_manager import PluginHost
from harness.results import RESULTS_FILE
from harness.run_settings import ProgressSink, RunSettings
from harness.runner import Runner, Scored, now
from harness.types import RunInfo

COMBINED_INTERVAL = (
    "two-level bootstrap, 95%: each draw resamples the seeds with replacement and, once, every review (or "
    "cluster of reviews, where the row is clustered) any seed scored; each seed drawn is measured on the copies of its own reviews, and the draw is the mean "
    "over the seeds drawn"
)
# Row fields that describe the row rather than measure it: taken from the first seed.
DESCRIPTIVE = ("task", "model", "label", "added_metrics", "counts", "load_issues", "backend", "clustering")


def seed_dir(run_dir: Path, seed: int) -> Path:
    return run_dir / f"seed-{seed}"


class SeedProgress:
    """Prefixes the runner's progress labels with the seed being run."""

    def __init__(self, inner: ProgressSink, seed: int) -> None:
        self.inner, self.seed = inner, seed

    def start(self, label: str, total: int | None) -> None:
        self.inner.start(f"seed {self.seed} · {label}", total)

    def advance(self, count: int) -> None:
        self.inner.advance(count)

    def stop(self, outcome: str = "done") -> None:
        self.inner.stop(outcome)


def refuse_mixed_run_dir(run_dir: Path, multi_seed: bool) -> None:
    """A single-seed and a multi-seed run never share a directory: neither may overwrite the other."""
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        return
    from harness.results import read_results

    try:
        holds_seeds = "seeds" in read_results(run_dir)
    except HarnessError:
        return  # unreadable: the run rewrites it
    if holds_seeds != multi_seed:
        held, asked = ("a multi-seed", "a single-seed") if holds_seeds else ("a single-seed", "a multi-seed")
        hint = " (reuse its predictions with --cache DIR/cache.sqlite)" if multi_seed else ""
        raise HarnessError(f"{run_dir} holds {held} run; give {asked} run another --out{hint}")


def run_seeds(
    host: PluginHost,
    board: Board,
    run_dir: Path,
    settings: RunSettings | None = None,
) -> dict[str, Any]:
    """Run `board` once per seed in `board.seeds` and write the pooled results.json into `run_dir`; the seeds
    share the run's cache and model directory."""
    resolve(
        board.metrics, host.registries.metrics
    )  # a wrong metric name is refused before the run dir exists
    with RunDirLock(run_dir):
        info = RunInfo(run_dir, board, now())
        host.notify("on_run_start", run=info)
        settings = settings or RunSettings()
        shared = RunSettings(settings.cache_in(run_dir), settings.models_in(run_dir))
        progress = settings.progress
        runs: list[tuple[dict[str, Any], dict[tuple[str, str, str], Scored]]] = []
        for seed in board.seeds:
            seed_progress = SeedProgress(progress, seed) if progress is not None else None
            runner = Runner(
                host, board.for_seed(seed), seed_dir(run_dir, seed), replace(shared, progress=seed_progress)
            )
            runs.append((runner.run(), runner.scored))
        results = {
            "schema": 1,
            "board": board.name,
            "started": info.started,
            "finished": now(),
            "config": board.as_dict(),
            "backend": runs[0][0]["backend"],
            "provenance": provenance.collect(),
            "seeds": {
                "seeds": list(board.seeds),
                "vary": list(board.vary),
                "fixed_seed": board.seed,
                "runs": {str(seed): seed_dir(run_dir, seed).name for seed in board.seeds},
                "interval": COMBINED_INTERVAL,
            },
            "rows": pool_rows(board, [r for r, _ in runs], [s for _, s in runs]),
        }
        write_json(run_dir / RESULTS_FILE, results)
        host.notify("on_run_end", run=info, results=results)
    return results


def pool_rows(
    board: Board,
    per_seed: Sequence[dict[str, Any]],
    scored: Sequence[dict[tuple[str, str, str], Scored]],
) -> list[dict[str, Any]]:
    """One row per model and task over every seed; the seeds' rows come in the same order."""
    pooled = []
    for rows in zip(*(results["rows"] for results in per_seed), strict=True):
        key = (rows[0]["task"], rows[0]["model"], rows[0]["label"])
        found = [s.get(key) for s in scored]
        if all(r["status"] == "ok" for r in rows) and None in found:
            raise HarnessError(f"internal: seed rows of {key} are missing their predictions")
        pooled.append(pool_row(board, list(rows), [s for s in found if s]))
    return pooled


def combined_intervals(board: Board, scored: list[Scored]) -> dict[str, list[float]]:
    """The two-level bootstrap 95% interval of each metric's mean over the seeds; where the reviews fall
    into clusters, the second level resamples clusters."""
    if board.bootstrap < 1 or min(len(s.gold) for s in scored) < 2:
        return {}

    def measure(s: int, index: np.ndarray) -> dict[str, float]:
        return scored[s].metrics(scored[s].gold[index], scored[s].probs[index])

    units = [resampling_units(s.ids, s.clusters or None) for s in scored]
    draws = two_level_draws(measure, units, resamples=board.bootstrap, seed=board.seed)
    return {name: list(percentile_interval(values)) for name, values in draws.items()}


def pool_row(board: Board, rows: list[dict[str, Any]], scored: list[Scored]) -> dict[str, Any]:
    """The mean, spread and combined interval of one model on one task over the seeds."""
    row: dict[str, Any] = {key: rows[0][key] for key in DESCRIPTIVE}
    row["notes"] = list(dict.fromkeys(note for r in rows for note in r["notes"]))
    failed = [(seed, r) for seed, r in zip(board.seeds, rows, strict=True) if r["status"] != "ok"]
    if failed:
        seed, first = failed[0]
        return {**row, "status": "error", "error": f"seed {seed}: {first['error']}", "metrics": {},
                "intervals": {}, "n": 0}  # fmt: skip
    metrics, per_metric = {}, {}
    for name in rows[0]["metrics"]:
        values = [float(r["metrics"][name]) for r in rows]
        stats = spread(values)
        metrics[name] = stats["mean"]
        per_metric[name] = {**stats, "values": values, "intervals": [r["intervals"].get(name) for r in rows]}
    same = all(s.ids == scored[0].ids and np.array_equal(s.probs, scored[0].probs) for s in scored)
    # Seeds that scored the same reviews the same way leave only the reviews to resample: the two-level
    # bootstrap is then the review bootstrap, which the first seed's run has already drawn.
    intervals = rows[0]["intervals"] if same else combined_intervals(board, scored)
    runtime = statistics.fmean(r["runtime_s"] for r in rows)
    n = round(statistics.fmean(r["n"] for r in rows))
    return {
        **row,
        "status": "ok",
        "error": None,
        "metrics": metrics,
        "intervals": intervals,
        "n": n,
        "runtime_s": runtime,
        "fit_s": statistics.fmean(r["fit_s"] for r in rows),
        "choose_s": sum(r.get("choose_s", 0.0) for r in rows),
        "reviews_per_s": n / runtime if runtime > 0 else None,
        "truncated": round(statistics.fmean(r["truncated"] for r in rows)),
        "cached": sum(r["cached"] for r in rows),
        "computed": sum(r["computed"] for r in rows),
        "extra": pool_extra([r["extra"] for r in rows]),
        # one seed's run: the mean cost and latency, as runtime is the mean runtime
        "cost": pool_extra([r.get("cost") or {} for r in rows]),
        "latency": pool_extra([r.get("latency") or {} for r in rows]),
        "seed_stats": {
            "seeds": list(board.seeds),
            "vary": list(board.vary),
            "n": [r["n"] for r in rows],
            # Nothing the row depends on was varied: every seed scored the same reviews the same way.
            "same_predictions": same,
            "metrics": per_metric,
        },
    }


def pool_extra(extras: list[dict[str, Any]]) -> dict[str, Any]:
    """Numbers every seed reports (a hybrid's escalated share, dollars, latency) are averaged; the rest
    is the first seed's."""
    pooled = dict(extras[0])
    for key in extras[0]:
        values = [e.get(key) for e in extras]
        numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == len(values):
            pooled[key] = statistics.fmean(numbers)
    return pooled
