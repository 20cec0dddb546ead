"""MkDocs hooks: the CLI reference sees every built-in command, and measured figures render from records.

A page asks for a table with a comment line of its own, `<!-- results: bench.json -->`; the hook replaces
it with the table built from docs/results/bench.json, a record that tools/record_timing.py wrote, headed
by the command, machine and date that produced it. A record not made yet renders as a note naming the
file, so the site builds before anything is measured; a record of an unknown shape fails the build.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
DIRECTIVE = re.compile(r"^<!-- results: (?P<name>[\w.-]+\.json) -->$", re.MULTILINE)


def on_config(config: Any) -> Any:
    """Add the plugins' commands (bench, sweep, compare, ...) to the click group mkdocs-click documents.

    Built-in plugins only, so the reference does not depend on what else is installed where it builds.
    """
    os.environ["HARNESS_LOAD_PLUGINS"] = ""
    from harness.cli import cli
    from harness.plugin_manager import get_host

    get_host().add_commands(cli)
    return config


def on_page_markdown(markdown: str, **_: Any) -> str:
    return DIRECTIVE.sub(lambda match: render_file(RESULTS / match["name"]), markdown)


def render_file(path: Path) -> str:
    if not path.exists():
        return (
            f'!!! note "Not measured yet"\n    No record in `docs/results/{path.name}` yet: run the command '
            "above through `tools/record_timing.py` and commit the file it writes.\n"
        )
    return render(json.loads(path.read_text()), path.name)


def render(content: dict[str, Any], name: str) -> str:
    if "records" in content:
        return timings_table(content["records"])
    result = content.get("result")
    if isinstance(result, dict) and "agreement" in result:
        return provenance(content) + "\n\n" + served_parity(content)
    if isinstance(result, dict) and "checks" in result:
        return provenance(content) + "\n\n" + bench_table(result["checks"]) + bench_details(result)
    if isinstance(result, dict) and "rows" in result:
        return provenance(content) + "\n\n" + rows_tables(result["rows"])
    raise ValueError(
        f"docs/results/{name}: neither timings, a bench.json, a results.json nor a served-parity record"
    )


def machine_text(machine: dict[str, Any]) -> str:
    memory = f", {machine['memory_gib']} GiB" if machine.get("memory_gib") else ""
    return f"{machine.get('cpu', 'unknown processor')} ({machine.get('cores', '?')} cores{memory})"


def load_text(load: dict[str, list[float]]) -> str:
    return f"{load['before'][0]:g} before, {load['after'][0]:g} after"


def provenance(record: dict[str, Any]) -> str:
    commit = f", commit `{record['git_commit'][:10]}`" if record.get("git_commit") else ""
    return (
        f"Measured by `{record['command']}` on {machine_text(record['machine'])}, "
        f"{record['date'][:10]} (load average {load_text(record['load_average'])}; "
        f"{duration(record['wall_s'])}{commit})."
    )


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:g} s"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def timings_table(records: list[dict[str, Any]]) -> str:
    rows = [
        [
            f"`{r['command']}`",
            duration(r["wall_s"]),
            f"{r['peak_rss_mib']:,} MiB" if "peak_rss_mib" in r else "",
            machine_text(r["machine"]),
            r["date"][:10],
            load_text(r["load_average"]),
            f"`{r['git_commit'][:10]}`" if r.get("git_commit") else "",
        ]
        for r in records
    ]
    header = [
        "command",
        "wall time",
        "peak memory (largest process)",
        "machine",
        "date",
        "load average (1 min)",
    ]
    return table([*header, "commit"], rows)


def bench_table(checks: list[dict[str, Any]]) -> str:
    rows = [
        [c["part"], c["figure"], f"{c['value']:.4g}", c["target"], "met" if c["passed"] else "not met"]
        for c in checks
    ]
    return table(["part", "figure", "measured", "target", ""], rows)


def bench_details(report: dict[str, Any]) -> str:
    """Every speed-up path, encoder engine and LLM task, as `harness bench` itself prints them."""
    from harness.plugins.bench.command import render_encoder_engines, render_llm, render_paths

    text = render_paths(report)
    engines = report.get("scoring", {}).get("encoder_engines")
    if engines:
        text += render_encoder_engines(engines) + "\n"
    if report.get("llm", {}).get("by_task"):
        text += render_llm(report["llm"]) + "\n"
    return f"\n```text\n{text}```\n" if text else ""


def rows_tables(rows: list[dict[str, Any]]) -> str:
    """One table per task: each model's metrics with the half-width of their 95% interval."""
    parts = []
    for task in dict.fromkeys(row["task"] for row in rows):
        task_rows = [row for row in rows if row["task"] == task]
        metrics = list(dict.fromkeys(name for row in task_rows for name in row.get("metrics", {})))
        clustered = any(row.get("clustering") for row in task_rows)
        cells = [
            [row.get("label") or row["model"], row["status"], str(row.get("n", ""))]
            + [metric_text(row, name) for name in metrics]
            + ([clustering_text(row.get("clustering") or {})] if clustered else [])
            for row in task_rows
        ]
        extra = ["clusters (design effect)"] if clustered else []
        parts.append(f"**{task}**\n\n" + table(["model", "status", "reviews", *metrics, *extra], cells))
    return "\n".join(parts)


def clustering_text(clustering: dict[str, Any]) -> str:
    """How many clusters the intervals resampled, by which column, and each metric's design effect."""
    if not clustering:
        return "reviews"
    effects = clustering.get("design_effect") or {}
    shown = ", ".join(f"{name} {value:.2f}" for name, value in effects.items() if value is not None)
    return f"{clustering['clusters']:,} {clustering['column']} ({shown})"


def metric_text(row: dict[str, Any], name: str) -> str:
    value = row.get("metrics", {}).get(name)
    if value is None:
        return ""
    low_high = row.get("intervals", {}).get(name)
    if not low_high:
        return f"{value:.3f}"
    return f"{value:.3f} ± {(low_high[1] - low_high[0]) / 2:.3f}"


def served_parity(record: dict[str, Any]) -> str:
    """tools/served_parity.py's record: the run it made, each row, and how alike the two rows answer."""
    result = record["result"]
    server = record["server"]
    version = f" {server['version']}" if server.get("version") else ""
    metrics = list(dict.fromkeys(name for row in result["rows"] for name in row["metrics"]))
    cells = [
        [
            row["label"],
            ", ".join(row.get("scoring_mode", ["in-process"])),
            str(row.get("shots", "")),
            str(row.get("calibration", "")),
            str(row["n"]),
            *[metric_text(row, name) for name in metrics],
            seconds_pair(row.get("request_latency_p50_s"), row.get("request_latency_p95_s")),
            seconds_pair(*per_review(row)),
        ]
        for row in result["rows"]
    ]
    header = ["model", "scoring", "shots", "calibration", "reviews", *metrics]
    header += ["per request p50 / p95", "per review p50 / p95"]
    agreement = result["agreement"]
    difference = result["probability_difference"]
    return (
        f"`{record['harness_command']}`, against {server['program']}{version} serving the packaged "
        f"SmolLM2 as `{server['served_name']}`.\n\n"
        + table(header, cells)
        + f"\nThe two answer alike on {agreement['same']} of {result['reviews']} reviews "
        f"({100 * agreement['share']:.1f}%); label probabilities differ by {difference['p95']:.2g} at the "
        f"95th percentile, {difference['largest']:.2g} at most.\n"
    )


def per_review(row: dict[str, Any]) -> tuple[float | None, float | None]:
    """A served row's own per-review seconds, else the runner's latency (a batch's time shared)."""
    if "review_seconds_p50" in row:
        return row["review_seconds_p50"], row["review_seconds_p95"]
    latency = row.get("latency") or {}
    return latency.get("p50_s"), latency.get("p95_s")


def seconds_pair(p50: float | None, p95: float | None) -> str:
    return "" if p50 is None or p95 is None else f"{p50:.3g} s / {p95:.3g} s"
