"""Hook specifications: the whole surface a plugin can implement.

Registration hooks receive a `register` callback (the simonw/llm style), so a
plugin registers any number of things and the harness knows which plugin
registered each one. Lifecycle hooks let loggers and trackers follow a run.
Every hook here is documented in docs/plugins.md and exercised by a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from harness.registry import Register
    from harness.types import (
        BackendFactory,
        BatchStats,
        Exporter,
        Metric,
        ModelFactory,
        RouterFactory,
        RunInfo,
        Source,
        TaskFactory,
    )

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_models(register: Register[ModelFactory]) -> None:
    """Register model families.

    :param register: ``register(name, factory, description="", options=OptionSet(...), tasks=None)``.
        ``factory(arg, ctx)`` gets the part of the spec after the first colon
        (``flan-t5:google/flan-t5-small`` gives ``"google/flan-t5-small"``, or None)
        and a ``ModelContext``; it returns a ``Model``. ``options`` declares the
        ``--model-option`` names the family reads (None: it passes them on to the
        models it is built from); ``tasks`` the tasks it supports (None: any).
        Import torch inside the factory, never at module level, so listing
        plugins stays fast.
    """


@hookspec
def register_tasks(register: Register[TaskFactory]) -> None:
    """Register tasks.

    :param register: ``register(name, factory, description="", options=OptionSet(...))``;
        ``factory(options) -> Task`` gets the ``--task-option`` strings.
    """


@hookspec
def register_routers(register: Register[RouterFactory]) -> None:
    """Register hybrid routers.

    :param register: ``register(name, factory, description="")``; ``factory(param) -> Router``
        gets the text after the colon in ``confidence:0.9`` (or None).
    """


@hookspec
def register_backends(register: Register[BackendFactory]) -> None:
    """Register hardware backends.

    :param register: ``register(name, factory, description="", options=OptionSet(...))``;
        ``factory(options) -> Backend`` gets the ``--backend-option`` strings.
    """


@hookspec
def register_exporters(register: Register[Exporter]) -> None:
    """Register leaderboard formats.

    :param register: ``register(name, Exporter(suffix, render), description="")``.
    """


@hookspec
def register_sources(register: Register[Source]) -> None:
    """Register review sources.

    :param register: ``register(name, source, description="")``. A source sniffs a
        location (``--data PATH``) and streams ``Review`` objects, reporting
        malformed rows to an ``IssueLog`` instead of raising.
    """


@hookspec
def register_boards(register: Register[str | Path]) -> None:
    """Register leaderboard definitions.

    :param register: ``register(name, path_to_board_file, description="")``.
    """


@hookspec
def register_metrics(register: Register[Metric]) -> None:
    """Register metrics.

    :param register: ``register(name, metric, description="")``; ``metric`` is a ``Metric``: one
        number from gold label indices and probabilities. The tasks it names report it by
        default, and ``harness run --metric NAME`` adds it to any row.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``harness`` command line.

    :param cli: the ``harness`` click group: decorate functions with ``@cli.command()``.
    """


@hookspec
def on_run_start(run: RunInfo) -> None:
    """Called once before any model runs.

    :param run: the run's directory, board and start time.
    """


@hookspec
def on_batch_end(run: RunInfo, task: str, model: str, batch: BatchStats) -> None:
    """Called after every scored batch (cached examples cause none).

    :param run: the run's directory, board and start time.
    :param task: the task's name.
    :param model: the model's spec.
    :param batch: its size, device-synchronised seconds and the examples done so far.
    """


@hookspec
def on_run_end(run: RunInfo, results: dict[str, Any]) -> None:
    """Called once after results.json has been written.

    :param run: the run's directory, board and start time.
    :param results: the content of results.json.
    """
