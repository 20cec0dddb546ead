"""The sweep's picture: quality against share escalated and against runtime, beside the reference curves.

matplotlib is imported here only, and drawn through the Agg canvas directly,
so plotting never depends on a display or on pyplot's global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.leaderboard._plots import save_png
from harness.plugins.routing._replay import Point


def plot_sweep(
    path: Path,
    metric: str,
    curve: Sequence[Point],
    oracle: Sequence[Point],
    small: Point,
    large: Point,
    *,
    title: str,
    chosen: Point | None = None,
    band: tuple[Sequence[float], Sequence[float]] | None = None,
    certified: Point | None = None,
) -> Path:
    """Write a two-panel PNG: metric vs share escalated (left) and metric vs runtime (right).

    `band` is the curve's 95% bootstrap band (low, high per threshold); `certified` the held-out point of
    the certified threshold, drawn as a vertical line at its share escalated.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    by_share, by_time = figure.subplots(1, 2, sharey=True)
    for axes, x in ((by_share, "share"), (by_time, "runtime_s")):
        axes.plot([getattr(p, x) for p in curve], [p.metrics[metric] for p in curve],
                  "o-", markersize=3, label="router thresholds")  # fmt: skip
        axes.plot([getattr(p, x) for p in oracle], [p.metrics[metric] for p in oracle],
                  "--", color="grey", label="oracle")  # fmt: skip
        if band is not None:
            axes.fill_between([getattr(p, x) for p in curve], band[0], band[1], alpha=0.25,
                              label="95% band")  # fmt: skip
        if chosen is not None:
            axes.plot(getattr(chosen, x), chosen.metrics[metric], "*", markersize=12, color="red",
                      label=f"chosen ({chosen.curve})")  # fmt: skip
    for point, colour in ((small, "tab:green"), (large, "tab:purple")):
        by_share.axhline(point.metrics[metric], linestyle=":", color=colour, label=point.curve)
        by_time.plot(point.runtime_s, point.metrics[metric], "s", color=colour, label=point.curve)
    if certified is not None:
        by_share.axvline(
            certified.share, color="red", linestyle="-.", linewidth=1, label="certified threshold"
        )
    by_share.set_xlabel("share of reviews escalated to the large model")
    by_share.set_xlim(-0.02, 1.02)
    by_share.set_ylabel(metric)
    by_time.set_xlabel("runtime (s, summed per-review model time)")
    by_share.legend(loc="lower right", fontsize="small")
    by_time.legend(loc="lower right", fontsize="small")
    figure.suptitle(title)
    save_png(figure, path, dpi=110)
    return path
