"""Metrics as a plugin kind: which `harness.Metric`s a row reports, and the `evaluate` adapter.

A metric is one number computed from gold label indices and probabilities, so
it can be recomputed from stored predictions and bootstrapped like any other.
Plugins register metrics through `register_metrics`, each naming the tasks
that report it without being asked; `harness run --metric NAME` (or a board's
`metrics = [...]`) adds any registered metric, or any Hugging Face `evaluate`
module as `evaluate:PATH_OR_NAME`, to every row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.types import Metric

if TYPE_CHECKING:
    import numpy as np

    from harness.registry import Registry
    from harness.types import Task

EVALUATE_PREFIX = "evaluate:"


# The prediction of a row that names no label (an unparseable generated answer): wrong for every gold label.
NO_LABEL = -1
# Beyond this share of answers naming no label, a row's scores measure the answer parser (or a server that
# does not give what the scoring mode reads), not the model: the row is flagged and the run exits 1.
UNPARSEABLE_LIMIT = 0.5


def predictions(probs: np.ndarray) -> np.ndarray:
    """The argmax label of each row (ties go to the lower label index); NO_LABEL for an all-zero row.

    A generated answer that names no label is an all-zero row: it must count as
    wrong whatever the gold label, never as the first label a uniform row's
    argmax would give.
    """
    import numpy as np

    probs = np.asarray(probs)
    return np.where(probs.max(axis=1) > 0, probs.argmax(axis=1), NO_LABEL)


def registered(registry: Registry[Any], name: str) -> Metric:
    """A registered metric, checked to be one and to carry the name it is registered under."""
    entry = registry.get(name)
    metric = entry.obj
    if not isinstance(metric, Metric) or metric.name != name:
        raise HarnessError(
            f"plugin {entry.plugin!r} registered metric {name!r} as {metric!r}; "
            f"register a harness.Metric whose name is {name!r}"
        )
    return metric


def defaults(registry: Registry[Any], task: str, n_labels: int) -> list[Metric]:
    """The registered metrics that name `task` and suit its label count, in name order.

    Something registered that is not a `Metric` names no task, so it cannot
    break a task's rows; it is refused where `--metric` asks for it.
    """
    named = [e.name for e in registry if isinstance(e.obj, Metric) and task in e.obj.tasks]
    return [m for m in (registered(registry, name) for name in named) if m.applies_to(n_labels)]


def report(
    metrics: Sequence[Metric], gold: np.ndarray, probs: np.ndarray, labels: Sequence[str]
) -> dict[str, float]:
    import numpy as np

    gold = np.asarray(gold, dtype=np.int64)
    probs = np.asarray(probs, dtype=float).reshape(len(gold), len(labels))
    return {m.name: float(m.compute(gold, probs, labels)) for m in metrics}


def resampled_report(
    metrics: Sequence[Metric], gold: np.ndarray, probs: np.ndarray, labels: Sequence[str], index: np.ndarray
) -> dict[str, np.ndarray]:
    """`report` on every resample `index` [r, n] names: [r] values per metric, in one array operation where it can."""
    import numpy as np

    gold = np.asarray(gold, dtype=np.int64)
    probs = np.asarray(probs, dtype=float).reshape(len(gold), len(labels))
    return {
        m.name: np.asarray(
            m.resampled(gold, probs, labels, index)
            if m.resampled
            else [float(m.compute(gold[row], probs[row], labels)) for row in index],
            dtype=np.float64,
        )
        for m in metrics
    }


def task_metrics(task: Task) -> list[Metric]:
    """The registered metrics that name `task` and suit its label count, in the process-wide registry."""
    from harness.plugin_manager import get_host

    return defaults(get_host().registries.metrics, task.name, len(task.labels))


def task_report(task: Task, gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """A task's default metrics from the registry: what a task's `metrics()` returns without listing them."""
    return report(task_metrics(task), gold, probs, task.labels)


def uses_registered(task: Task) -> bool:
    """Whether the task's own metrics are the registered ones that name it (its `metrics` is
    `RegisteredMetrics.metrics`), so that a run computes them from its own registry."""
    return type(task).metrics is RegisteredMetrics.metrics


def own_report(task: Task, registry: Registry[Any], gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """A task's own metrics in a run: those of a task whose metrics are the registered ones come from the
    run's `registry`, as every other metric of its rows does, never from the process-wide one."""
    if uses_registered(task):
        return report(defaults(registry, task.name, len(task.labels)), gold, probs, task.labels)
    return task.metrics(gold, probs)


class RegisteredMetrics:
    """Base of a task whose metrics are the registered ones that name it, as the built-in tasks' are.

    Knowing which `Metric`s a task's figures come from lets its rows'
    bootstrap intervals use each metric's `resampled` form; a task with a
    `metrics` of its own is resampled one call at a time.
    """

    name: str
    labels: tuple[str, ...]

    def metrics(self, gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
        """The registered metrics that name this task (the built-in ones: harness.tasks.builtin_metrics)."""
        return task_report(self, gold, probs)  # type: ignore[arg-type]


def resolve(specs: Sequence[str], registry: Registry[Any]) -> list[Metric]:
    """The metrics `--metric` names, each once; fails on an unknown or unloadable one before anything runs."""
    metrics: dict[str, Metric] = {}
    for spec in specs:
        if spec.startswith(EVALUATE_PREFIX):
            metric = evaluate_metric(spec.removeprefix(EVALUATE_PREFIX))
        else:
            metric = registered(registry, spec)
        metrics.setdefault(metric.name, metric)
    return list(metrics.values())


@dataclass
class RowMetrics:
    """What a row reports: the task's own metrics plus `added`; `shown` become leaderboard columns.

    `registry` is the run's: a task whose metrics are the registered ones is
    measured from it, on the whole row and on every resample.
    """

    task: Task
    registry: Registry[Any]
    added: list[Metric] = field(default_factory=list)
    shown: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __call__(self, gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
        return {
            **own_report(self.task, self.registry, gold, probs),
            **report(self.added, gold, probs, self.task.labels),
        }

    def resampled(self, gold: np.ndarray, probs: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
        """The row's metrics on every resample `index` [r, n] names (see `harness.intervals`)."""
        from harness.intervals import on_resamples

        labels = self.task.labels
        if uses_registered(self.task):
            registered = defaults(self.registry, self.task.name, len(labels))
            own = resampled_report(registered, gold, probs, labels, index)
        else:
            own = on_resamples(self.task.metrics, gold, probs, index)
        return {**own, **resampled_report(self.added, gold, probs, labels, index)}

    def columns(self) -> list[dict[str, Any]]:
        """Recorded in the row, so that any format can show and rank the columns without the plugins."""
        return [{"name": m.name, "higher_is_better": m.higher_is_better} for m in self.shown]


def row_metrics(
    task: Task, registry: Registry[Any], requested: Sequence[Metric], own: Collection[str]
) -> RowMetrics:
    """Add to the task's own metrics (`own`, the names it reports) those the registry or the user asks for.

    A requested metric that does not suit the task's label count is left out
    of that task's rows with a note, not an error: the board's other tasks
    still get it.
    """
    n_labels = len(task.labels)
    chosen = RowMetrics(task, registry)
    for metric in defaults(registry, task.name, n_labels):
        if metric.name not in own:
            chosen.added.append(metric)
            chosen.shown.append(metric)
    for metric in requested:
        if not metric.applies_to(n_labels):
            chosen.notes.append(
                f"metric {metric.name!r} not computed: it needs {metric.label_range()}, "
                f"task {task.name!r} has {n_labels}"
            )
        elif metric.name not in {m.name for m in chosen.shown}:
            chosen.shown.append(metric)
            if metric.name not in own:
                chosen.added.append(metric)
    return chosen


def evaluate_metric(path_or_name: str) -> Metric:
    """A Hugging Face `evaluate` module as a metric, fed the argmax predictions and the references as label indices.

    A local module (its `.py` script or directory) loads offline; a hub name
    needs the hub. The module's result must hold one number, or one under the
    module's own name.
    """
    spec = EVALUATE_PREFIX + path_or_name
    try:
        import evaluate

        module = evaluate.load(path_or_name, keep_in_memory=True)
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [""])[0]
        raise HarnessError(
            f"metric {spec!r} cannot be loaded ({type(exc).__name__}: {detail}); offline, give the path "
            "of a local evaluate module (its .py script or directory)"
        ) from None
    name = EVALUATE_PREFIX + module.name

    def compute(gold: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> float:
        result = module.compute(predictions=predictions(probs).tolist(), references=gold.tolist())
        return _one_number(result, module.name, spec)

    description = (module.description or "").strip().split("\n\n")[0].replace("\n", " ")
    return Metric(name, compute, description=description or f"Hugging Face evaluate module {path_or_name}")


def _one_number(result: Any, key: str, spec: str) -> float:
    numbers = {
        k: v for k, v in (result or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    if key in numbers:
        return float(numbers[key])
    if len(numbers) == 1:
        return float(next(iter(numbers.values())))
    raise HarnessError(
        f"metric {spec!r} returned {sorted(result or {})}; a metric here must return one number "
        f"(or one named {key!r})"
    )


def unparseable_flag(row: Mapping[str, Any]) -> str | None:
    """Why a finished row's scores cannot be trusted for its unparseable answers, or None when they can."""
    share = float((row.get("extra") or {}).get("unparseable_share") or 0.0)
    if row.get("status", "ok") != "ok" or share <= UNPARSEABLE_LIMIT:
        return None
    return (
        f"{share:.0%} of the answers name no label, more than the {UNPARSEABLE_LIMIT:.0%} allowed: "
        "the scores say more about the answers' format than about the model"
    )
