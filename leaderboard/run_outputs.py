"""Writes the leaderboard files into the run directory when a run ends: Markdown, HTML and PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.files import atomic_write
from harness.hookspecs import hookimpl
from harness.results import leaderboard_rows

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


@hookimpl
def on_run_end(run: Any, results: dict[str, Any]) -> None:
    write_run_outputs(Path(run.run_dir))
