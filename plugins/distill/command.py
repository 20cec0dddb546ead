"""`harness distill LARGE SMALL --task T`: a small classifier taught by a large model, as a reusable model spec.

The large model (or a hybrid) scores a pool of reviews the run never scores,
and the small one is fine-tuned on its probabilities (see ``_distill``). The
distillation's run directory keeps the teacher's predictions on the pool
(results.json, predictions.jsonl, cache.sqlite), the student's weights under
models/finetuned/, distill.json, and board.toml: the small model before and
after, the teacher and their hybrid on the very split the pool avoided.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness import Board, ModelEntry, RunSettings, board_from_options, board_options, hookimpl
from harness.boards import task_name
from harness.command_helpers import EXIT_CODES
from harness.errors import HarnessError, RunFailed

if TYPE_CHECKING:
    from harness import PluginHost

BOARD_NAME = "distill"
DEFAULT_POOL = 2000
HYBRID_ROUTER = "confidence:0.9"


def default_run_dir(task: str, large: str, small: str) -> Path:
    return Path("runs") / re.sub(r"[^A-Za-z0-9._-]+", "_", f"distill-{task}-{small}-from-{large}")


def refuse_other_results(run_dir: Path) -> None:
    """A distillation writes only into its own run directory, never over another command's results."""
    results = run_dir / "results.json"
    if not results.exists():
        return
    try:
        board = json.loads(results.read_text(encoding="utf-8")).get("board")
    except (OSError, ValueError, AttributeError):
        board = None
    if board != BOARD_NAME:
        raise HarnessError(f"{run_dir} holds another command's results; give --out a directory of its own")


def gold_size_option(board: Board, task: str, size: int | None, host: Any) -> None:
    """--gold-size is the task's `train_size`: teacher, student and comparison board see the same gold."""
    if size is None:
        return
    options = host.registries.tasks.get(task).options
    if options is None or "train_size" not in options:
        raise HarnessError(
            f"--gold-size sets the task option train_size, which the {task} task does not have; "
            "give its own train option with --task-option"
        )
    board.task_options[task] = {**board.task_options.get(task, {}), "train_size": str(size)}


def _toml(value: Any) -> str:
    """A TOML value: JSON's strings, numbers and arrays are TOML's too."""
    return json.dumps(value, ensure_ascii=False)


def comparison_board(board: Board, large: str, small: str, distilled: str) -> str:
    """board.toml: the small model before and after, the teacher, and the hybrid of the distilled model."""
    task = board.tasks[0]
    models = [
        (small, f"{small} (gold train split only)"),
        (distilled, f"{small} distilled from {large}"),
        (large, f"{large} (teacher)"),
        (f"hybrid:{distilled}>{large}@{HYBRID_ROUTER}", f"hybrid distilled {small} > {large} @0.9"),
    ]
    lines = [
        f"name = {_toml('distilled-' + task)}",
        f"description = {_toml(f'{small} before and after distillation from {large}, on the split the pool avoided')}",
        f"tasks = {_toml([task])}",
        f"data = {_toml(board.data)}" if board.data else f"dataset = {_toml(board.dataset)}",
        f"backend = {_toml(board.backend)}",
        f"seed = {board.seed}",
        f"bootstrap = {board.bootstrap}",
    ]
    if board.limit is not None:
        lines.append(f"limit = {board.limit}")
    tables = {
        f"task_options.{task}": board.task_options.get(task, {}),
        "model_options": board.model_options,
        "backend_options": board.backend_options,
        "source_options": board.source_options,
    }
    for name, values in tables.items():
        if values:
            lines += ["", f"[{name}]", *(f"{_toml(k)} = {_toml(v)}" for k, v in sorted(values.items()))]
    for spec, label in models:
        lines += ["", "[[models]]", f"spec = {_toml(spec)}", f"label = {_toml(label)}"]
    return "\n".join(lines) + "\n"


def distill_student(
    host: PluginHost, board: Board, run_dir: Path, *, pool_size: int, with_gold: bool,
    cache_path: Path | None = None, echo: Callable[[str], None] = click.echo,
) -> dict[str, Any]:  # fmt: skip
    """What `harness distill` does once its flags are read: the teacher (the board's first model) scores the
    pool, the student (its second) learns from it; writes distill.json and board.toml and returns the former."""
    from harness import Runner, preflight
    from harness.files import atomic_write, write_json
    from harness.plugins.distill._distill import PoolSplits, build_student, teach
    from harness.progress import progress_for_stderr

    large, small = (entry.spec for entry in board.models)
    task_name = board.tasks[0]
    refuse_other_results(run_dir)
    preflight(host, board, run_dir, cache_path=cache_path).raise_problems()
    teacher = ModelEntry(spec=large, label=f"{large} (teacher, on the pool)")
    # The student rides along without tasks: no row, but the board's model options it reads are accepted.
    board.models = [teacher, ModelEntry(spec=small, tasks=[])]
    with progress_for_stderr() as progress:
        pools = PoolSplits(host.registries, board, pool_size)
        runner = Runner(
            host, board, run_dir, RunSettings(cache_path=cache_path, progress=progress), splits=pools
        )
        student = build_student(runner, small, dict(board.model_options))
        task = runner.make_task(task_name)
        pools.draw(task)
        results = runner.run()
    row = results["rows"][0]
    if row["status"] == "error":
        raise RunFailed(f"the teacher failed on the pool: {row['error']}")
    echo(f"teacher {large}: {row['computed']} pool reviews scored, {row['cached']} from the cache")
    scored = runner.scored[(task_name, teacher.spec, teacher.display)]
    taught = teach(pools, scored, task, student, with_gold=with_gold)
    spec = f"hf-classifier:{taught.result.path}"
    verb = "fine-tuned" if taught.result.trained else "reused the saved"
    echo(f"{verb} {small} on {taught.gold} gold and {taught.pool} teacher-labelled reviews")
    summary = {
        "spec": spec,
        "checkpoint": str(taught.result.path),
        "fingerprint": taught.result.fingerprint,
        "trained": taught.result.trained,
        "teacher": large,
        "student": small,
        "task": task_name,
        "gold": taught.gold,
        "pool": taught.pool,
        "with_gold": with_gold,
        "seed": board.seed,
        "limit": board.limit,
    }
    write_json(run_dir / "distill.json", summary)
    atomic_write(run_dir / "board.toml", comparison_board(board, large, small, spec))
    return summary


@click.command(name="distill", epilog=EXIT_CODES)
@click.argument("large")
@click.argument("small")
@click.option("--task", required=True, help="Task to distil, e.g. polarity.")
@board_options(
    "data", "dataset", "limit", limit="Reviews the comparison scores; the pool is drawn from the others."
)
@click.option("--pool", "pool_size", type=click.IntRange(min=1), default=DEFAULT_POOL, show_default=True,
              help="Reviews the teacher labels for the student.")  # fmt: skip
@click.option("--with-gold/--no-gold", default=True, show_default=True,
              help="Also train the student on the gold train split.")  # fmt: skip
@click.option("--gold-size", type=click.IntRange(min=0),
              help="Gold train reviews (the task option train_size) [default: the task's].")  # fmt: skip
@board_options("categories", "backend", "seed", backend="cpu, cuda, mps or auto.",
               seed="Seed for splits, the pool and fine-tuning [default: 0].")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory [default: runs/distill-TASK-SMALL-from-LARGE].")  # fmt: skip
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Prediction cache file [default: RUN_DIR/cache.sqlite].")  # fmt: skip
@board_options("bootstrap", "task_opts", "model_opts", "backend_opts", "text_col", "stars_col", "category_col",
               "title_col", task_opts="KEY=VALUE for the task (repeatable).",
               model_opts="KEY=VALUE for both models (repeatable).", backend_opts="KEY=VALUE for the backend.")  # fmt: skip
def distill_command(large: str, small: str, **opts: Any) -> None:
    """Teach SMALL (a classifier that fine-tunes) from LARGE's probabilities on reviews no run scores.

    \b
    Prints the distilled model's spec and writes board.toml, which compares
    SMALL before and after, LARGE and their hybrid on the same scored split:
      harness distill smollm2 minilm --task polarity --data reviews.jsonl \\
          --limit 1000 --gold-size 100 --pool 2000
    A second distillation with the same models, data, options and seed
    reuses the teacher's cached predictions and the saved student.
    """
    from harness import get_host

    host = get_host()
    models = [ModelEntry(spec=large), ModelEntry(spec=small)]
    board = board_from_options(opts, Board(name=BOARD_NAME, tasks=[task_name(opts["task"])], models=models))
    gold_size_option(board, board.tasks[0], opts["gold_size"], host)
    run_dir = opts["out"] or default_run_dir(board.tasks[0], large, small)
    summary = distill_student(host, board, run_dir, pool_size=opts["pool_size"], with_gold=opts["with_gold"],
                              cache_path=opts["cache_path"])  # fmt: skip
    click.echo(f"distilled model: {summary['spec']}")
    click.echo(f"wrote {run_dir / 'distill.json'}, {run_dir / 'board.toml'}")
    click.echo(f"compare: harness run --board {run_dir / 'board.toml'} --out {run_dir / 'board'}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(distill_command)
