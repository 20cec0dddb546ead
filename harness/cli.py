"""The `harness` command line.

Imports stay light here: torch and transformers load only when a model or
backend is built, so `harness --help`, `harness plugins` and `harness list`
answer at once.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import click

from harness.board_flags import board_from_options, board_options
from harness.command_helpers import EXIT_CODES, quiet_model_libraries
from harness.errors import HarnessError, RunFailed
from harness.files import storage_error
from harness.leaderboard._terminal import View, render_format, view_options
from harness.plugin_manager import get_host
from harness.registry import KINDS, Entry

DEFAULT_RUNS = Path("runs")
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C


def debugging(ctx: click.Context | None = None) -> bool:
    flagged = ctx is not None and bool(ctx.find_root().params.get("debug"))
    return flagged or os.environ.get("HARNESS_DEBUG", "") not in ("", "0")


class HarnessGroup(click.Group):
    """Turns the errors people can act on into one line and an exit code; the traceback only when debugging."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            self.fail(ctx, str(exc), exc.exit_code)
        except OSError as exc:  # a disk or permission problem outside a run (a run names its own)
            error = storage_error(exc, Path.cwd())
            if error is None:
                raise
            self.fail(ctx, str(error), error.exit_code)
        except KeyboardInterrupt:
            self.fail(
                ctx, "interrupted; run the same command again to resume from the cache", EXIT_INTERRUPTED
            )

    @staticmethod
    def fail(ctx: click.Context, message: str, code: int) -> None:
        if debugging(ctx):
            traceback.print_exc()
        click.echo(f"Error: {message}", err=True)
        ctx.exit(code)


@click.group(cls=HarnessGroup, epilog=EXIT_CODES)
@click.version_option(package_name="review-harness")
@click.option("--debug", is_flag=True, help="Show the traceback behind an error (also HARNESS_DEBUG=1).")
def cli(debug: bool) -> None:
    """Evaluate small, large and hybrid language models on Amazon reviews, as a leaderboard.

    \b
    Start here:
      harness run                   the default board, offline, on the embedded sample
      harness run --task polarity --model minilm --data reviews.tsv
      harness leaderboard runs/default --format md
      harness plugins               what is installed, and what failed to load
    """


@cli.command(epilog=EXIT_CODES)
@board_options("board_name", "tasks", "models", "data", "dataset", "backend", "limit")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Run directory [default: runs/BOARD]."
)
@click.option(
    "--replace",
    is_flag=True,
    help="Replace another board's run in --out (its reports go; the prediction cache stays). Without it, "
    "a run into a directory holding another board's run is refused; the same board's run resumes.",
)
@board_options("seed", "seeds", "repeats", "vary", "categories", "task_opts", "model_opts", "backend_opts",
               "text_col", "stars_col", "category_col", "title_col", "slice_col", "cluster_col")  # fmt: skip
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Prediction cache file [default: RUN_DIR/cache.sqlite]; share one across runs to reuse predictions.")  # fmt: skip
@board_options("bootstrap", "metrics")
@click.option(
    "--dry-run", is_flag=True, help="Check everything and print the plan (rows, memory, disk); run nothing."
)
@board_options("price_per_hour")
@view_options
@board_options("max_errors")
def run(**opts: Any) -> None:
    """Run a board (default: `default`) or the tasks x models given by flags, and print the leaderboard.

    Before any model runs, a preflight checks the whole board (models and
    their options, data and columns, checkpoints, run directory, memory) and
    reports every problem at once. A run that is interrupted resumes where it
    stopped when started again with the same command: every prediction is
    cached in the run directory. With --seeds 0,1,2 the board runs once per seed
    (RUN_DIR/seed-N/, one shared cache) and the leaderboard shows each row's
    mean over the seeds.
    """
    quiet_model_libraries()
    from harness.preflight_checks import preflight

    board = board_from_options(opts)
    run_dir = opts["out"] or DEFAULT_RUNS / board.name
    plan = preflight(get_host(), board, run_dir, cache_path=opts["cache_path"], dry_run=opts["dry_run"])
    from harness.run_dir import replace_other_board, run_dir_problem

    if problem := run_dir_problem(run_dir, board, replace=opts["replace"]):
        plan.problems.append(problem)
    if opts["dry_run"]:
        click.echo(plan.render(), nl=False)
    plan.raise_problems()
    if opts["dry_run"]:
        return
    for note in plan.notes:
        click.echo(f"note: {note}", err=True)
    from harness.progress import progress_for_stderr
    from harness.run import run_board
    from harness.run_settings import RunSettings

    if opts["replace"] and run_dir.is_dir():
        from harness.files import RunDirLock

        with RunDirLock(run_dir):  # not while another run writes there
            replace_other_board(run_dir, board)

    with progress_for_stderr() as progress:
        results = run_board(
            get_host(), board, run_dir, RunSettings(cache_path=opts["cache_path"], progress=progress)
        )
    from harness.results import leaderboard_rows

    rows = leaderboard_rows([run_dir])
    exporters = get_host().registries.exporters
    fmt = "terminal" if "terminal" in exporters else "text"
    table = render_format(fmt, exporters.get(fmt).obj.render, rows, View(opts["columns"], opts["wide"]))
    click.echo(table, nl=False)
    from harness.load_issues import malformed_summary

    click.echo(malformed_summary(run_dir, rows), nl=False)
    click.echo("\nfiles:")
    for path in sorted(p for p in run_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
        click.echo(f"  {path}")
    if board.seeds:
        click.echo(f"  {run_dir}/seed-N/: each seed's own run ({', '.join(map(str, board.seeds))})")
    if board.leaves_out and not board.seeds:
        click.echo(f"\nleft out to finish quickly: {board.leaves_out}")
    from harness.metrics import unparseable_flag

    flagged = [(r, flag) for r in results["rows"] if (flag := unparseable_flag(r))]
    for row, flag in flagged:
        click.echo(f"flagged: {row['task']} · {row['label']}: {flag}", err=True)
    errors = sum(r["status"] == "error" for r in results["rows"])
    if errors and debugging(click.get_current_context()):
        for failed in results["rows"]:
            if failed.get("traceback"):
                click.echo(f"{failed['task']} · {failed['model']}:\n{failed['traceback']}", err=True)
    if errors:
        raise RunFailed(f"{errors} row(s) failed; their errors are shown above")
    if flagged:
        raise RunFailed(f"{len(flagged)} row(s) flagged for unparseable answers (see above)")


def _latest_run() -> Path:
    candidates = sorted(DEFAULT_RUNS.glob("*/results.json"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise HarnessError("no runs found under runs/; run `harness run` first or give RUN_DIR")
    return candidates[-1].parent


@cli.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    default="text",
    show_default=True,
    help="text, terminal, md, csv, json, html (see `harness list exporters`).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to a file instead of stdout.",
)
@view_options
def leaderboard(
    run_dirs: tuple[Path, ...], fmt: str, output: Path | None, columns: tuple[str, ...], wide: bool
) -> None:
    """Render the leaderboard of one or more run directories (default: the latest run).

    The text formats fit the terminal (see --columns, --wide); the file formats keep every column.
    """
    from harness.files import atomic_write
    from harness.results import leaderboard_rows

    exporter = get_host().registries.exporters.get(fmt).obj
    rows = leaderboard_rows(list(run_dirs) or [_latest_run()])
    rendered = render_format(fmt, exporter.render, rows, View(columns, wide))
    if output is not None:
        atomic_write(output, rendered)
        click.echo(f"wrote {output}")
    elif isinstance(rendered, bytes):
        raise HarnessError(f"format {fmt!r} is binary; give --output FILE")
    else:
        click.echo(rendered, nl=False)


@cli.command()
@click.option("--hook", help="Only plugins implementing this hook.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(hook: str | None, as_json: bool) -> None:
    """List every plugin with its hooks, where it comes from, and its load errors."""
    host = get_host()
    registered: dict[str, list[str]] = {}
    try:
        registries = host.registries
        for kind in KINDS:
            for entry in registries.of_kind(kind):
                registered.setdefault(entry.plugin, []).append(f"{kind[:-1]}:{entry.name}")
    except HarnessError as exc:
        if host.strict:  # HARNESS_STRICT_PLUGINS=1: a broken contract fails the command
            raise
        click.echo(f"error: {exc}", err=True)
    infos = [p for p in host.plugins.values() if hook is None or hook in p.hooks]
    if as_json:
        out = [{**p.as_dict(), "registered": registered.get(p.name, [])} for p in infos]
        click.echo(json.dumps(out, indent=2))
        return
    for info in infos:
        status = " [FAILED]" if info.errors else ""
        click.echo(f"{info.name} ({info.source}){status}")
        click.echo(f"  hooks: {', '.join(info.hooks) or '-'}")
        if registered.get(info.name):
            click.echo(f"  registers: {', '.join(registered[info.name])}")
        for error in info.errors:
            click.echo(f"  error: {error}")


@cli.command(name="list")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--options", "with_options", is_flag=True, help="Also list each one's options.")
def list_(kind: str, with_options: bool) -> None:
    """List registered models, tasks, routers, backends, exporters, sources, boards or metrics."""
    for entry in get_host().registries.of_kind(kind):
        click.echo(f"{entry.name:<22} {entry.description}  [{entry.plugin}]")
        if with_options:
            for line in _option_lines(entry):
                click.echo(f"    {line}")


@cli.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), help="Where to look when the name is registered twice.")
def info(name: str, kind: str | None) -> None:
    """What a model, task, router or backend is: its plugin, the tasks it supports, and its options."""
    registries = get_host().registries
    kinds = [kind] if kind else [k for k in KINDS if name in registries.of_kind(k)]
    if not kinds:
        raise HarnessError(registries.models.unknown_message(name))
    for found in kinds:
        entry = registries.of_kind(found).get(name)
        click.echo(f"{entry.name} ({found[:-1]}, plugin {entry.plugin})")
        if entry.description:
            click.echo(f"  {entry.description}")
        if found == "models":
            click.echo(f"  tasks: {', '.join(entry.tasks) if entry.tasks is not None else 'any'}")
        click.echo("  options:")
        for line in _option_lines(entry):
            click.echo(f"    {line}")


def _option_lines(entry: Entry[Any]) -> list[str]:
    if entry.options is None:
        return ["those of the models it is built from"]
    return [option.describe() for option in entry.options] or ["none"]


@cli.command(name="new-plugin")
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to create the harness-NAME folder.",
)
def new_plugin(name: str, parent: Path) -> None:
    """Create a model plugin package (pyproject, model, tests, README) whose tests pass as generated."""
    from harness.scaffold import write_plugin

    folder = write_plugin(name, parent)
    click.echo(f"created {folder}; install it into this harness' environment and test it:")
    click.echo(f"  {sys.executable} -m pip install -e {folder}")
    click.echo(f"  cd {folder} && {sys.executable} -m pytest")


@cli.command()
def boards() -> None:
    """List the boards `harness run --board NAME` accepts (a path to a TOML file works too)."""
    for entry in get_host().registries.boards:
        click.echo(f"{entry.name:<12} {entry.description}  ({entry.obj})")


def _one_line_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    return f"warning: {message}\n"


def main() -> None:
    warnings.formatwarning = _one_line_warning
    try:
        host = get_host()
        host.add_commands(cli)  # a plugin that fails to load here, in strict mode, ends the command
    except HarnessError as exc:
        if debugging():
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    cli(prog_name="harness")
