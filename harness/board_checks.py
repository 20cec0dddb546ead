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
# A spec's argument holds other specs only for a family that builds models (a hybrid: `SMALL>LARGE@ROUTER`).
_NESTED_SPEC = re.compile(r"[^>@,\s]+")


def nested_specs(spec: str, models: Registry[ModelFactory]) -> list[str]:
    """The spec, then the specs its argument builds models from, for a family that passes its options on
    to the models it builds (a hybrid); any other argument is a name (`openai:smollm2` serves a model
    called smollm2, which is not the smollm2 family)."""
    family, _, argument = spec.partition(":")
    found = [spec]
    if family in models and models.get(family).options is None:
        for piece in _NESTED_SPEC.findall(argument):
            if piece.partition(":")[0] in models:
                found.extend(s for s in nested_specs(piece, models) if s not in found)
    return found


def spec_families(spec: str, models: Registry[ModelFactory]) -> list[str]:
    """The registered model families a spec names: its own, then those of the models it is built from."""
    heads = (nested.partition(":")[0] for nested in nested_specs(spec, models))
    return list(dict.fromkeys(head for head in heads if head in models))


def declared_options(families: Iterable[str], models: Registry[ModelFactory]) -> set[str] | None:
    """Option names the families read; None when one of them passes options on to models it builds."""
    names = set(RUNNER_OPTIONS.names())
    for family in families:
        options = models.get(family).options
        if options is None:
            return None
        names.update(options.names())
    return names


def board_problems(board: Board, registries: Registries) -> list[str]:
    """Every model option no model declares and every model put on a task it does not support."""
    models = registries.models
    problems: list[str] = []
    board_names: set[str] = set(RUNNER_OPTIONS.names())
    every_option = False
    # Scope -> option names a scoped option (`smollm2.engine`) may name: a family's, or a whole spec's.
    scopes: dict[str, set[str] | None] = {}
    board_families: list[str] = []
    for entry in board.models:
        families = spec_families(entry.spec, models)
        if not families or families[0] != entry.spec.partition(":")[0]:
            continue  # an unknown family: the row reports it with a did-you-mean
        board_families.extend(families)
        problems.extend(_ambiguous_options(entry.options, families, models))
        problems.extend(_task_problems(entry, board.tasks, families[0], registries))
        for family in families:
            scopes[family] = declared_options([family], models)
        for nested in nested_specs(entry.spec, models)[1:]:  # a hybrid's stages, `words:b`
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
    problems.extend(_ambiguous_options(board.model_options, board_families, models))
    given = [*board.model_options, *(key for entry in board.models for key in entry.options)]
    problems.extend(_scoped_problems([key for key in given if "." in key], scopes))
    if not every_option:
        for key in board.model_options:
            if "." not in key and key not in board_names:
                owner = "the models of this board (" + ", ".join(e.display for e in board.models) + ")"
                problems.append(unknown_option_message(key, sorted(board_names), owner, verb="read"))
    return problems


def _ambiguous_options(
    options: dict[str, str], families: Iterable[str], models: Registry[ModelFactory]
) -> list[str]:
    """Unscoped options that two families of the board read with different meanings.

    `mode=generate` means a served model's scoring mode to `openai` and the
    in-process scorer's to `smollm2`; given once, it would switch both, which
    is rarely what a board comparing the two wants, so it must name its model.
    Options that cannot change predictions (an engine's name) may differ.
    """
    problems = []
    for key, value in options.items():
        if "." in key:
            continue
        meanings: dict[tuple[type, tuple[str, ...]], list[str]] = {}
        for family in dict.fromkeys(families):
            declared = models.get(family).options
            option = next((o for o in declared or () if o.name == key), None)
            if option is not None and option.affects_output:
                meanings.setdefault((option.kind, option.choices), []).append(family)
        if len(meanings) > 1:
            readers = [
                (names[0], "|".join(choices) or kind.__name__) for (kind, choices), names in meanings.items()
            ]
            problems.append(
                f"model option {key!r} means different things to "
                + " and ".join(f"{family} ({kinds})" for family, kinds in readers)
                + "; scope it to the model it is for: "
                + " or ".join(f"{family}.{key}={value}" for family, _ in readers)
            )
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
