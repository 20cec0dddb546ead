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
from pathlib import Path
from typing import Any

import click

from harness import hookimpl
from harness.boards import Board, ModelEntry
from harness.command_helpers import EXIT_CODES
from harness.errors import HarnessError, RunFailed

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


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command(epilog=EXIT_CODES)
    @click.argument("large")
    @click.argument("small")
    @click.option("--task", required=True, help="Task to distil, e.g. polarity.")
    @click.option(
        "--data", help="Review file (.tsv[.gz], .jsonl, .csv), a saved dataset directory, or 'demo'."
    )
    @click.option("--dataset", help="Hugging Face dataset name or local save_to_disk directory.")
    @click.option("--limit", type=click.IntRange(min=1),
                  help="Reviews the comparison scores; the pool is drawn from the others.")  # fmt: skip
    @click.option("--pool", "pool_size", type=click.IntRange(min=1), default=DEFAULT_POOL, show_default=True,
                  help="Reviews the teacher labels for the student.")  # fmt: skip
    @click.option("--with-gold/--no-gold", default=True, show_default=True,
                  help="Also train the student on the gold train split.")  # fmt: skip
    @click.option("--gold-size", type=click.IntRange(min=0),
                  help="Gold train reviews (the task option train_size) [default: the task's].")  # fmt: skip
    @click.option("--categories", help="Category labels: 'study' (the 11), a comma list, or auto:N.")
    @click.option("--backend", help="cpu, cuda, mps or auto.")
    @click.option("--seed", type=int, help="Seed for splits, the pool and fine-tuning [default: 0].")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                  help="Run directory [default: runs/distill-TASK-SMALL-from-LARGE].")  # fmt: skip
    @click.option("--cache", "cache_path", type=click.Path(dir_okay=False, path_type=Path),
                  help="Prediction cache file [default: RUN_DIR/cache.sqlite].")  # fmt: skip
    @click.option(
        "--bootstrap", type=click.IntRange(min=0), help="Bootstrap resamples for intervals [default: 1000]."
    )
    @click.option("--task-option", "task_opts", multiple=True, help="KEY=VALUE for the task (repeatable).")
    @click.option(
        "--model-option", "model_opts", multiple=True, help="KEY=VALUE for both models (repeatable)."
    )
    @click.option("--backend-option", "backend_opts", multiple=True, help="KEY=VALUE for the backend.")
    @click.option("--text-col", help="Column holding the review text (CSV/JSONL).")
    @click.option("--stars-col", help="Column holding the star rating (CSV/JSONL).")
    @click.option("--category-col", help="Column holding the product category (CSV/JSONL).")
    @click.option("--title-col", help="Column holding the review title (CSV/JSONL).")
    def distill(large: str, small: str, **opts: Any) -> None:
        """Teach SMALL (a classifier that fine-tunes) from LARGE's probabilities on reviews no run scores.

        \b
        Prints the distilled model's spec and writes board.toml, which compares
        SMALL before and after, LARGE and their hybrid on the same scored split:
          harness distill smollm2 minilm --task polarity --data reviews.jsonl \\
              --limit 1000 --gold-size 100 --pool 2000
        A second distillation with the same models, data, options and seed
        reuses the teacher's cached predictions and the saved student.
        """
        from harness import get_host, preflight
        from harness.files import atomic_write, write_json
        from harness.plugins.models._distill import PoolRunner, build_student, teach
        from harness.plugins.routing.sweep import board_for_sweep
        from harness.progress import progress_for_stderr

        host = get_host()
        board = board_for_sweep([large, small], opts["task"], opts)
        task_name = board.tasks[0]
        board.name = BOARD_NAME
        gold_size_option(board, task_name, opts["gold_size"], host)
        run_dir = opts["out"] or default_run_dir(task_name, large, small)
        refuse_other_results(run_dir)
        preflight(host, board, run_dir, cache_path=opts["cache_path"]).raise_problems()
        teacher = ModelEntry(spec=large, label=f"{large} (teacher, on the pool)")
        # The student rides along without tasks: no row, but the board's model options it reads are accepted.
        board.models = [teacher, ModelEntry(spec=small, tasks=[])]
        with progress_for_stderr() as progress:
            runner = PoolRunner(
                host,
                board,
                run_dir,
                cache_path=opts["cache_path"],
                progress=progress,
                pool_size=opts["pool_size"],
            )
            student = build_student(runner, small, dict(board.model_options))
            task = runner.make_task(task_name)
            runner.draw(task)
            results = runner.run()
        row = results["rows"][0]
        if row["status"] == "error":
            raise RunFailed(f"the teacher failed on the pool: {row['error']}")
        click.echo(f"teacher {large}: {row['computed']} pool reviews scored, {row['cached']} from the cache")
        taught = teach(
            runner, task, (task_name, teacher.spec, teacher.display), student, with_gold=opts["with_gold"]
        )
        spec = f"hf-classifier:{taught.result.path}"
        verb = "fine-tuned" if taught.result.trained else "reused the saved"
        click.echo(f"{verb} {small} on {taught.gold} gold and {taught.pool} teacher-labelled reviews")
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
            "with_gold": opts["with_gold"],
            "seed": board.seed,
            "limit": board.limit,
        }
        write_json(run_dir / "distill.json", summary)
        atomic_write(run_dir / "board.toml", comparison_board(board, large, small, spec))
        click.echo(f"distilled model: {spec}")
        click.echo(f"wrote {run_dir / 'distill.json'}, {run_dir / 'board.toml'}")
        click.echo(f"compare: harness run --board {run_dir / 'board.toml'} --out {run_dir / 'board'}")
