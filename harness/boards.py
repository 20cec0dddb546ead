"""Boards: which tasks x models x backend x data make a leaderboard, as TOML data files.

A board file is parsed as data, never executed. `harness run` without flags
runs the `default` board; flags build an ad-hoc board of the same shape.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.budget import NO_BUDGET, ErrorBudget
from harness.errors import HarnessError

# The sources of randomness a seed controls, each of which a multi-seed run can vary or hold fixed
# (`harness run --seeds 0,1,2 --vary demos`): the task's train/test split, fine-tuning (initialisation
# and data order), the choice of few-shot demonstrations, and the sample a calibration is fitted on.
SEED_COMPONENTS = ("split", "finetune", "demos", "calibration")

BOARD_KEYS = {
    "name", "description", "tasks", "models", "data", "dataset", "backend", "backend_options",
    "limit", "seed", "seeds", "vary", "task_options", "model_options", "source_options", "sort", "bootstrap",
    "metrics", "price_per_hour", "reported", "leaves_out", "max_errors",
}  # fmt: skip
MODEL_KEYS = {"spec", "name", "label", "options", "tasks", "in_training"}
# Other names a task is known by: the study calls its category task "correlation analysis".
TASK_ALIASES = {"correlation": "category"}


def task_name(name: str) -> str:
    """The registered name of a task given by any of its names (`correlation` is `category`)."""
    return TASK_ALIASES.get(name, name)


@dataclass
class ModelEntry:
    """One row of a board: a model spec, its display label, options, and the tasks it runs on.

    `name` tells rows and predictions apart when a board runs one spec twice
    with different options (Flan scoring labels and Flan generating answers);
    it defaults to the spec.
    """

    spec: str
    label: str = ""
    options: dict[str, str] = field(default_factory=dict)
    tasks: list[str] | None = None
    # Tasks whose data is in the model's training mixture (Flan saw amazon_polarity): its rows on them are
    # in-domain, not zero-shot, and every format marks them.
    in_training: list[str] = field(default_factory=list)
    name: str = ""

    @property
    def display(self) -> str:
        return self.label or self.spec

    @property
    def key(self) -> str:
        """What results.json and predictions.jsonl call this model."""
        return self.name or self.spec

    def runs_on(self, task: str) -> bool:
        return self.tasks is None or task in self.tasks

    def options_with(self, board_options: dict[str, str]) -> dict[str, str]:
        """The options this model gets: the board's for every model, then its own, which win."""
        return {**board_options, **self.options}


@dataclass
class Board:
    name: str
    tasks: list[str]
    models: list[ModelEntry]
    description: str = ""
    data: str | None = "demo"
    dataset: str | None = None
    backend: str = "auto"
    backend_options: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    seed: int = 0
    task_options: dict[str, dict[str, str]] = field(default_factory=dict)
    # Options for every model of the board; each model reads those it declares, and its own win.
    model_options: dict[str, str] = field(default_factory=dict)
    source_options: dict[str, str] = field(default_factory=dict)
    sort: str | None = None
    bootstrap: int = 1000
    metrics: list[str] = field(default_factory=list)
    # Dollars per hour of the hardware; None: the packaged list price of the detected device.
    price_per_hour: float | None = None
    # A multi-seed run: the board runs once per seed; the components in `vary` take that seed, the
    # others keep `seed`. Each seed's run gets `component_seeds` for the components held fixed.
    seeds: list[int] = field(default_factory=list)
    vary: list[str] = field(default_factory=lambda: list(SEED_COMPONENTS))
    component_seeds: dict[str, int] = field(default_factory=dict)
    # A TOML file of figures a study reported, shown beside the measured rows (see harness/reported.py).
    reported: str | None = None
    # What the board leaves out to finish quickly, and the flags that add it back (printed after its table).
    leaves_out: str = ""
    # Reviews a row may lose to model errors before it fails: a count or a share, e.g. "5%" (harness.budget).
    max_errors: str = NO_BUDGET

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def seed_for(self, component: str) -> int:
        """The seed of one source of randomness (see `SEED_COMPONENTS`): held fixed, or the run's seed."""
        return self.component_seeds.get(component, self.seed)

    def for_seed(self, seed: int) -> Board:
        """The single-seed board one seed of a multi-seed run executes."""
        fixed = {component: self.seed for component in SEED_COMPONENTS if component not in self.vary}
        return replace(self, seed=seed, seeds=[], component_seeds=fixed)


def check_seeds(seeds: list[int], where: str) -> list[int]:
    """A multi-seed run needs two or more distinct seeds."""
    if len(seeds) < 2:
        raise HarnessError(f"{where}: a multi-seed run needs at least two seeds (one seed is --seed N)")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise HarnessError(f"{where}: seed(s) {repeated} given twice")
    return seeds


def check_vary(components: list[str], where: str) -> list[str]:
    """Component names from `SEED_COMPONENTS` ('all' for every one), in their canonical order."""
    if components == ["all"]:
        return list(SEED_COMPONENTS)
    unknown = [c for c in components if c not in SEED_COMPONENTS]
    if unknown or not components:
        raise HarnessError(
            f"{where}: unknown seed component(s) {unknown}; choose from {', '.join(SEED_COMPONENTS)} or all"
        )
    return [c for c in SEED_COMPONENTS if c in components]


def _strings(mapping: Any, where: str) -> dict[str, str]:
    if not isinstance(mapping, dict):
        raise HarnessError(f"{where} must be a table of key = value")
    return {str(k): _string(v) for k, v in mapping.items()}


def _string(value: Any) -> str:
    """A TOML value as the string an option parses: `true`, `3`, or a list of words as `a,b`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _model_entry(raw: Any, where: str) -> ModelEntry:
    if isinstance(raw, str):
        return ModelEntry(spec=raw)
    if not isinstance(raw, dict) or "spec" not in raw:
        raise HarnessError(f"{where}: each model is a spec string or a table with a 'spec' key")
    unknown = set(raw) - MODEL_KEYS
    if unknown:
        raise HarnessError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(MODEL_KEYS)}")
    tasks = raw.get("tasks")
    return ModelEntry(
        spec=str(raw["spec"]),
        name=str(raw.get("name", "")),
        label=str(raw.get("label", "")),
        options=_strings(raw.get("options", {}), f"{where}.options"),
        tasks=[task_name(str(t)) for t in tasks] if tasks is not None else None,
        in_training=[task_name(str(t)) for t in raw.get("in_training", [])],
    )


def board_from_dict(raw: dict[str, Any], origin: str) -> Board:
    unknown = set(raw) - BOARD_KEYS
    if unknown:
        raise HarnessError(f"{origin}: unknown key(s) {sorted(unknown)}; allowed: {sorted(BOARD_KEYS)}")
    for required in ("tasks", "models"):
        if not raw.get(required):
            raise HarnessError(f"{origin}: '{required}' is required and must not be empty")
    limit = raw.get("limit")
    return Board(
        name=str(raw.get("name", Path(origin).stem)),
        description=str(raw.get("description", "")),
        tasks=[task_name(str(t)) for t in raw["tasks"]],
        models=[_model_entry(m, f"{origin}: models[{i}]") for i, m in enumerate(raw["models"])],
        data=raw.get("data", None if raw.get("dataset") else "demo"),
        dataset=raw.get("dataset"),
        backend=str(raw.get("backend", "auto")),
        backend_options=_strings(raw.get("backend_options", {}), f"{origin}: backend_options"),
        limit=int(limit) if limit else None,
        seed=int(raw.get("seed", 0)),
        task_options={
            task_name(str(t)): _strings(o, f"{origin}: task_options.{t}")
            for t, o in raw.get("task_options", {}).items()
        },
        model_options=_strings(raw.get("model_options", {}), f"{origin}: model_options"),
        source_options=_strings(raw.get("source_options", {}), f"{origin}: source_options"),
        sort=raw.get("sort"),
        bootstrap=int(raw.get("bootstrap", 1000)),
        metrics=[str(m) for m in raw.get("metrics", [])],
        price_per_hour=float(raw["price_per_hour"]) if "price_per_hour" in raw else None,
        seeds=check_seeds([int(s) for s in raw["seeds"]], f"{origin}: seeds") if "seeds" in raw else [],
        vary=check_vary([str(c) for c in raw.get("vary", ["all"])], f"{origin}: vary"),
        reported=str(Path(origin).parent / raw["reported"]) if raw.get("reported") else None,
        leaves_out=str(raw.get("leaves_out", "")),
        max_errors=ErrorBudget.parse(str(raw.get("max_errors", NO_BUDGET)), f"{origin}: max_errors").text,
    )


def load_board(path: Path) -> Board:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"board file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"board file {path} is not valid TOML: {exc}") from None
    return board_from_dict(raw, str(path))
