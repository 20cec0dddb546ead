"""Conformance checks for model plugins, for a plugin's own tests to call.

`check_model_plugin(plugin, "name", workdir=tmp_path)` builds the model the
way `harness run` does (through a plugin host, so the contracts are checked
too) and fails with an AssertionError that says what to fix when the model:
- returns probabilities of the wrong shape, or rows that do not sum to 1;
- has a fingerprint that changes between two identical instances, or stays
  the same when an option that changes predictions changes (a stale cache);
- cannot score an empty review, a review of spaces, or a review of 1 MB;
- answers differently when asked twice;
- fails on a task it declared it supports.
The project runs the same checks on every built-in model family.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.options import Option
from harness.plugin_manager import PluginHost
from harness.registry import Entry
from harness.runner import build_model, probabilities
from harness.types import Example, FitsTrainSplit, Model, ModelFactory, Task

EDGE_TEXTS = ("", "   \n\t ", "great " * 175_000)  # empty, whitespace only, about 1 MB
ORDINARY_TEXTS = (
    "Great value, works perfectly and arrived early. I love it.",
    "Broke after two days. Terrible quality, I want a refund.",
    "A thriller novel that kept me reading until 3am.",
)
TRAIN_REVIEWS = 40
CHANGED_WORD = "zyzzyva"  # added to a string or word-list option: a word no review is likely to hold


def check_model_plugin(
    plugin: object,
    spec: str,
    *,
    workdir: Path,
    options: Mapping[str, str] | None = None,
    option_changes: Mapping[str, str] | None = None,
    tasks: Sequence[str] | None = None,
    host: PluginHost | None = None,
) -> None:
    """Every check above, for the model `spec` of `plugin` (a module or object with hooks).

    `options` are given to every instance; `option_changes` are values that
    must change the fingerprint (by default one for each declared option that
    changes predictions: bool, choice, number, word list, and string with a default). `tasks` default to the tasks
    the model declares, or polarity and category.
    """
    if host is None:
        host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
        host.register(plugin, "plugin-under-test")
    family = spec.partition(":")[0]
    entry = host.registries.models.get(family)
    given = dict(options or {})
    for task_name in tasks or entry.tasks or ("polarity", "category"):
        task = host.registries.tasks.build(task_name, {})
        train = _train_split(host, task)
        model = _prepared(spec, given, workdir, host, task, train)
        _check_probabilities(model, task, spec)
        _check_fingerprint_is_stable(model, _prepared(spec, given, workdir, host, task, train), spec)
        guessed = _free_text(entry) if option_changes is None else set()
        for key, value in _changes(entry, option_changes).items():
            try:
                changed = _prepared(spec, {**given, key: value}, workdir, host, task, train)
            except (HarnessError, ValueError):
                if key in guessed:  # a string with a format of its own (NAME=label,...) refused the guess
                    continue
                raise
            assert changed.fingerprint() != model.fingerprint(), (
                f"{spec}: option {key}={value} changes predictions but not the fingerprint, so the "
                "prediction cache would serve answers of the old setting; put it in fingerprint()"
            )


def run_model_plugin(
    plugin: object,
    spec: str,
    *,
    task: str,
    workdir: Path,
    limit: int = 50,
    options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One leaderboard row of `spec` on the demo reviews, run as `harness run` runs it (results.json's row)."""
    from harness.boards import Board, ModelEntry
    from harness.run import run_board

    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})  # the built-in plugins ...
    host.register(plugin, "plugin-under-test")  # ... and the one under test
    board = Board(
        name="plugin-test",
        tasks=[task],
        models=[ModelEntry(spec, options=dict(options or {}))],
        limit=limit,
        bootstrap=20,
    )
    [row] = run_board(host, board, workdir)["rows"]
    return dict(row)


def _train_split(host: PluginHost, task: Task) -> list[Example]:
    source = host.registries.sources.get("demo").obj
    from harness.types import IssueLog, SourceOptions

    splits = task.split(source.read("demo", SourceOptions(), IssueLog()), limit=None, seed=0)
    return list(itertools.islice(splits.train, TRAIN_REVIEWS))


def _prepared(
    spec: str, options: Mapping[str, str], workdir: Path, host: PluginHost, task: Task, train: list[Example]
) -> Model:
    model = build_model(spec, options, 0, workdir, backend_name="cpu", host=host)
    if isinstance(model, FitsTrainSplit):
        model.fit(train, task)
    return model


def _check_probabilities(model: Model, task: Task, spec: str) -> None:
    texts = [*ORDINARY_TEXTS, *EDGE_TEXTS]
    first = probabilities(model.predict(texts, task), len(texts), len(task.labels), spec).probs
    again = probabilities(model.predict(texts, task), len(texts), len(task.labels), spec).probs
    assert np.allclose(first, again, atol=1e-5), (
        f"{spec}: two predictions of the same reviews differ (largest difference "
        f"{np.abs(first - again).max():.3g}); a model must be deterministic for the cache to hold"
    )
    one_by_one = np.concatenate(
        [probabilities(model.predict([t], task), 1, len(task.labels), spec).probs for t in ORDINARY_TEXTS]
    )
    assert np.allclose(first[: len(ORDINARY_TEXTS)], one_by_one, atol=1e-4), (
        f"{spec}: a review's probabilities depend on the other reviews of its batch"
    )


def _check_fingerprint_is_stable(model: Model, twin: Model, spec: str) -> None:
    assert model.fingerprint() == twin.fingerprint(), (
        f"{spec}: two instances with the same options have different fingerprints, so nothing is ever "
        "read back from the prediction cache; build the fingerprint from weights and options only"
    )


def _changes(entry: Entry[ModelFactory], given: Mapping[str, str] | None) -> dict[str, str]:
    if given is not None:
        return dict(given)
    if entry.options is None:
        return {}
    return {
        o.name: value for o in entry.options if o.affects_output and (value := _other_value(o)) is not None
    }


def _free_text(entry: Entry[ModelFactory]) -> set[str]:
    """Names of the string options without choices, whose changed value is a guess the model may refuse."""
    return {o.name for o in entry.options or () if o.kind is str and not o.choices}


def _other_value(option: Option) -> str | None:
    """A value unlike the default, for the option kinds where one can be chosen without knowing the model."""
    default: Any = option.default
    if option.kind is bool:
        return str(not default).lower()
    if option.choices:
        return next((c for c in option.choices if c != default), None)
    if option.kind is int and default is not None:
        return str(default + 1)
    if option.kind is float and default is not None:
        return str(default * 2 if default else 0.5)
    if option.kind is list:  # a word list: one more word
        return ",".join([*(default or ()), CHANGED_WORD])
    if option.kind is str and default is not None:  # a template or prefix: the same text, one word longer
        return f"{default} {CHANGED_WORD}"
    return None  # a string without a default names a file or checkpoint: no value can be guessed
