"""A board checked against what its plugins declared, before any model runs.

Each model family declares the options it reads and the tasks it supports
when it registers; a misspelled option or a model put on a task it cannot do
is refused here, with every problem of the board listed at once, instead of
failing deep inside the fifth model after the first four have run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from harness.boards import Board, ModelEntry
from harness.options import Option, OptionSet, unknown_option_message
from harness.registry import Registries, Registry
from harness.types import ModelFactory

# Options the runner reads for every model, whatever its family declares.
RUNNER_OPTIONS = OptionSet(
    Option("batch_size", int, None, "texts per predict call, for models that do not choose", minimum=1),
    Option(
        "timeout", float, 0.0, "seconds one batch may take (0: no limit)", minimum=0, affects_output=False
    ),
)
_SPEC_TOKEN = re.compile(r"[^>@:,\s]+")
_NESTED_SPEC = re.compile(r"[^>@\s]+")


def spec_families(spec: str, models: Registry[ModelFactory]) -> list[str]:
    """The registered model families a spec names: its own, then those of the models it is built from."""
    seen: list[str] = []
    for token in _SPEC_TOKEN.findall(spec):
        if token in models and token not in seen:
            seen.append(token)
    return seen


def declared_options(families: Iterable[str], models: Registry[ModelFactory]) -> set[str] | None:
    """Option names the families read; None when one of them passes options on to models it builds."""
    names = set(RUNNER_OPTIONS.names())
    for family in families:
        options = models.get(family).options
        if options is None:
            return None
        names.update(options.names())
    return names


def plan_problems(board: Board, registries: Registries) -> list[str]:
    """Every model option no model declares and every model put on a task it does not support."""
    models = registries.models
    problems: list[str] = []
    board_names: set[str] = set(RUNNER_OPTIONS.names())
    every_option = False
    # Scope -> option names a scoped option (`smollm2.engine`) may name: a family's, or a whole spec's.
    scopes: dict[str, set[str] | None] = {}
    for entry in board.models:
        families = spec_families(entry.spec, models)
        if not families or families[0] != entry.spec.partition(":")[0]:
            continue  # an unknown family: the row reports it with a did-you-mean
        problems.extend(_task_problems(entry, board.tasks, families[0], registries))
        for family in families:
            scopes[family] = declared_options([family], models)
        for nested in _NESTED_SPEC.findall(entry.spec.partition(":")[2]):  # a hybrid's stages, `words:b`
            if nested.partition(":")[0] in models:
                scopes[nested] = declared_options([nested.partition(":")[0]], models)
        known = declared_options(families, models)
        scopes[entry.spec] = known
        if known is None:
            every_option = True
            continue
        board_names |= known
        for key in entry.options:
            if "." not in key and key not in known:
                problems.append(unknown_option_message(key, sorted(known), f"model {entry.display!r}"))
    given = [*board.model_options, *(key for entry in board.models for key in entry.options)]
    problems.extend(_scoped_problems([key for key in given if "." in key], scopes))
    if not every_option:
        for key in board.model_options:
            if "." not in key and key not in board_names:
                owner = "the models of this board (" + ", ".join(e.display for e in board.models) + ")"
                problems.append(unknown_option_message(key, sorted(board_names), owner, verb="read"))
    return problems


def _scoped_problems(keys: list[str], scopes: dict[str, set[str] | None]) -> list[str]:
    """`FAMILY.KEY` options whose family is not on the board, or does not declare KEY."""
    problems = []
    for key in dict.fromkeys(keys):
        scope, _, name = key.rpartition(".")
        if scope not in scopes:
            problems.append(
                f"model option {key!r}: no model {scope!r} on this board (families and specs: "
                f"{', '.join(sorted(scopes))})"
            )
            continue
        known = scopes[scope]
        if known is not None and name not in known:
            problems.append(unknown_option_message(name, sorted(known), f"model {scope!r}"))
    return problems


def _task_problems(entry: ModelEntry, tasks: list[str], family: str, registries: Registries) -> list[str]:
    registered = registries.models.get(family)
    return [
        f"model {entry.display!r} supports the {', '.join(registered.tasks or ())} task(s) only "
        f"(declared by plugin {registered.plugin!r}), not {task!r}; give it `tasks = [...]` in the board "
        "or leave it out"
        for task in tasks
        if entry.runs_on(task) and task in registries.tasks and not registered.supports(task)
    ]
