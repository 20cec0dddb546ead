"""The flags that say what a board runs, declared once, and the one way to build a `Board` from them.

`harness run`, `harness sweep` and `harness distill` take these flags, and a plugin's command can too:

    @cli.command()
    @board_options("data", "limit", "model_opts")
    def mine(**opts):
        board = board_from_options(opts, Board(name="mine", tasks=["polarity"], models=[ModelEntry("minilm")]))

Each flag is named by the parameter its value arrives in, which is also the key `board_from_options` reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from harness.boards import Board, ModelEntry, check_seeds, check_vary, load_board, task_name
from harness.budget import ErrorBudget
from harness.command_helpers import parse_pairs
from harness.errors import HarnessError
from harness.types import SEED_COMPONENTS

Command = TypeVar("Command", bound=Callable[..., Any])

Flag = tuple[tuple[str, ...], dict[str, Any]]


def _flag(*decls: str, **attrs: Any) -> Flag:
    return decls, attrs


_FLAGS: dict[str, Flag] = {
    "board_name": _flag("--board", "board_name",
                        help="Board name (see `harness boards`) or path to a board TOML file."),
    "tasks": _flag("--task", "tasks", multiple=True, help="Task to run (repeatable); replaces the board's tasks."),
    "models": _flag("--model", "models", multiple=True,
                    help="Model spec, e.g. minilm or flan-t5:google/flan-t5-small (repeatable)."),
    "data": _flag("--data", help="Review file (.tsv[.gz], .jsonl, .csv), a saved dataset directory, or 'demo'."),
    "dataset": _flag("--dataset", help="Hugging Face dataset name or local save_to_disk directory."),
    "backend": _flag("--backend", help="cpu, cuda, mps or auto (default: the board's, usually auto)."),
    "limit": _flag("--limit", type=click.IntRange(min=1),
                   help="Score at most N examples per task (train splits are separate)."),
    "seed": _flag("--seed", type=int, help="Seed for splits and fine-tuning [default: 0]."),
    "seeds": _flag("--seeds", help="Run once per seed (e.g. 0,1,2) and show means, spreads and combined intervals."),
    "repeats": _flag("--repeats", type=click.IntRange(min=2), help="Like --seeds, with N seeds from --seed on."),
    "vary": _flag("--vary", help="What --seeds varies: split,finetune,demos,calibration or all [default: all]."),
    "categories": _flag("--categories", help="Category labels: 'study' (the 11), a comma list, or auto:N."),
    "task_opts": _flag("--task-option", "task_opts", multiple=True,
                       help="KEY=VALUE passed to every task (repeatable)."),
    "model_opts": _flag("--model-option", "model_opts", multiple=True,
                        help="KEY=VALUE passed to every model, FAMILY.KEY=VALUE to one family (repeatable)."),
    "backend_opts": _flag("--backend-option", "backend_opts", multiple=True,
                          help="KEY=VALUE for the backend, e.g. threads=2."),
    "text_col": _flag("--text-col", help="Column holding the review text (CSV/JSONL)."),
    "stars_col": _flag("--stars-col", help="Column holding the star rating (CSV/JSONL)."),
    "category_col": _flag("--category-col", help="Column holding the product category (CSV/JSONL)."),
    "title_col": _flag("--title-col", help="Column holding the review title (CSV/JSONL)."),
    "slice_col": _flag("--slice-col",
                       help="Column to report quality by, beside length, negation, category and stars."),
    "cluster_col": _flag("--cluster", "cluster_col", help="Column grouping reviews that are not independent; "
                         "intervals resample its groups [default: product_id where the data has it]; "
                         "'none' resamples reviews."),
    "bootstrap": _flag("--bootstrap", type=click.IntRange(min=0),
                       help="Bootstrap resamples for intervals [default: 1000]."),
    "metrics": _flag("--metric", "metrics", multiple=True, help="Metric to add to every row (repeatable): "
                     "a name from `harness list metrics` or evaluate:PATH_OR_NAME."),
    "price_per_hour": _flag("--price-per-hour", type=click.FloatRange(min=0), help="Dollars per hour of this "
                            "hardware, for the cost columns [default: list price of the detected device]."),
    "max_errors": _flag("--max-errors", help="Reviews a row may lose to model errors before the row fails: "
                        "a count (3) or a share (5%) [default: 0]; each failed review is listed by id in "
                        "results.json."),
}  # fmt: skip
BOARD_FLAGS = tuple(_FLAGS)
COLUMN_FLAGS = ("text_col", "stars_col", "category_col", "title_col", "cluster_col")


def board_options(*names: str, **help_texts: str) -> Callable[[Command], Command]:
    """Add the named board flags to a click command, in the order given (every one of them without names).

    A keyword replaces the help of a flag that means something narrower to the command, e.g.
    `board_options("limit", limit="Reviews the comparison scores.")`.
    """
    chosen = names or BOARD_FLAGS
    stray = [name for name in (*chosen, *help_texts) if name not in chosen or name not in _FLAGS]
    if stray:
        raise ValueError(
            f"board_options: no flag {', '.join(stray)} here; the board flags: {', '.join(BOARD_FLAGS)}"
        )

    def add(command: Command) -> Command:
        for name in reversed(chosen):  # click lists options in the order their decorators are written
            decls, attrs = _FLAGS[name]
            if name in help_texts:
                attrs = {**attrs, "help": help_texts[name]}
            command = click.option(*decls, **attrs)(command)
        return command

    return add


def board_from_options(opts: Mapping[str, Any], base: Board | None = None) -> Board:
    """The board a command runs: `base` with the board flags found in `opts` (a command's parameters) applied.

    Without `base` it is --board's board (the default board without it), its tasks and models replaced by
    --task and --model; a board made of those flags alone is called `adhoc` and runs one seed unless asked.
    A flag the command does not declare leaves the board as it is.
    """
    board = base if base is not None else _named_board(opts)
    if opts.get("data"):
        board.data, board.dataset = opts["data"], None
    if opts.get("dataset"):
        board.dataset, board.data = opts["dataset"], None
    if opts.get("max_errors") is not None:
        board.max_errors = ErrorBudget.parse(opts["max_errors"]).text
    for key in ("backend", "limit", "seed", "bootstrap", "price_per_hour"):
        if opts.get(key) is not None:
            setattr(board, key, opts[key])
    _seed_options(board, opts)
    for task in board.tasks:
        board.task_options[task] = {**board.task_options.get(task, {}), **_task_options(opts, task)}
    board.metrics = list(dict.fromkeys([*board.metrics, *opts.get("metrics", ())]))
    board.model_options.update(parse_pairs(opts.get("model_opts", ()), "--model-option"))
    board.backend_options.update(parse_pairs(opts.get("backend_opts", ()), "--backend-option"))
    for column in COLUMN_FLAGS:
        if opts.get(column):
            board.source_options[column] = opts[column]
    return board


def resolve_board(name_or_path: str) -> Board:
    """A board by its registered name, or from a TOML file."""
    from harness.plugin_manager import get_host

    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load_board(path)
    entry = get_host().registries.boards.get(name_or_path)
    return load_board(Path(entry.obj))


def _named_board(opts: Mapping[str, Any]) -> Board:
    board = resolve_board(opts.get("board_name") or "default")
    if opts.get("models"):
        board.models = [ModelEntry(spec=spec) for spec in opts["models"]]
        if not opts.get("board_name"):
            board.name = "adhoc"
    if opts.get("tasks"):
        board.tasks = [task_name(t) for t in opts["tasks"]]
        if not opts.get("board_name"):
            board.name = "adhoc"
    if board.name == "adhoc":
        # The default board's seeds suit its own rows; a board built from flags runs once unless asked.
        board.seeds, board.vary, board.leaves_out = [], list(SEED_COMPONENTS), ""
    return board


def _seed_options(board: Board, opts: Mapping[str, Any]) -> None:
    """--seeds/--repeats make a multi-seed run; --seed alone makes a single-seed run, whatever the board says."""
    if opts.get("seeds") and opts.get("repeats"):
        raise HarnessError("give --seeds or --repeats, not both")
    if opts.get("seeds"):
        try:
            seeds = [int(part) for part in opts["seeds"].split(",")]
        except ValueError:
            raise HarnessError(
                f"--seeds takes whole numbers separated by commas, not {opts['seeds']!r}"
            ) from None
        board.seeds = check_seeds(seeds, "--seeds")
    elif opts.get("repeats"):
        board.seeds = list(range(board.seed, board.seed + opts["repeats"]))
    elif opts.get("seed") is not None:
        board.seeds = []
    if opts.get("vary"):
        if not board.seeds:
            raise HarnessError("--vary needs a multi-seed run: give --seeds or --repeats")
        board.vary = check_vary(opts["vary"].split(","), "--vary")


def _task_options(opts: Mapping[str, Any], task: str) -> dict[str, str]:
    """`--task-option KEY=VALUE` goes to every task, `TASK.KEY=VALUE` to one; --categories to `category`,
    --slice-col to every task."""
    chosen: dict[str, str] = {}
    for key, value in parse_pairs(opts.get("task_opts", ()), "--task-option").items():
        prefix, dot, name = key.partition(".")
        if not dot:
            chosen[key] = value
        elif task_name(prefix) == task:
            chosen[name] = value
    if opts.get("categories") and task == "category":
        chosen["categories"] = opts["categories"]
    if opts.get("slice_col"):
        chosen["slice_col"] = opts["slice_col"]
    return chosen
