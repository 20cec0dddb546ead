"""When a run ends: what its board found into results.json, then the leaderboard files (Markdown, HTML, plots)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import RunInfo, hookimpl
from harness.files import atomic_write, write_json
from harness.results import RESULTS_FILE, leaderboard_rows

RUN_PLOTS = ("pareto_*.png", "slices_*.png", "confusion_*.png", "per_class_*.png")  # what write_plots draws


def write_run_outputs(run_dir: Path) -> list[Path]:
    """leaderboard.md, leaderboard.html and the plots of one run; returns the paths written.

    The text formats come first, so a plotting failure still leaves the tables;
    the HTML page is written again once the plots exist, to embed them.
    """
    from harness.leaderboard._html import render_html
    from harness.leaderboard._plots import write_plots
    from harness.leaderboard.exporters import render_markdown

    rows = leaderboard_rows([run_dir])
    written = []
    for name, render in (("leaderboard.md", render_markdown), ("leaderboard.html", render_html)):
        atomic_write(run_dir / name, render(rows))
        written.append(run_dir / name)
    plots = write_plots(run_dir, rows)
    for pattern in RUN_PLOTS:  # an earlier run's plot of models or tasks this run does not have
        for stale in set(run_dir.glob(pattern)) - set(plots):
            stale.unlink()
    atomic_write(run_dir / "leaderboard.html", render_html(rows))
    return written + plots


def add_findings(run_dir: Path, results: dict[str, Any]) -> None:
    """results.json gains `findings`: each task's sentences and the figures behind them, for other tools."""
    from harness.leaderboard._findings import board_findings

    results["findings"] = [f.as_dict() for f in board_findings(leaderboard_rows([run_dir]), stored=False)]
    write_json(run_dir / RESULTS_FILE, results)


@hookimpl
def on_run_end(run: RunInfo, results: dict[str, Any]) -> None:
    add_findings(Path(run.run_dir), results)
    write_run_outputs(Path(run.run_dir))
