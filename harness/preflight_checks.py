"""Checks a whole board before any model runs, and reports every problem at once.

A run that fails on its fifth model after fine-tuning four, or that spends
retries on an unreachable hub for each model in turn, costs minutes before it
says what is wrong. The preflight builds the board's tasks and models (their
factories load no weights), asks each model which checkpoints it needs for
each task, reads the data's first rows through each task, and looks at the
run directory and the memory the weights take. `harness run --dry-run` prints
the plan it makes, with the rows each task reads, keeps, trains on and scores.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.board_checks import board_problems
from harness.boards import SEED_COMPONENTS, Board
from harness.checkpoint_probe import (
    cached_snapshot,
    hub_answers,
    hub_cache_dir,
    hub_offline,
    looks_local,
    parameter_count,
)
from harness.errors import HarnessError
from harness.plugin_manager import PluginHost
from harness.types import FitsTrainSplit, IssueLog, NamesCheckpoints, Task

FIRST_ROWS = 200  # enough to see a missing column or an unreadable file, cheap on any file
BYTES_PER_PREDICTION = 1024  # a predictions.jsonl line (text cut at 500 characters) and its cache row
MIN_FREE_BYTES = 100 * 2**20
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
DEFAULT_DTYPES = {"cpu": "float32", "cuda": "bfloat16", "mps": "float32"}


class PreflightError(HarnessError):
    """Every problem the preflight found, one per line; nothing ran."""


@dataclass
class PlannedBackend:
    """The device a run will use, known without importing torch: enough for models to check their options."""

    name: str
    device: str
    dtype: str

    def setup(self) -> None:
        """Nothing to set up: no model runs in a preflight."""

    def synchronize(self) -> None:
        """Nothing queued: no model runs in a preflight."""

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "device": self.device, "dtype": self.dtype}


@dataclass
class TaskRows:
    """What a task makes of the data: rows read, kept, put in the train split and scored."""

    task: str
    read: int = 0
    kept: int = 0
    train: int = 0
    scored: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass
class ModelPlan:
    spec: str
    label: str
    tasks: list[str]
    checkpoints: list[str] = field(default_factory=list)
    parameters: int | None = None
    memory_bytes: int | None = None


@dataclass
class Plan:
    """The board as it will run, and what stands in its way."""

    board: str
    run_dir: Path
    backend: PlannedBackend
    data: str
    # A multi-seed run: its seeds, and the line saying which sources of randomness they vary.
    seeds: str = ""
    models: list[ModelPlan] = field(default_factory=list)
    rows: list[TaskRows] = field(default_factory=list)
    disk_bytes: int | None = None
    needed_bytes: int | None = None  # the free space the run asks for: the estimate, or a floor above it
    free_bytes: int | None = None
    memory_total: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def raise_problems(self) -> None:
        if self.problems:
            lines = [f"  - {problem}" for problem in self.problems] + [f"note: {note}" for note in self.notes]
            raise PreflightError(
                f"preflight found {len(self.problems)} problem(s); nothing ran:\n" + "\n".join(lines)
            )

    def render(self) -> str:
        """The plan as `harness run --dry-run` prints it."""
        backend = self.backend
        out = [
            f"board {self.board} -> {self.run_dir}",
            f"backend {backend.name} (device {backend.device}, dtype {backend.dtype}); data {self.data}",
        ]
        if self.seeds:
            out.append(self.seeds)
        for rows in self.rows:
            dropped = ", ".join(f"{k} {v}" for k, v in sorted(rows.dropped.items()) if v)
            out.append(
                f"task {rows.task}: read {rows.read}, kept {rows.kept}, train {rows.train}, scored {rows.scored}"
                + (f" (dropped: {dropped})" if dropped else "")
            )
        pairs = sum(len(m.tasks) for m in self.models)
        out.append(f"models ({pairs} rows of tasks x models):")
        for model in self.models:
            params = f"{model.parameters / 1e6:,.1f}M parameters" if model.parameters else "no weights known"
            memory = f", ~{_size(model.memory_bytes)}" if model.memory_bytes else ""
            out.append(f"  {model.label}: {', '.join(model.tasks) or 'no task'}; {params}{memory}")
        largest = max((m.memory_bytes or 0 for m in self.models), default=0)
        total = f" of {_size(self.memory_total)}" if self.memory_total else ""
        known = f"~{_size(largest)}" if largest else "unknown"
        out.append(f"memory: largest model {known}{total} ({backend.device})")
        disk = "unknown" if self.disk_bytes is None else f"~{_size(self.disk_bytes)}"
        needs = "" if self.needed_bytes is None else f"; the run needs about {_size(self.needed_bytes)} free"
        free = "" if self.free_bytes is None else f" ({_size(self.free_bytes)} free)"
        out.append(f"disk: predictions and cache {disk}{needs}{free}")
        out.extend(f"note: {note}" for note in self.notes)
        out.append(f"{len(self.problems)} problem(s), listed below" if self.problems else "no problems found")
        return "\n".join(out) + "\n"


def _seeds_line(board: Board) -> str:
    """What a multi-seed run repeats, so a reader of the plan knows what its spread measures."""
    if not board.seeds:
        return ""
    fixed = [c for c in SEED_COMPONENTS if c not in board.vary]
    held = f"; {', '.join(fixed)} held at seed {board.seed}" if fixed else ""
    return f"seeds {', '.join(map(str, board.seeds))}: varying {', '.join(board.vary)}{held}"


def _reason(exc: Exception) -> str:
    """The message as it is for the errors meant for people, with the exception's type for the others."""
    return (
        str(exc) if isinstance(exc, HarnessError | ValueError | OSError) else f"{type(exc).__name__}: {exc}"
    )


def _size(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def plan_backend(board: Board, *, load_torch: bool) -> PlannedBackend:
    """The board's device: `auto` asks torch when it may be loaded, else the NVIDIA driver's list of GPUs."""
    name = board.backend
    device = name if name in DEFAULT_DTYPES else "cpu"
    if name == "auto":
        device = _auto_device(load_torch)
    return PlannedBackend(name, device, board.backend_options.get("dtype", DEFAULT_DTYPES[device]))


def _auto_device(load_torch: bool) -> str:
    if load_torch:
        import torch

        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    gpus = Path("/proc/driver/nvidia/gpus")
    return "cuda" if gpus.is_dir() and any(gpus.iterdir()) else "cpu"


def preflight(
    host: PluginHost, board: Board, run_dir: Path, *, cache_path: Path | None = None, dry_run: bool = False
) -> Plan:
    """Check every part of `board`.

    A dry run also reads all the data through each task to count its rows,
    and never loads torch (so it cannot see the GPU's memory); a preflight
    before a run reads only the first rows, and asks torch about the device.
    """
    from harness.runner import build_model

    registries = host.registries
    backend = plan_backend(board, load_torch=not dry_run)
    plan = Plan(board.name, run_dir, backend, board.dataset or str(board.data), _seeds_line(board))
    if board.backend not in registries.backends:
        plan.problems.append(registries.backends.unknown_message(board.backend))
    plan.problems.extend(board_problems(board, registries))
    tasks: dict[str, Task] = {}
    learners: dict[str, list[str]] = {}  # task -> the models that learn from its train split
    for name in board.tasks:
        try:
            tasks[name] = registries.tasks.build(name, board.task_options.get(name, {}))
        except (HarnessError, ValueError) as exc:
            plan.problems.append(_reason(exc))  # the message names the task
    for entry in board.models:
        model_plan = ModelPlan(entry.spec, entry.display, [t for t in board.tasks if entry.runs_on(t)])
        plan.models.append(model_plan)
        try:
            model = build_model(entry.spec, entry.options_with(board.model_options), board.seed,
                                run_dir / "models", backend=backend, host=host)  # fmt: skip
        except Exception as exc:  # a plugin's factory may fail any way; the run would fail the same
            plan.problems.append(f"model {entry.display!r}: {_reason(exc)}")
            continue
        if isinstance(model, FitsTrainSplit):
            for task_name in model_plan.tasks:
                learners.setdefault(task_name, []).append(entry.display)
        family = registries.models.get(entry.spec.partition(":")[0])
        for task_name in model_plan.tasks:
            if task_name not in tasks or not isinstance(model, NamesCheckpoints):
                continue
            if not family.supports(task_name):
                continue  # board_problems has said so, in the words every family's refusal shares
            try:
                needed = [c for c in model.checkpoints(tasks[task_name]) if c not in model_plan.checkpoints]
            except Exception as exc:
                plan.problems.append(f"model {entry.display!r} cannot run task {task_name!r}: {_reason(exc)}")
                continue
            model_plan.checkpoints.extend(needed)
    _check_checkpoints(plan, load_torch=not dry_run)
    _check_data(host, board, tasks, plan, dry_run, learners)
    _check_run_dir(board, run_dir, cache_path, plan)
    return plan


# checkpoints: local, cached from the hub, or reachable --------------------------------------------------
def _check_checkpoints(plan: Plan, *, load_torch: bool) -> None:
    """Local paths exist, hub ids are downloaded or the hub answers; counts the parameters of what is here."""
    missing: dict[str, list[str]] = {}
    where: dict[str, Path] = {}
    for model in plan.models:
        for checkpoint in model.checkpoints:
            if looks_local(checkpoint):
                path = Path(checkpoint).expanduser()
                if path.exists():
                    where[checkpoint] = path
                else:
                    plan.problems.append(f"model {model.label!r}: no checkpoint at {checkpoint}")
            elif (snapshot := cached_snapshot(checkpoint)) is not None:
                where[checkpoint] = snapshot
            else:
                missing.setdefault(checkpoint, []).append(model.label)
    if missing:
        reason = "HF_HUB_OFFLINE is set" if hub_offline() else hub_answers()
        if reason is not None:
            for checkpoint, labels in missing.items():
                plan.problems.append(
                    f"model {labels[0]!r}: {checkpoint} is not in the hub cache and {reason}"
                )
            plan.notes.append(
                f"the hub cache is {hub_cache_dir()}: download the checkpoints where the hub is reachable, "
                "or give local paths"
            )
    elif (
        any(not looks_local(c) for m in plan.models for c in m.checkpoints)
        and not hub_offline()
        and hub_answers()
    ):
        # every checkpoint is downloaded but the hub does not answer: spare each model the hub's retries
        os.environ["HF_HUB_OFFLINE"] = "1"
        plan.notes.append("the hub does not answer; every checkpoint is in the cache, so HF_HUB_OFFLINE=1")
    dtype_bytes = DTYPE_BYTES.get(plan.backend.dtype, 4)
    counted = {checkpoint: parameter_count(path) for checkpoint, path in where.items()}
    for model in plan.models:
        counts = [counted.get(c) for c in model.checkpoints]
        if counts and all(counts):
            model.parameters = sum(c for c in counts if c)
            model.memory_bytes = model.parameters * dtype_bytes
    _check_memory(plan, load_torch=load_torch)


def _check_memory(plan: Plan, *, load_torch: bool) -> None:
    total, available = device_memory(plan.backend.device, load_torch=load_torch)
    plan.memory_total = total
    for model in plan.models:
        if model.memory_bytes is None or total is None:
            continue
        if model.memory_bytes > total:
            plan.problems.append(
                f"model {model.label!r}: its weights take ~{_size(model.memory_bytes)} in "
                f"{plan.backend.dtype}, more than the {_size(total)} of the {plan.backend.device} device"
            )
        elif available is not None and model.memory_bytes > available:
            plan.notes.append(
                f"model {model.label!r}: ~{_size(model.memory_bytes)} of weights, more than the "
                f"{_size(available)} free now"
            )


def device_memory(device: str, *, load_torch: bool) -> tuple[int | None, int | None]:
    """Total and available bytes of the device; a GPU's only where torch may be loaded."""
    if device == "cpu":
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        available = None
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
        except OSError:
            pass
        return total, available
    if device != "cuda" or not load_torch:
        return None, None
    import torch

    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return int(total), int(free)
    return None, None


# data ----------------------------------------------------------------------------------------------------
def _check_data(
    host: PluginHost,
    board: Board,
    tasks: dict[str, Task],
    plan: Plan,
    count_rows: bool,
    learners: dict[str, list[str]],
) -> None:
    """The data opens, its first rows parse, every task keeps some of them, and a train split that a model
    learns from holds two labels or more; optionally count every row."""
    from harness.split_source import open_reviews

    for name, task in tasks.items():
        issues = IssueLog()
        try:
            reviews: Iterator[Any] = open_reviews(host.registries, board, issues)
            if not count_rows:
                reviews = itertools.islice(reviews, FIRST_ROWS)
            splits = task.split(reviews, limit=board.limit if count_rows else None, seed=board.seed)
            scored = sum(1 for _ in splits.test)
        except Exception as exc:  # a source plugin may fail any way; every model would fail the same
            plan.problems.append(f"data {plan.data}: {_reason(exc)}")
            return  # the same failure for every task
        counts: Counter[str] = splits.counts
        read = counts.get("read", 0) or (scored + len(splits.train))
        if read == 0:
            first = "; ".join(str(i) for i in issues.issues[:3]) or "no reviews"
            plan.problems.append(f"data {plan.data}: no review could be read ({first})")
            return
        if scored + len(splits.train) == 0:
            reasons = ", ".join(f"{k} {v}" for k, v in counts.most_common() if k != "read" and v)
            plan.problems.append(
                f"task {name!r} keeps none of the first {read} reviews of {plan.data} ({reasons}); "
                "is a column missing or mapped wrongly? see --stars-col, --category-col"
            )
        if learners.get(name) and len({ex.label for ex in splits.train}) == 1:
            whole = count_rows or read < FIRST_ROWS
            _check_train_labels(host, board, task, splits.train, plan, learners[name], whole=whole)
        if count_rows:
            dropped = {k: v for k, v in counts.items() if k not in ("read", "kept", "train", "test")}
            kept = counts.get("kept", scored + len(splits.train))
            plan.rows.append(TaskRows(name, read, kept, len(splits.train), scored, dropped))


def _check_train_labels(
    host: PluginHost,
    board: Board,
    task: Task,
    train: list[Any],
    plan: Plan,
    models: list[str],
    *,
    whole: bool,
) -> None:
    """A train split of one label is refused: a model fitted on it answers that label for every review, or
    cannot be fitted at all. When the first rows alone gave one label, the whole data is read to be sure."""
    from harness.split_source import open_reviews

    if not whole:
        try:
            reviews = open_reviews(host.registries, board, IssueLog())
            train = task.split(reviews, limit=None, seed=board.seed).train
        except Exception:  # a file that breaks further on fails the run with its own message
            return
    labels = {ex.label for ex in train}
    if len(labels) != 1:
        return
    plan.problems.append(
        f"task {task.name!r}: all {len(train)} reviews of its train split are labelled "
        f"{task.labels[labels.pop()]!r}; {', '.join(models)} learn(s) from it and need(s) two labels or "
        "more (give data with both, or leave the model out)"
    )


# run directory -------------------------------------------------------------------------------------------
def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_run_dir(board: Board, run_dir: Path, cache_path: Path | None, plan: Plan) -> None:
    """The run directory (and the cache's) can be written, with room for the predictions and the cache."""
    for directory in {run_dir, (cache_path or run_dir / "cache.sqlite").parent}:
        parent = _existing_parent(directory)
        if not parent.is_dir():
            plan.problems.append(f"cannot make the directory {directory}: {parent} is a file")
        elif not os.access(parent, os.W_OK | os.X_OK):
            plan.problems.append(f"cannot write to {parent}: permission denied")
    scored = {rows.task: rows.scored for rows in plan.rows}
    if scored or board.limit:
        pairs = [scored.get(task, board.limit or 0) for model in plan.models for task in model.tasks]
        plan.disk_bytes = sum(pairs) * BYTES_PER_PREDICTION
    plan.free_bytes = shutil.disk_usage(_existing_parent(run_dir)).free
    needed = plan.needed_bytes = max(plan.disk_bytes or 0, MIN_FREE_BYTES)
    if plan.free_bytes < needed:
        plan.problems.append(
            f"{_existing_parent(run_dir)} has {_size(plan.free_bytes)} free; the run needs about {_size(needed)}"
        )
