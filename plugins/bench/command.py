"""`harness bench`: the performance figures of the README, measured as ratios inside one run.

Every speed figure is a ratio against a baseline timed in the same process on
the same machine, so the figures hold on a shared or busy machine where
absolute seconds do not. Parts (``--only``): ``small`` (DistilBERT-base on
CPU: the harness' inference against the study's one-pipeline-call-per-review
way, plus the GFLOP/s reached against the peak of the kernel the fast path
runs: int8 dynamic linear or matrix multiply),
``quality`` (the speed-ups' argmax agreement with float32 on a fine-tuned
MiniLM), ``scoring`` (shared-encoder label scoring against a full pass per
label), ``overhead`` (a run's time outside forward passes) and ``memory``
(peak RSS of a 1,000,000-row TSV against 10,000 rows).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from harness.hookspecs import hookimpl

PARTS = ("small", "quality", "scoring", "overhead", "memory")
DEFAULT_DATA = Path("../shared/data/blitzer_multidomain_sentiment.jsonl")
DEFAULT_TSV = Path("../shared/data/amazon_reviews_us_Gift_Card_v1_00.tsv")


@dataclass
class Check:
    """One line of the report: a figure, its target and whether it meets it."""

    part: str
    figure: str
    value: float
    target: str
    passed: bool


def checks_for(report: dict[str, Any]) -> list[Check]:
    """The targeted figures of whichever parts ran."""
    checks = []
    if small := report.get("small"):
        checks += [
            Check("small", "reviews/s, harness / study's pipeline", small["speedup"], ">= 4x",
                  small["speedup"] >= 4),
            Check("small", f"GFLOP/s share of {small.get('peak_kernel', 'matmul')} peak",
                  small["share_of_peak"], ">= 50%", small["share_of_peak"] >= 0.5),
            Check("small", "fp32 harness argmax = study's", small["fp32_harness_agrees_with_study"], "100%",
                  small["fp32_harness_agrees_with_study"] == 1.0),
        ]  # fmt: skip
    if quality := report.get("quality"):
        fast = quality["by_variant"][quality["fast_path"]]["argmax_agreement"]
        checks.append(
            Check("quality", "fast path argmax agreement with fp32", fast, ">= 99.5%", fast >= 0.995)
        )
    if scoring := report.get("scoring"):
        checks += [
            Check("scoring", "shared encoder / full pass per label", scoring["speedup"], ">= 3x",
                  scoring["speedup"] >= 3),
            Check("scoring", "max |log-likelihood difference|", scoring["max_abs_loglik_diff"], "<= 1e-4",
                  scoring["max_abs_loglik_diff"] <= 1e-4),
        ]  # fmt: skip
    if overhead := report.get("overhead"):
        share = overhead["overhead_share"]
        checks.append(Check("overhead", "run time outside forward passes", share, "< 5%", share < 0.05))
    if memory := report.get("memory"):
        diff = memory["difference_mb"]
        checks.append(Check("memory", "peak RSS, 1M rows - 10k rows (MB)", diff, "<= 300", diff <= 300))
    return checks


def render(checks: list[Check]) -> str:
    """A plain table: part, figure, value, target, PASS/FAIL."""
    width = max([40, *(len(check.figure) for check in checks)])
    lines = [f"{'part':<9} {'figure':<{width}} {'value':>10}  {'target':<9} result"]
    for check in checks:
        value = f"{check.value:.4g}"
        lines.append(
            f"{check.part:<9} {check.figure:<{width}} {value:>10}  {check.target:<9} "
            f"{'PASS' if check.passed else 'FAIL'}"
        )
    return "\n".join(lines) + "\n"


def run_parts(options: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Run the selected parts; each part's figures go under its name in the report."""
    from harness.plugins.bench import _small as bench_small

    fast = bench_small.VARIANTS[options["fast"]]
    data, parts = options["data"], options["only"]
    report: dict[str, Any] = {"parts": parts, "data": str(data), "fast_path": asdict(fast)}
    if "small" in parts:
        report["small"] = bench_small.speed(
            data, options["reviews"], options["variant_reviews"] or options["reviews"], workdir, fast
        )
    if "quality" in parts:
        report["quality"] = bench_small.quality(
            data, options["reviews"], workdir, options["minilm_dir"], options["train_reviews"], fast
        )
    if "scoring" in parts:
        from harness.plugins.bench import _scoring as bench_scoring

        texts = [e.text for e in bench_small.read_reviews(data, options["scoring_reviews"])]
        report["scoring"] = bench_scoring.scoring(texts, workdir)
    if "overhead" in parts:
        report["overhead"] = bench_small.overhead(data, options["reviews"], workdir, fast)
    if "memory" in parts:
        from harness.plugins.bench import _memory as bench_memory

        report["memory"] = bench_memory.memory(
            options["tsv"], workdir, options["memory_small_rows"], options["memory_rows"]
        )
    return report


def machine() -> dict[str, Any]:
    import os

    import torch

    from harness.provenance import cpu_name

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg())}  # fmt: skip


def parse_parts(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise click.BadParameter(f"choose from {', '.join(PARTS)} (comma separated), not {value!r}")
    return parts


@hookimpl
def register_commands(cli: Any) -> None:
    from harness.plugins.bench._small import DEFAULT_FAST, VARIANTS

    @cli.command()
    @click.option(
        "--only",
        default=",".join(PARTS),
        show_default=True,
        callback=parse_parts,
        help="Comma list of parts to run.",
    )
    @click.option(
        "--data",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=DEFAULT_DATA,
        show_default=True,
        help="JSON-lines reviews (review_body, star_rating).",
    )
    @click.option(
        "--tsv",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=DEFAULT_TSV,
        show_default=True,
        help="Release-format TSV repeated into the memory part's files.",
    )
    @click.option(
        "--reviews",
        type=click.IntRange(min=2),
        default=1000,
        show_default=True,
        help="Reviews scored by the small, quality and overhead parts.",
    )
    @click.option(
        "--variant-reviews",
        type=click.IntRange(min=2),
        default=200,
        show_default=True,
        help="Reviews each speed-up variant is timed on (0: --reviews).",
    )
    @click.option(
        "--fast",
        type=click.Choice(sorted(VARIANTS)),
        default=DEFAULT_FAST,
        show_default=True,
        help="The harness inference path the targets are checked on.",
    )
    @click.option(
        "--minilm-dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="A fine-tuned MiniLM checkpoint for the quality part (default: fine-tune one here).",
    )
    @click.option(
        "--train-reviews",
        type=click.IntRange(min=2),
        default=300,
        show_default=True,
        help="Reviews MiniLM is fine-tuned on when no --minilm-dir is given.",
    )
    @click.option(
        "--scoring-reviews",
        type=click.IntRange(min=1),
        default=12,
        show_default=True,
        help="Reviews the label-scoring part scores both ways.",
    )
    @click.option("--memory-rows", type=click.IntRange(min=1), default=1_000_000, show_default=True)
    @click.option("--memory-small-rows", type=click.IntRange(min=1), default=10_000, show_default=True)
    @click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("runs/bench"),
        show_default=True,
        help="Directory for bench.json.",
    )
    def bench(**options: Any) -> None:
        """Measure inference speed, label scoring, run overhead and memory against their targets."""  # fmt: skip
        from harness.command_helpers import quiet_model_libraries

        quiet_model_libraries()
        with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
            report = run_parts(options, Path(tmp))
        checks = checks_for(report)
        report["checks"] = [asdict(check) for check in checks]
        report["machine"] = machine()
        out: Path = options["out"]
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        click.echo(render(checks), nl=False)
        click.echo(f"machine: {report['machine']}")
        click.echo(f"written: {out / 'bench.json'}")
