"""The `harness compare`, `harness power`, `harness errors` and `harness slices` commands, added to the CLI through `register_commands`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from harness import hookimpl
from harness.boards import task_name

RUN_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


def format_comparisons(comparisons: list[Any]) -> str:
    from harness.leaderboard._misclassified import display_text

    lines = []
    for c in comparisons:
        lines.append(
            f"{c.task} · {c.model}: {c.n} paired examples (B minus A, paired bootstrap 95% interval"
            + (f", resampling {c.clusters} clusters" if c.clusters is not None else "")
            + ")"
        )
        lines += [f"  note: {note}" for note in c.notes]
        for m in c.metrics:
            interval = f"[{m.low:+.3f}, {m.high:+.3f}]" if m.low is not None else "(no interval)"
            lines.append(f"  {m.name:<24} A {m.a:.3f}  B {m.b:.3f}  diff {m.diff:+.3f} {interval}")
        lines.append(
            f"  McNemar exact test: only A right {c.only_a_right}, only B right {c.only_b_right}, "
            f"p = {c.p_value:.4g}"
        )
        lines.append(detectable_line(c))
        lines.append(f"  predictions differ on {c.disagreement_count} example(s)")
        for example in c.disagreements:
            lines.append(
                f"    id={example['id']}  gold={example['gold']}  A={example['pred_a']}  B={example['pred_b']}  "
                f"{display_text(example)}"
            )
        lines.append("")
    return "\n".join(lines)


def detectable_line(c: Any) -> str:
    """The smallest accuracy difference the comparison could have seen, and what it rests on."""
    design = (f"design effect {c.design_effect:.2f} over {c.clusters} clusters" if c.clusters is not None
              and c.design_effect is not None else "reviews independent")  # fmt: skip
    return detectable_text(
        c.min_detectable, f"disagreement {(c.only_a_right + c.only_b_right) / c.n:.1%}, {design}"
    )


def seed_detectable_line(c: Any) -> str:
    """As `detectable_line`, for the mean difference over seeds: its design effect holds the seed spread."""
    design = "not measured" if c.design_effect is None else f"{c.design_effect:.2f} of seeds and reviews"
    basis = f"disagreement {c.disagreement:.1%} over the {sum(c.n):,} paired reviews of {len(c.seeds)} seeds"
    return detectable_text(c.min_detectable, f"{basis}, design effect {design}")


def detectable_text(min_detectable: float | None, basis: str) -> str:
    shown = "none measurable" if min_detectable is None else f"{min_detectable:.3f}"
    return f"  minimum detectable accuracy difference (80% power, 5% two-sided): {shown} ({basis})"


def format_seed_comparisons(comparisons: list[Any]) -> str:
    lines = []
    for c in comparisons:
        lines.append(
            f"{c.task} · {c.model}: seeds {', '.join(map(str, c.seeds))}, {'/'.join(map(str, c.n))} paired "
            f"examples (B minus A, means over seeds; interval: {c.interval})"
        )
        for m in c.metrics:
            interval = f"[{m.low:+.3f}, {m.high:+.3f}]" if m.low is not None else "(no interval)"
            t_test = f"p = {m.t_p_value:.3g}" if m.t_p_value is not None else "no seed spread"
            lines.append(
                f"  {m.name:<24} A {m.a:.3f}  B {m.b:.3f}  diff {m.diff:+.3f} {interval}  per seed "
                f"{' '.join(f'{d:+.3f}' for d in m.diffs)} (sd {m.sd:.3f}; t-test over seeds: {t_test})"
            )
        lines.append("  McNemar exact test per seed: " + ", ".join(f"p = {p:.3g}" for p in c.mcnemar_p))
        lines.append(seed_detectable_line(c))
        lines.append("")
    return "\n".join(lines)


def comparison_text(
    run_a: Path, run_b: Path, *, task: str | None = None, model: str | None = None, show: int = 10,
    resamples: int = 1000, seed: int = 0, as_json: bool = False,
) -> str:  # fmt: skip
    """What `harness compare` prints: two single runs paired review by review, or two multi-seed runs seed by
    seed with the differences pooled."""
    from harness.leaderboard._compare import compare_runs, compare_seed_runs, seed_runs

    if seed_runs(run_a) is not None or seed_runs(run_b) is not None:
        pooled = compare_seed_runs(run_a, run_b, task=task, model=model, resamples=resamples, seed=seed)
        if as_json:
            return json.dumps([asdict(c) for c in pooled], indent=2, ensure_ascii=False) + "\n"
        return format_seed_comparisons(pooled)
    comparisons = compare_runs(run_a, run_b, task=task and task_name(task), model=model, resamples=resamples,
                               seed=seed, show=show)  # fmt: skip
    if as_json:
        return json.dumps([asdict(c) for c in comparisons], indent=2, ensure_ascii=False) + "\n"
    return format_comparisons(comparisons)


def power_plan(
    baseline: float, difference: float, *, metric: str = "accuracy", pilot_run: Path | None = None,
    task: str | None = None, models: str | None = None, disagreement: float | None = None,
    design_effect: float | None = None, power: float = 0.8, alpha: float = 0.05,
) -> str:  # fmt: skip
    """What `harness power` prints: the reviews (and clusters) a paired accuracy comparison needs."""
    from harness.errors import HarnessError
    from harness.leaderboard._power import plan_comparison, read_pilot

    if metric != "accuracy":
        raise HarnessError(f"power planning is for accuracy (a paired McNemar comparison), not {metric!r}")
    if (task or models) and pilot_run is None:
        raise HarnessError("--task and --models choose rows of a pilot run: give --from RUN")
    chosen = tuple(m.strip() for m in models.split(",")) if models else ()
    if chosen and len(chosen) != 2:
        raise HarnessError(f"--models takes two models, A,B; got {models!r}")
    pilot = read_pilot(pilot_run, task and task_name(task), chosen) if pilot_run is not None else None
    return plan_comparison(baseline, difference, pilot=pilot, disagreement=disagreement,
                           design_effect=design_effect, alpha=alpha, power=power)  # fmt: skip


@click.command(name="compare")
@click.argument("run_a", type=RUN_DIR)
@click.argument("run_b", type=RUN_DIR)
@click.option("--task", help="Only this task.")
@click.option("--model", help="Only this model spec.")
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many disagreeing examples to list.")  # fmt: skip
@click.option("--resamples", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Paired bootstrap resamples.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def compare_command(
    run_a: Path, run_b: Path, task: str | None, model: str | None, show: int, resamples: int, seed: int,
    as_json: bool,
) -> None:  # fmt: skip
    """Paired comparison of two runs on the same reviews: differences, intervals, McNemar, disagreements.

    Intervals resample the reviews' clusters (their product) where the runs
    recorded them, and the smallest accuracy difference the comparison could
    detect (80% power, 5% two-sided) is shown beside the difference.

    Two multi-seed runs (`harness run --seeds`) are paired seed by seed and
    the differences pooled: their interval and t-test include the seed spread.
    """
    from harness.leaderboard._terminal import View, fit_lines

    text = comparison_text(run_a, run_b, task=task, model=model, show=show, resamples=resamples, seed=seed,
                           as_json=as_json)  # fmt: skip
    click.echo(text if as_json else fit_lines(text, View().console_width()), nl=False)


@click.command(name="errors")
@click.argument("run_dir", type=RUN_DIR)
@click.option("--model", required=True, help="Model spec or display label.")
@click.option("--task", help="Only this task.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Reviews per group.")
def errors_command(run_dir: Path, model: str, task: str | None, limit: int) -> None:
    """The misclassified reviews of one model, most confident first (false positives / false negatives)."""
    from harness.leaderboard._misclassified import format_groups, misclassified

    click.echo(
        format_groups(misclassified(run_dir, model, task=task and task_name(task), limit=limit)), nl=False
    )


@click.command(name="slices")
@click.argument("run_dir", type=RUN_DIR)
@click.option("--by", help="Only this dimension: length, negation, category, stars, or a --slice-col column.")
@click.option("--task", help="Only this task.")
@click.option("--model", help="Only this model (spec or display label).")
def slices_command(run_dir: Path, by: str | None, task: str | None, model: str | None) -> None:
    """Quality per slice of the scored reviews (length, negation, category, stars), with 95% intervals."""
    from harness.leaderboard._slice_tables import format_slice_tables, run_slice_tables

    click.echo(
        format_slice_tables(run_slice_tables(run_dir, by=by, task=task and task_name(task), model=model)),
        nl=False,
    )


@click.command(name="power")
@click.option("--metric", default="accuracy", show_default=True, help="The metric compared (accuracy).")
@click.option("--baseline", type=click.FloatRange(0, 1, min_open=True, max_open=True), required=True,
              help="The accuracy of the model compared against.")  # fmt: skip
@click.option("--difference", type=float, required=True, help="The accuracy difference to detect.")
@click.option("--from", "pilot_run", type=RUN_DIR,
              help="A pilot run: its two models' disagreement rate and its design effect are used.")  # fmt: skip
@click.option("--task", help="The pilot run's task.")
@click.option("--models", help="The pilot run's two models, A,B [default: its only two].")
@click.option("--disagreement", type=click.FloatRange(0, 1, min_open=True),
              help="Share of reviews exactly one model gets right [default: pilot's, else independent errors].")  # fmt: skip
@click.option("--design-effect", type=click.FloatRange(min=1),
              help="Clustered over unclustered standard error [default: pilot's, else 1].")  # fmt: skip
@click.option(
    "--power", "power_", type=click.FloatRange(0.5, 1, max_open=True), default=0.8, show_default=True
)
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="Two-sided significance level.")  # fmt: skip
def power_command(
    metric: str, baseline: float, difference: float, pilot_run: Path | None, task: str | None,
    models: str | None, disagreement: float | None, design_effect: float | None, power_: float, alpha: float,
) -> None:  # fmt: skip
    """How many reviews (and clusters) a paired comparison needs to detect an accuracy difference.

    A pilot run (--from) supplies how often the two models disagree and the
    design effect of its reviews' clusters; without one the models' errors are
    taken as independent and the reviews as unclustered.
    """
    click.echo(power_plan(baseline, difference, metric=metric, pilot_run=pilot_run, task=task, models=models,
                          disagreement=disagreement, design_effect=design_effect, power=power_, alpha=alpha),
               nl=False)  # fmt: skip


@hookimpl
def register_commands(cli: click.Group) -> None:
    for command in (compare_command, errors_command, slices_command, power_command):
        cli.add_command(command)
