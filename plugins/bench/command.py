"""`harness bench`: the performance figures of the README, measured as ratios inside one run.

Every speed figure is a ratio against a baseline timed in the same process on
the same machine, so the figures hold on a shared or busy machine where
absolute seconds do not. Parts (``--only``): ``small`` (DistilBERT-base on
CPU: every engine and precision of the harness' classifier against the study's
one-pipeline-call-per-review way, plus the GFLOP/s reached against the peak of
a matrix product in the fast path's precision; the target is 5x on an AMX
processor such as the development machine's and 4x on any other,
``_small.speed_target``), ``quality`` (each path's argmax agreement with
float32 on a MiniLM fine-tuned to better than chance), ``scoring``
(shared-encoder label scoring against a full pass per label, agreeing to a
relative 1e-5, and its encoder pass on each engine against torch), ``overhead``
(a run's time outside the model's forward passes, tokenizing and loading,
under 3%), ``memory`` (peak RSS of a 1,000,000-row TSV against 10,000 rows),
``llama`` (the SmolLM2 GGUF scored by llama.cpp against transformers, polarity
and category), ``llm`` (SmolLM2's label scoring in tokens/s as a share of a
plain forward pass over the same tokens, at least 60%, and its reviews/s, on
polarity with 4 demonstrations and on the 11 categories) and ``served`` (SmolLM2 behind an OpenAI-compatible server at
``--served-url`` against the same GGUF in-process; skipped without a URL).

Every part scores one balanced, seeded sample of the data (``_sample``), and
the fast path is the fastest path that keeps fp32's answers (``_small.choose_fast``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from harness import hookimpl
from harness.plugins.bench._sample import Sample
from harness.plugins.bench._small import AUTO, VARIANTS, Variant

PARTS = ("small", "quality", "scoring", "overhead", "memory", "llama", "llm", "served")


@dataclass
class Check:
    """One line of the report: a figure, its target and whether it meets it."""

    part: str
    figure: str
    value: float
    target: str
    passed: bool


def checks_for(report: dict[str, Any]) -> list[Check]:
    """The targeted figures of whichever parts ran.

    A speed-up counts only on a path that keeps fp32's answers: where the
    quality part measured the fast path outside the agreement bar, its speed
    target fails too.
    """
    checks = []
    quality: dict[str, Any] = report.get("quality", {})
    fast_key = report.get("fast_path", {}).get("key", "")
    fast_agreement = (
        quality["by_variant"].get(fast_key, {"argmax_agreement": 1.0})["argmax_agreement"] if quality else 1.0
    )
    keeps_answers = not quality or fast_agreement >= quality["agreement_bar"]
    if small := report.get("small"):
        target = small.get("target", 4.0)
        checks += [
            Check("small", f"reviews/s, harness ({small['fast_path']}) / study's pipeline", small["speedup"],
                  f">= {target:g}x", small["speedup"] >= target and keeps_answers),
            Check("small", f"GFLOP/s share of {small.get('peak_kernel', 'matmul')} peak",
                  small["share_of_peak"], ">= 50%", small["share_of_peak"] >= 0.5),
            Check("small", "fp32 harness argmax = study's", small["fp32_harness_agrees_with_study"], "100%",
                  small["fp32_harness_agrees_with_study"] == 1.0),
        ]  # fmt: skip
    if quality:
        accuracy = quality["accuracy"]
        checks += [
            Check("quality", "fine-tuned MiniLM accuracy, 95% interval low", accuracy["interval"][0],
                  "> 50%", accuracy["better_than_chance"]),
            Check("quality", f"fast path ({fast_key}) argmax agreement with fp32", fast_agreement,
                  ">= 99.5%", keeps_answers),
        ]  # fmt: skip
    if scoring := report.get("scoring"):
        checks += [
            Check("scoring", "shared encoder / full pass per label", scoring["speedup"], ">= 3x",
                  scoring["speedup"] >= 3),
            Check("scoring", "max relative log-likelihood difference", scoring["max_rel_loglik_diff"],
                  "<= 1e-5", scoring["max_rel_loglik_diff"] <= 1e-5),
        ]  # fmt: skip
    if overhead := report.get("overhead"):
        share = overhead["overhead_share"]
        checks.append(
            Check("overhead", "run time outside forward, tokenizing, loading", share, "< 3%", share < 0.03)
        )
    if memory := report.get("memory"):
        diff = memory["difference_mb"]
        checks.append(Check("memory", "peak RSS, 1M rows - 10k rows (MB)", diff, "<= 300", diff <= 300))
    for task, by_task in report.get("llama", {}).get("by_task", {}).items():
        for weights, figures in by_task["llama_cpp_by_weights"].items():
            speedup, agreement = figures["speedup"], figures["argmax_agreement"]
            checks += [
                Check("llama", f"{task}: reviews/s, llama.cpp {weights} / transformers", speedup,
                      ">= 3x" if task == "category" else "> 1x", speedup >= (3 if task == "category" else 1)),
                Check("llama", f"{task}: llama.cpp {weights} argmax agreement with transformers", agreement,
                      ">= 99%", agreement >= 0.99),
            ]  # fmt: skip
    for task, figures in report.get("llm", {}).get("by_task", {}).items():
        share, target = figures["share_of_forward"], report["llm"]["target"]
        checks.append(
            Check("llm", f"{task}: label scoring tokens/s / plain forward's", share, f">= {target:.0%}",
                  share >= target)
        )  # fmt: skip
    for engine, figures in report.get("served", {}).get("against", {}).items():
        agreement = figures["argmax_agreement"]
        checks.append(
            Check("served", f"polarity: argmax agreement with in-process {engine}", agreement, ">= 99%",
                  agreement >= 0.99)
        )  # fmt: skip
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


def render_paths(report: dict[str, Any]) -> str:
    """Every speed-up path: its speed against the study's way and the fp32 answers it flips."""
    from harness.plugins.bench._small import REFERENCE

    speeds = {row["key"]: row for row in report.get("small", {}).get("variants", [])}
    quality = report.get("quality")
    if not speeds and not quality:
        return ""
    fast = report["fast_path"]["key"]
    lines = [f"{'path':<17} {'reviews/s':>9} {'vs study':>8}  {'agreement':>9} {'flipped':>9}  bar"]
    for key in VARIANTS:
        speed = speeds.get(key)
        rate = f"{speed['reviews_per_s']:.3g}" if speed else "-"
        ratio = f"{speed['speedup_vs_study']:.3g}x" if speed else "-"
        agreement, flipped, bar = "-", "-", ""
        if quality and key == REFERENCE:
            agreement, bar = "reference", "fp32"
        elif quality and key in quality["by_variant"]:
            row = quality["by_variant"][key]
            agreement = f"{100 * row['argmax_agreement']:.2f}%"
            flipped = f"{row['flipped']}/{quality['reviews']}"
            bar = "pass" if row["passes"] else "FAIL"
        mark = "  <- fast path" if key == fast else ""
        lines.append(f"{key:<17} {rate:>9} {ratio:>8}  {agreement:>9} {flipped:>9}  {bar}{mark}")
    return "\n".join(lines) + "\n"


def render_encoder_engines(figures: dict[str, Any]) -> str:
    """Label scoring's speed with the encoder on each engine, against torch's."""
    lines = [
        f"label scoring, encoder engines ({figures['model']}, {figures['reviews']} reviews; "
        f"encoder {figures['encoder_share']:.0%} of torch's time):"
    ]
    for key, row in figures["engines"].items():
        if "skipped" in row:
            lines.append(f"  {key:<17} skipped: {row['skipped']}")
        else:
            lines.append(
                f"  {key:<17} {row['reviews_per_s']:.3g} reviews/s, {row['vs_torch']:.2f}x torch, "
                f"agreement {row['argmax_agreement']:.1%}, log-likelihood within {row['max_abs_loglik_diff']:.2g}"
            )
    return "\n".join(lines)


@dataclass
class _Bench:
    """What every part reads: the options, the balanced sample, a scratch directory and the fast path."""

    options: Mapping[str, Any]
    sample: Sample
    workdir: Path
    echo: Callable[[str], None]
    fast: Variant | None = None

    @property
    def texts(self) -> list[str]:
        return [example.text for example in self.sample.scored]

    def first(self, option: str) -> list[str]:
        """The first reviews of the sample, as many as the option says."""
        return self.texts[: self.options[option]]


def run_parts(options: Mapping[str, Any], workdir: Path, echo: Callable[[str], None]) -> dict[str, Any]:
    """Draw the balanced sample, run the selected parts, and choose the fast path from what they measured.

    The quality part runs first, so that the fast path is chosen among the
    paths within its agreement bar; each part's figures go under its name.
    """
    from harness.plugins.bench import _sample
    from harness.plugins.bench import _small as bench_small

    parts = options["only"]
    needs_train = ("quality" in parts and options["minilm_dir"] is None) or "llm" in parts
    sample = _sample.draw(
        options["data"],
        options["reviews"],
        options["train_reviews"] if needs_train else 0,
        options["seed"],
        workdir,
    )
    echo(f"sample: {sample.describe()}")
    report: dict[str, Any] = {"parts": parts, "data": options["data"], "seed": options["seed"]}
    report["sample"] = sample.counts()
    bench = _Bench(options, sample, workdir, echo)
    passing: set[str] | None = None
    if "quality" in parts:
        report["quality"] = _quality(bench)
        passing = bench_small.passing_paths(report["quality"])
    bench.fast = _fast_path(bench, report, passing)
    for part, measure in _AFTER_THE_FAST_PATH.items():
        if part in parts:
            report[part] = measure(bench)
    return report


def _quality(bench: _Bench) -> dict[str, Any]:
    from harness.plugins.bench._small import quality

    figures = quality(bench.sample, bench.workdir, bench.options["minilm_dir"])
    accuracy = figures["accuracy"]
    bench.echo(
        f"quality: fine-tuned MiniLM accuracy {accuracy['accuracy']:.3f} "
        f"(95% interval {accuracy['interval'][0]:.3f}-{accuracy['interval'][1]:.3f}; "
        f"negative {accuracy['per_label']['negative']:.3f}, positive {accuracy['per_label']['positive']:.3f})"
    )
    return figures


def _fast_path(bench: _Bench, report: dict[str, Any], passing: set[str] | None) -> Variant:
    """--fast's path, else the fastest within the quality part's agreement bar (timed where `small` runs)."""
    from harness.plugins.bench import _small as bench_small

    def choose(speeds: Mapping[str, float]) -> tuple[Variant, str]:
        if bench.options["fast"] != AUTO:
            return VARIANTS[bench.options["fast"]], "given by --fast"
        return bench_small.choose_fast(passing, speeds)

    fast, reason = choose({})
    if "small" in report["parts"]:
        reviews = bench.options["variant_reviews"] or len(bench.texts)
        small = report["small"] = bench_small.speed(bench.texts, reviews, bench.workdir, choose)
        fast, reason = VARIANTS[small["fast_path"]], small["fast_path_chosen_as"]
    report["fast_path"] = {**asdict(fast), "chosen_as": reason}
    bench.echo(f"fast path: {fast.key} ({fast.name}): {reason}")
    return fast


def _scoring(bench: _Bench) -> dict[str, Any]:
    from harness.plugins.bench._encoder_engines import encoder_engines
    from harness.plugins.bench._scoring import scoring

    figures = scoring(bench.first("scoring_reviews"), bench.workdir)
    figures["encoder_engines"] = encoder_engines(bench.first("encoder_reviews"), bench.workdir)
    bench.echo(render_encoder_engines(figures["encoder_engines"]))
    return figures


def _overhead(bench: _Bench) -> dict[str, Any]:
    from harness.plugins.bench._small import overhead

    assert bench.fast is not None
    return overhead(bench.sample, bench.workdir, bench.fast)


def _memory(bench: _Bench) -> dict[str, Any]:
    from harness.plugins.bench._memory import memory

    options = bench.options
    return memory(options["tsv"], bench.workdir, options["memory_small_rows"], options["memory_rows"])


def _llama(bench: _Bench) -> dict[str, Any]:
    from harness.plugins.bench._llama import llama

    figures = llama(bench.first("llama_reviews"), bench.workdir)
    if "skipped" in figures:
        bench.echo(f"llama: skipped, {figures['skipped']}")
    return figures


def _llm(bench: _Bench) -> dict[str, Any]:
    from harness.plugins.bench._llm import llm

    figures = llm(bench.first("llm_reviews"), bench.sample.train, bench.workdir)
    bench.echo(render_llm(figures))
    return figures


def render_llm(figures: dict[str, Any]) -> str:
    """SmolLM2's reviews/s per task, with label scoring's and the plain forward pass's tokens/s."""
    return "\n".join(
        f"llm: {task}: {row['reviews_per_s']:.3g} reviews/s ({figures['reviews']} reviews, {row['labels']} "
        f"labels, {row['demonstrations']} demonstrations), label scoring {row['scoring_tokens_per_s']:.4g} "
        f"tokens/s, plain forward {row['forward_tokens_per_s']:.4g}"
        for task, row in figures["by_task"].items()
    )


def _served(bench: _Bench) -> dict[str, Any]:
    from harness.command_helpers import parse_pairs
    from harness.plugins.bench._served import served

    options = bench.options
    endpoint_options = {
        "concurrency": str(options["served_concurrency"]),
        **parse_pairs(options["served_option"], "--served-option"),
    }
    if options["served_key_env"]:
        endpoint_options["api_key_env"] = options["served_key_env"]
    figures = served(
        bench.first("served_reviews"), bench.workdir, options["served_url"], options["served_model"],
        endpoint_options,
    )  # fmt: skip
    if "skipped" in figures:
        bench.echo(f"served: skipped, {figures['skipped']}")
    return figures


# The parts that run after the fast path is chosen, in the order they run.
_AFTER_THE_FAST_PATH: dict[str, Callable[[_Bench], dict[str, Any]]] = {
    "scoring": _scoring,
    "overhead": _overhead,
    "memory": _memory,
    "llama": _llama,
    "llm": _llm,
    "served": _served,
}


def run_bench(options: Mapping[str, Any], echo: Callable[[str], None]) -> tuple[dict[str, Any], list[Check]]:
    """What `harness bench` does once its flags are read: run the parts in a scratch directory, check their
    figures against the targets and write bench.json into `options["out"]`; returns the report and checks."""
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        report = run_parts(options, Path(tmp), echo)
    checks = checks_for(report)
    report["checks"] = [asdict(check) for check in checks]
    report["machine"] = machine()
    out: Path = options["out"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report, checks


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


@click.command(name="bench")
@click.option(
    "--only",
    default=",".join(PARTS),
    show_default=True,
    callback=parse_parts,
    help="Comma list of parts to run.",
)
@click.option(
    "--data",
    default="demo",
    show_default=True,
    help="Reviews the balanced samples are drawn from: a .tsv, .jsonl or .csv file, or 'demo'.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the balanced samples' draw.",
)
@click.option(
    "--tsv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Release-format TSV repeated into the memory part's files (default: the demo sample's).",
)
@click.option(
    "--reviews",
    type=click.IntRange(min=2),
    default=1000,
    show_default=True,
    help="Reviews scored by every part, half of each label (fewer where the data holds fewer).",
)
@click.option(
    "--variant-reviews",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="Reviews each speed-up variant is timed on (0: --reviews).",
)
@click.option(
    "--fast",
    type=click.Choice([AUTO, *sorted(VARIANTS)]),
    default=AUTO,
    show_default=True,
    help="The path the targets are checked on (auto: the fastest that keeps fp32's answers).",
)
@click.option(
    "--minilm-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A fine-tuned MiniLM checkpoint for the quality part (default: fine-tune one here).",
)
@click.option(
    "--train-reviews",
    type=click.IntRange(min=2),
    default=500,
    show_default=True,
    help="Reviews MiniLM is fine-tuned on when no --minilm-dir is given, half of each label, never scored.",
)
@click.option(
    "--scoring-reviews",
    type=click.IntRange(min=1),
    default=12,
    show_default=True,
    help="Reviews the label-scoring part scores both ways (the first of the balanced sample).",
)
@click.option(
    "--encoder-reviews",
    type=click.IntRange(min=2),
    default=48,
    show_default=True,
    help="Reviews the scoring part scores with label scoring's encoder on each engine (the first of the sample).",
)
@click.option(
    "--llama-reviews",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Reviews the llama part scores with each engine, per task (the first of the balanced sample).",
)
@click.option(
    "--llm-reviews",
    type=click.IntRange(min=1),
    default=96,
    show_default=True,
    help="Reviews the llm part scores per task (the first of the balanced sample).",
)
@click.option("--served-url", help="The served part's endpoint, up to and including /v1.")
@click.option(
    "--served-model", default="smollm2", show_default=True, help="The name the server knows SmolLM2 by."
)
@click.option("--served-key-env", help="Environment variable holding the served part's API key.")
@click.option(
    "--served-option", multiple=True, help="KEY=VALUE for the served model (repeatable), e.g. logit_bias."
)
@click.option("--served-concurrency", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--served-reviews",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Reviews the served part scores (the first of the balanced sample).",
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
def bench_command(**options: Any) -> None:
    """Measure inference speed, label scoring, run overhead and memory against their targets."""
    from harness.command_helpers import quiet_model_libraries

    quiet_model_libraries()
    report, checks = run_bench(options, click.echo)
    click.echo(render(checks), nl=False)
    click.echo(render_paths(report), nl=False)
    click.echo(f"machine: {report['machine']}")
    click.echo(f"written: {options['out'] / 'bench.json'}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(bench_command)
