"""Hook specifications: the whole surface a plugin can implement.

Registration hooks receive a `register` callback (the simonw/llm style), so a
plugin registers any number of things and the harness knows which plugin
registered each one. Lifecycle hooks let loggers and trackers follow a run.
Every hook here is documented in docs/plugins.md and exercised by a test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Register model families: ``register(name, factory, description="")``.

    ``factory(arg, ctx)`` gets the part of the spec after the first colon
    (``flan-t5:google/flan-t5-small`` gives ``"google/flan-t5-small"``, or None)
    and a ``ModelContext``; it returns a ``Model``. Import torch inside the
    factory, never at module level, so listing plugins stays fast.
    """


@hookspec
def register_tasks(register: Callable[..., None]) -> None:
    """Register tasks: ``register(name, factory, description="")``; ``factory(options) -> Task``."""


@hookspec
def register_routers(register: Callable[..., None]) -> None:
    """Register hybrid routers: ``register(name, factory, description="")``; ``factory(param) -> Router``."""


@hookspec
def register_backends(register: Callable[..., None]) -> None:
    """Register hardware backends: ``register(name, factory, description="")``; ``factory(options) -> Backend``."""


@hookspec
def register_exporters(register: Callable[..., None]) -> None:
    """Register leaderboard formats: ``register(name, Exporter(...), description="")``."""


@hookspec
def register_sources(register: Callable[..., None]) -> None:
    """Register review sources: ``register(name, source, description="")``.

    A source sniffs a location (``--data PATH``) and streams ``Review`` objects,
    reporting malformed rows to an ``IssueLog`` instead of raising.
    """


@hookspec
def register_metrics(register: Callable[..., None]) -> None:
    """Register metrics: ``register(name, metric, description="")``; ``metric`` is a ``Metric``.

    A metric computes one number from gold label indices and probabilities; the
    tasks it names report it by default, and ``harness run --metric NAME`` adds
    it to any row.
    """


@hookspec
def register_boards(register: Callable[..., None]) -> None:
    """Register leaderboard definitions: ``register(name, path_to_board_file, description="")``."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add subcommands to the ``harness`` click group: ``@cli.command()``."""


@hookspec
def on_run_start(run: Any) -> None:
    """Called once before any model runs; ``run`` is the ``RunInfo`` (directory, config)."""


@hookspec
def on_batch_end(run: Any, task: str, model: str, batch: Any) -> None:
    """Called after every scored batch; ``batch`` is a ``BatchStats`` (size, seconds, done)."""


@hookspec
def on_run_end(run: Any, results: dict[str, Any]) -> None:
    """Called once with the results.json content after it has been written."""
