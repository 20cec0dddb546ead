"""Runs a board: streams examples, batches them, calls models, caches and times every prediction.

Each task's examples are streamed from the source once per model (the split is
deterministic, so every model sees the same examples) and processed in chunks
sorted by length, so a multi-million-row file never sits in memory as Python
objects. Every prediction goes to the SQLite cache as soon as its batch ends,
which is what lets a killed run resume. A model that fails gets an error row;
the other models still run.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import sys
import threading
import time
import traceback
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from harness import provenance
from harness.board_checks import RUNNER_OPTIONS, board_problems
from harness.boards import SEED_COMPONENTS, Board, ModelEntry
from harness.budget import ErrorBudget
from harness.cache import CachedPrediction, PredictionCache, embedding_text, text_key
from harness.cost import hourly_price, latency_summary, row_cost
from harness.errors import DamagedData, HarnessError
from harness.files import RunDirLock, out_of_space, storage_error, write_json
from harness.intervals import MetricFn, bootstrap_intervals, cluster_codes, cluster_count, clustered_intervals
from harness.load_issues import IssueFile
from harness.memory import release_freed_memory
from harness.metrics import NO_LABEL, own_report, predictions, report, resolve, row_metrics, unparseable_flag
from harness.options import scoped_options
from harness.plugin_manager import PluginHost, get_host
from harness.reported import reported_rows
from harness.run_settings import RunSettings
from harness.slices import SliceNames, slice_report, text_features
from harness.split_source import BoardSplits, SplitSource
from harness.types import (
    DEFAULT_CLUSTER_COL,
    Backend,
    BatchStats,
    ChoosesBatchSize,
    ChoosesForWorkload,
    DistributesModels,
    Example,
    FitsTrainSplit,
    IssueLog,
    KnowsFittedFingerprint,
    Model,
    ModelContext,
    ModelOutput,
    NamesCheckpoints,
    ReportsRowStats,
    Router,
    RowStats,
    RunInfo,
    Splits,
    StoredLookup,
    Task,
)

CHUNK_SIZE = 512
DEFAULT_BATCH_SIZE = 32
# Reviews read ahead of scoring so a model's automatic choices know the run's size (a longer stream counts
# as this many: enough for any choice to know it is a large run).
LOOKAHEAD_REVIEWS = 5000
WARMUP_TEXTS = 2
PREDICTION_TEXT_CHARS = 500  # enough to read an error in `harness errors`, bounded for huge runs
MAX_IDS_SHOWN = 10  # review ids named in an error message; results.json keeps every failed review's id


class ReviewsFailed(HarnessError):
    """`predict` raised on these reviews; the message names them, the cause keeps the model's traceback."""

    exit_code = 1

    def __init__(
        self, ids: Sequence[str], cause: BaseException, what: str = "in a batch of {n} review(s)"
    ) -> None:
        shown = ", ".join(ids[:MAX_IDS_SHOWN]) + (
            f" and {len(ids) - MAX_IDS_SHOWN} more" if len(ids) > MAX_IDS_SHOWN else ""
        )
        super().__init__(f"{type(cause).__name__}: {cause} ({what.format(n=len(ids))}: {shown})")


@dataclass
class Row:
    """One leaderboard row: a model on a task, with metrics, runtime and counts."""

    task: str
    model: str
    label: str
    status: str = "ok"
    error: str | None = None
    traceback: str | None = None  # the failure's whole traceback, the model's own frames included
    # Reviews left out because the model failed on them alone, within the board's error budget (max_errors).
    failed_reviews: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, list[float]] = field(default_factory=dict)
    added_metrics: list[dict[str, Any]] = field(default_factory=list)
    n: int = 0
    runtime_s: float = 0.0
    fit_s: float = 0.0
    choose_s: float = 0.0  # automatic choices (an engine measured): a one-off, outside runtime and cost
    reviews_per_s: float | None = None
    truncated: int = 0
    cached: int = 0
    computed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    load_issues: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    backend: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    in_training: bool = False  # the task's data is in the model's training mixture (the board says so)
    slices: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Where the reviews fall into clusters: the column, how many clusters, and per metric the design effect.
    clustering: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scored:
    """What one row scored: example ids, gold label indices [n], probabilities [n, k], its metrics, and
    each example's cluster (None: a review on its own)."""

    ids: list[str]
    gold: np.ndarray
    probs: np.ndarray
    metrics: MetricFn
    clusters: list[str | None] = field(default_factory=list)


@dataclass
class RowJob:
    """One model on one task being scored: what every step of scoring reads, and the row it fills in."""

    task: Task
    entry: ModelEntry
    model: Model
    row: Row
    info: RunInfo


@dataclass
class Batching:
    """What carries over from batch to batch while a row is scored."""

    model_fp: str  # the fingerprints the row's predictions are cached under
    task_fp: str
    size: int  # the batch size, lowered for good when the model runs out of memory
    budget: ErrorBudget
    unfitted: list[Example] | None  # a train split the model is fitted on before it first predicts
    warmed: bool = False
    last_failure: BaseException | None = None  # the last failure the error budget allowed


@dataclass
class Collected:
    """What a row has scored, in scoring order: what its metrics, intervals and slices are computed from."""

    keep_raw: bool  # whether the model reads its raw texts back (ReportsRowStats)
    gold: array[int] = field(default_factory=lambda: array("q"))
    ids: list[str] = field(default_factory=list)
    clusters: list[str | None] = field(default_factory=list)  # interned: one string object per cluster
    probs: list[np.ndarray] = field(default_factory=list)  # one [chunk size, k] array per chunk
    latencies: array[float] = field(default_factory=lambda: array("d"))  # each example's seconds
    slices: SliceNames = field(default_factory=SliceNames)
    raw_texts: list[str | None] = field(default_factory=list)  # only where `keep_raw`


def split_spec(spec: str) -> tuple[str, str | None]:
    """`family:argument` -> (family, argument); a spec without a colon has no argument."""
    name, sep, arg = spec.partition(":")
    return name, (arg if sep else None)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def probabilities(output: np.ndarray | ModelOutput, n: int, k: int, model: str) -> ModelOutput:
    """Normalise what `predict` returned and refuse malformed output with a clear message."""
    result = output if isinstance(output, ModelOutput) else ModelOutput(probs=output)
    probs = np.asarray(result.probs, dtype=np.float32)
    if probs.shape != (n, k):
        raise HarnessError(
            f"model {model!r} returned probabilities of shape {probs.shape}, expected {(n, k)}"
        )
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise HarnessError(f"model {model!r} returned non-finite or negative probabilities")
    sums = probs.sum(axis=1)
    answered = sums > 0  # an all-zero row is an answer that names no label (see ModelOutput)
    if not np.allclose(sums[answered], 1.0, atol=1e-3):
        bad = sums[answered & ~np.isclose(sums, 1.0, atol=1e-3)][0]
        raise HarnessError(f"model {model!r} returned rows that do not sum to 1 (e.g. {bad:.4f})")
    result.probs = probs
    if result.embeddings is not None:
        embeddings = np.asarray(result.embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or len(embeddings) != n or not np.all(np.isfinite(embeddings)):
            raise HarnessError(f"model {model!r} returned embeddings of shape {embeddings.shape}, "
                               f"expected {n} finite rows")  # fmt: skip
        result.embeddings = embeddings
    if result.seconds is not None:
        seconds = np.asarray(result.seconds, dtype=np.float64)
        if seconds.shape != (n,) or not np.all(np.isfinite(seconds)) or np.any(seconds < 0):
            raise HarnessError(f"model {model!r} returned seconds of shape {seconds.shape}, expected {n} "
                               "finite non-negative values")  # fmt: skip
        result.seconds = seconds.tolist()
    return result


def is_out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def release_device_memory(backend: Backend) -> None:
    if backend.device == "cuda":
        import torch

        torch.cuda.empty_cache()


def call_with_timeout(fn: Callable[..., Any], args: tuple[Any, ...], timeout: float, model: str) -> Any:
    """Bound a call that may hang; the hung call is abandoned (a thread cannot be killed)."""
    if timeout <= 0:
        return fn(*args)
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn(*args)
        except BaseException as exc:
            result["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name=f"predict-{model}")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise HarnessError(f"model {model!r} took longer than its timeout of {timeout:g} s for one batch")
    if "error" in result:
        raise result["error"]
    return result["value"]


def chunked(items: Iterator[Example], size: int) -> Iterator[list[Example]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def flag_unparseable(row: Row, probs: np.ndarray) -> None:
    """Count the answers naming no label, and flag the row when they are too many to trust its scores."""
    if unparseable := int(np.sum(predictions(probs) == NO_LABEL)):
        row.extra["unparseable"] = unparseable
        row.extra["unparseable_share"] = round(unparseable / len(probs), 4)
        if flag := unparseable_flag({"extra": row.extra}):
            row.extra["unparseable_over_limit"] = True
            row.notes.append(flag)


def build_model(
    spec: str,
    options: Mapping[str, str],
    seed: int,
    workdir: Path,
    *,
    backend: Backend | None = None,
    backend_name: str = "cpu",
    backend_options: Mapping[str, str] | None = None,
    host: PluginHost | None = None,
    seeds: Mapping[str, int] | None = None,
    stored: StoredLookup | None = None,
) -> Model:
    """Build a model from its spec outside a run, as the runner does inside one.

    A worker process holding a model replica (the Ray backend's actors) calls
    this with the run's spec, options, seeds and workdir, so every replica is
    the model the runner would have built. Nested specs (hybrids) are built
    with the same backend and options. `seeds` maps seed components to their
    seeds (see `ModelContext.seed_for`); a missing component takes `seed`.
    `stored` reads the run's prediction cache for the models it builds (see
    `ModelContext.stored`).
    """
    host = host or get_host()
    registries = host.registries
    if backend is None:
        backend = registries.backends.build(backend_name, dict(backend_options or {}))

    def make_router(router_spec: str) -> Router:
        name, arg = split_spec(router_spec)
        router: Router = registries.routers.build(name, arg)
        return router

    def make(model_spec: str) -> Model:
        name, arg = split_spec(model_spec)
        context = ModelContext(
            backend=backend,
            workdir=workdir,
            seed=seed,
            options=scoped_options(options, name, model_spec),
            build_model=make,
            build_router=make_router,
            seeds=dict(seeds or {}),
            stored=stored,
        )
        model: Model = registries.models.build(name, arg, context)
        return model

    return make(spec)


def stored_lookup(cache: PredictionCache) -> StoredLookup:
    """What `ModelContext.stored` reads: a model's cached predictions of texts, under its own fingerprint."""

    def lookup(model: Model, texts: Sequence[str], task: Task) -> list[CachedPrediction | None]:
        keys = [text_key(text) for text in texts]
        found = cache.get_many(model.fingerprint(), task.fingerprint(), keys, len(task.labels))
        return [found.get(key) for key in keys]

    return lookup


class Runner:
    """Runs one board into one run directory."""

    def __init__(
        self,
        host: PluginHost,
        board: Board,
        run_dir: Path,
        settings: RunSettings | None = None,
        *,
        splits: SplitSource | None = None,
    ) -> None:
        """`settings` default to a run that keeps everything in `run_dir` and shows no progress; `splits` give
        the examples each task scores (default: `BoardSplits`, the board's own split)."""
        settings = settings or RunSettings()
        self.host = host
        self.registries = host.registries
        self.board = board
        self.run_dir = run_dir
        self.cache_path = settings.cache_in(run_dir)
        self.model_dir = settings.models_in(run_dir)
        self.progress = settings.progress
        self.splits: SplitSource = splits or BoardSplits(self.registries, board)
        # (task, spec, label): what each row scored, which a multi-seed run pools and distillation teaches from
        self.scored: dict[tuple[str, str, str], Scored] = {}
        self.backend: Backend = self.registries.backends.build(board.backend, board.backend_options)
        self.requested_metrics = resolve(board.metrics, self.registries.metrics)
        self.price = hourly_price(self.backend.describe(), board.price_per_hour)
        self.issue_file = IssueFile(run_dir)

    # building things from names -------------------------------------------------
    def make_task(self, name: str) -> Task:
        task: Task = self.registries.tasks.build(name, self.board.task_options.get(name, {}))
        return task

    def make_router(self, spec: str) -> Router:
        name, arg = split_spec(spec)
        router: Router = self.registries.routers.build(name, arg)
        return router

    def make_model(self, spec: str, options: dict[str, str], cache: PredictionCache | None = None) -> Model:
        """Build the model here, or let a backend that distributes models (Ray) build its replicas.

        Models built here can read `cache` for the models they are made of (a hybrid's large model).
        """
        workdir, seeds = self.model_dir, {c: self.board.seed_for(c) for c in SEED_COMPONENTS}
        if isinstance(self.backend, DistributesModels):
            return self.backend.distribute(spec, options, self.board.seed, workdir, seeds)
        stored = stored_lookup(cache) if cache is not None else None
        return build_model(
            spec, options, self.board.seed, workdir, backend=self.backend, host=self.host, seeds=seeds,
            stored=stored,
        )  # fmt: skip

    def runner_options(self, entry: ModelEntry) -> dict[str, Any]:
        """The options the runner itself reads for a model (batch size, timeout)."""
        options = entry.options_with(self.board.model_options)
        return RUNNER_OPTIONS.parse(scoped_options(options, split_spec(entry.spec)[0], entry.spec))

    # running ----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run every row; a full disk or an unwritable directory ends the run with one line naming it."""
        try:
            with RunDirLock(self.run_dir):
                return self._run_locked()
        except (OSError, sqlite3.Error) as exc:
            directory = self.cache_path.parent if isinstance(exc, sqlite3.Error) else self.run_dir
            error = storage_error(exc, directory)
            if error is None:
                raise
            raise error from exc

    def _run_locked(self) -> dict[str, Any]:
        problems = board_problems(self.board, self.registries)
        if problems:
            raise HarnessError("; ".join(problems) if len(problems) == 1 else "\n".join(problems))
        reported = reported_rows(Path(self.board.reported), self.board.tasks) if self.board.reported else []
        info = RunInfo(self.run_dir, self.board, now())
        self.backend.setup()
        self.host.notify("on_run_start", run=info)
        cache = PredictionCache(self.cache_path)
        rows: list[Row] = []
        predictions_path = self.run_dir / "predictions.jsonl"
        partial = predictions_path.with_name(".predictions.jsonl.partial")
        try:
            with open(partial, "w", encoding="utf-8") as out:
                for task_name in self.board.tasks:
                    task = self.make_task(task_name)
                    for entry in self.board.models:
                        if entry.runs_on(task_name):
                            rows.append(self.run_one(task, entry, cache, out, info))
            partial.replace(predictions_path)
        finally:
            cache.close()
            partial.unlink(missing_ok=True)
            self.issue_file.finish()
        results = {
            "schema": 1,
            "board": self.board.name,
            "started": info.started,
            "finished": now(),
            "config": self.board.as_dict(),
            "backend": self.backend.describe(),
            "provenance": provenance.collect(),
            "pricing": asdict(self.price) if self.price is not None else None,
            "rows": [asdict(row) for row in rows] + reported,
        }
        write_json(self.run_dir / "results.json", results)
        self.host.notify("on_run_end", run=info, results=results)
        return results

    def run_one(
        self, task: Task, entry: ModelEntry, cache: PredictionCache, out: IO[str], info: RunInfo
    ) -> Row:
        row = Row(task=task.name, model=entry.key, label=entry.display, backend=self.backend.describe())
        row.in_training = task.name in entry.in_training
        issues = self.issue_file.log()
        outcome = "interrupted"
        weights = False  # whether the model loads weights, whose memory goes back after the row
        try:
            model = self.make_model(entry.spec, entry.options_with(self.board.model_options), cache)
            weights = isinstance(model, NamesCheckpoints)
            splits = self.splits.open(task, issues)
            unfitted: list[Example] | None = None  # a train split the model has not been fitted on yet
            if isinstance(model, FitsTrainSplit) and splits.train:
                if isinstance(model, KnowsFittedFingerprint) and self.all_cached(
                    task, model.fitted_fingerprint(splits.train, task), cache
                ):
                    unfitted = splits.train
                    row.notes.append("every prediction was in the cache, so the model was not fitted")
                else:
                    self.fit(model, splits.train, task, entry, row, show=True)
            if isinstance(model, ChoosesForWorkload) and unfitted is None:
                ahead = list(itertools.islice(splits.test, LOOKAHEAD_REVIEWS))
                splits.test = itertools.chain(ahead, splits.test)
                with self.stage(f"{task.name} · {entry.display} · choosing an engine"):
                    start = time.perf_counter()
                    model.choose([ex.text for ex in ahead], len(ahead), task)
                    row.choose_s = time.perf_counter() - start
            scored = self.score(RowJob(task, entry, model, row, info), splits, cache, out, unfitted=unfitted)
            row.counts = dict(splits.counts)
            row.latency = latency_summary(scored.latencies, row.extra)
            row.cost = row_cost(row.n, row.fit_s + row.runtime_s, row.extra, self.price)
            row.notes.extend(splits.notes)
            outcome = "done"
        except Exception as exc:  # one model's failure must not end the board; a full disk ends it
            if out_of_space(exc) or isinstance(exc, DamagedData):  # as does a damaged data file
                raise
            outcome = "failed"
            row.status = "error"
            named = isinstance(exc, ReviewsFailed)
            row.error = str(exc) if named else f"{type(exc).__name__}: {exc}"
            cause = exc.__cause__ if named and exc.__cause__ is not None else exc
            if not isinstance(cause, HarnessError):
                row.traceback = "".join(traceback.format_exception(cause))
        finally:
            if self.progress is not None:
                self.progress.stop(outcome)
        row.load_issues = {
            "total": issues.total,
            "by_reason": dict(issues.counts),
            "first": [str(i) for i in issues.issues[:20]],
        }
        self.issue_file.keep(issues)
        if weights:  # a full collection costs a fraction of a second: paid only where weights are let go
            del model
            release_freed_memory()
        return row

    @contextmanager
    def stage(self, label: str) -> Iterator[None]:
        """A progress line with no count for a step before scoring, so a long one shows that something runs;
        it ends "failed" when the step raises, never "done"."""
        if self.progress is None:
            yield
            return
        self.progress.start(label, None)
        outcome = "failed"
        try:
            yield
            outcome = "done"
        finally:
            self.progress.stop(outcome)

    def fit(
        self,
        model: FitsTrainSplit,
        train: list[Example],
        task: Task,
        entry: ModelEntry,
        row: Row,
        *,
        show: bool,
    ) -> None:
        """Fit on the train split, timed into the row; `show` gives the fit its own progress line."""
        label = f"{task.name} · {entry.display} · fitting on {len(train)}"
        with self.stage(label) if show else nullcontext():
            start = time.perf_counter()
            model.fit(train, task)
            row.fit_s += time.perf_counter() - start

    def all_cached(self, task: Task, model_fp: str, cache: PredictionCache) -> bool:
        """Whether the cache holds every prediction of the row, read from a stream of its own."""
        task_fp, k = task.fingerprint(), len(task.labels)
        for chunk in chunked(self.splits.open(task, IssueLog()).test, CHUNK_SIZE):
            keys = {text_key(ex.text) for ex in chunk}
            if len(cache.get_many(model_fp, task_fp, list(keys), k)) < len(keys):
                return False
        return True

    def score(
        self,
        job: RowJob,
        splits: Splits,
        cache: PredictionCache,
        out: IO[str],
        *,
        unfitted: list[Example] | None = None,
    ) -> Collected:
        """Score every example into the row, writing its prediction records to `out`; returns what it scored.

        A model not yet fitted on `unfitted` is fitted before its first
        prediction, should one be missing from the cache after all.
        """
        state = self.batching(job, unfitted)
        collected = Collected(keep_raw=isinstance(job.model, ReportsRowStats))
        if self.progress is not None:
            self.progress.start(f"{job.task.name} · {job.entry.display}", self.splits.total(job.task))
        for chunk in chunked(splits.test, CHUNK_SIZE):
            found = self.predict_chunk(job, state, chunk, cache)
            scored = [ex for ex in chunk if text_key(ex.text) in found]  # less the failed reviews
            self.record_chunk(job, scored, found, collected, out)
        job.row.n = len(collected.gold)
        self.account_failures(job.row, state)
        if not collected.gold:  # an empty, header-only or unreadable file must not look like a finished row
            job.row.counts = dict(splits.counts)
            seen = ", ".join(f"{k} {v}" for k, v in sorted(splits.counts.items()) if v) or "no reviews read"
            raise HarnessError(f"no examples to score ({seen}); see the load issues for unreadable rows")
        self.measure(job, collected)
        return collected

    # scoring batches: the cache first, then the model, with timeouts, out-of-memory halving, error budget
    def batching(self, job: RowJob, unfitted: list[Example] | None) -> Batching:
        """How a row starts batching: the fingerprint its predictions are cached under and its batch size."""
        model, task = job.model, job.task
        task_fp = task.fingerprint()
        if unfitted is not None and isinstance(model, KnowsFittedFingerprint):
            model_fp = model.fitted_fingerprint(unfitted, task)
        else:
            model_fp = model.fingerprint()
        # The model's own figure first: it knows how many reviews keep all its streams or replicas busy.
        if isinstance(model, ChoosesBatchSize):
            size = int(model.batch_size)
        else:
            size = self.runner_options(job.entry)["batch_size"] or DEFAULT_BATCH_SIZE
        budget = ErrorBudget.parse(self.board.max_errors, "max_errors")
        return Batching(model_fp, task_fp, size, budget, unfitted)

    def predict_chunk(
        self, job: RowJob, state: Batching, chunk: list[Example], cache: PredictionCache
    ) -> dict[str, CachedPrediction]:
        """The chunk's predictions by text key: the cache's, then the model's in batches sorted by length.

        A batch that fails is split in halves down to the review that fails,
        which the error budget may leave out (it then has no prediction).
        """
        keys = [text_key(ex.text) for ex in chunk]
        found = cache.get_many(state.model_fp, state.task_fp, keys, len(job.task.labels))
        todo = sorted({key: i for i, key in enumerate(keys) if key not in found}.values(),
                      key=lambda i: len(chunk[i].text))  # fmt: skip
        job.row.cached += len(chunk) - len(todo)
        if self.progress is not None and len(chunk) > len(todo):
            self.progress.advance(len(chunk) - len(todo))
        start = size = 0
        splitting_until = 0  # a failed batch is split in halves up to here, then batches are whole again
        while start < len(todo):
            if start >= splitting_until:
                size = state.size
            batch = [chunk[i] for i in todo[start : start + size]]
            self.fit_if_unfitted(job, state)
            try:
                texts = [ex.text for ex in batch]
                output, seconds = self.timed_predict(job.model, texts, job.task, job.entry, warm=state.warmed)
            except Exception as exc:
                if self.halves(job, state, exc, batch):
                    size = len(batch) // 2
                    splitting_until = max(splitting_until, start + len(batch))
                else:
                    self.leave_out(job, state, exc, batch, list(zip(chunk, keys, strict=True)))
                    start += 1
                continue
            start += len(batch)
            self.keep_batch(job, state, batch, output, seconds, found, cache)
        return found

    def fit_if_unfitted(self, job: RowJob, state: Batching) -> None:
        """Fit a model whose fitting was skipped (its predictions seemed cached) before it first predicts."""
        model = job.model
        if state.unfitted is None or not isinstance(model, FitsTrainSplit):
            return
        self.fit(model, state.unfitted, job.task, job.entry, job.row, show=False)
        state.unfitted = None
        if model.fingerprint() != state.model_fp:
            raise HarnessError(
                f"model {job.entry.spec!r}: fitted_fingerprint() gave {state.model_fp!r} but the fitted "
                f"model's fingerprint() is {model.fingerprint()!r}; the two must agree"
            )

    def halves(self, job: RowJob, state: Batching, exc: Exception, batch: list[Example]) -> bool:
        """Whether a failed batch is split in halves: always when the model ran out of memory (the row's
        batch size is then lowered for good), otherwise when the error budget may leave a review out."""
        out_of_memory = is_out_of_memory(exc)
        if len(batch) <= 1 or not (out_of_memory or state.budget.allows_any):
            return False
        if out_of_memory:
            state.size = min(state.size, len(batch) // 2)
            job.row.extra["batch_size"] = state.size
            job.row.notes.append(f"out of memory: batch size halved to {state.size}")
            release_device_memory(self.backend)
        return True

    def leave_out(
        self,
        job: RowJob,
        state: Batching,
        exc: Exception,
        batch: list[Example],
        chunk: list[tuple[Example, str]],
    ) -> None:
        """Leave out the review heading a failed batch, and its duplicates in the chunk (examples with their
        text keys), within the error budget; without a budget, or beyond it, the row fails."""
        row, budget = job.row, state.budget
        if not budget.allows_any:
            raise ReviewsFailed([ex.id for ex in batch], exc) from exc
        state.last_failure, failed_key = exc, text_key(batch[0].text)
        same = [ex.id for ex, key in chunk if key == failed_key]
        row.failed_reviews += [{"id": id_, "error": f"{type(exc).__name__}: {exc}"} for id_ in same]
        if budget.exceeded(len(row.failed_reviews), self.board.limit):
            raise self.over_budget(row, budget, exc) from exc
        if self.progress is not None:
            self.progress.advance(len(same))

    def keep_batch(
        self,
        job: RowJob,
        state: Batching,
        batch: list[Example],
        output: ModelOutput,
        seconds: float,
        found: dict[str, CachedPrediction],
        cache: PredictionCache,
    ) -> None:
        """Cache a batch's predictions as soon as it ends, which is what lets a killed run resume."""
        state.warmed = True
        n = len(batch)
        each = output.seconds or [seconds / n] * n
        truncated = output.truncated or [False] * n
        raw: list[str | None] = list(output.raw_text) if output.raw_text else [None] * n
        vectors = list(output.embeddings) if output.embeddings is not None else [None] * n
        new = [(text_key(ex.text), p, lat, bool(t), r, e) for ex, p, lat, t, r, e
               in zip(batch, output.probs, each, truncated, raw, vectors, strict=True)]  # fmt: skip
        cache.put_many(state.model_fp, state.task_fp, new)
        for key, p, lat, t, r, e in new:
            found[key] = CachedPrediction(p, lat, t, r, None if e is None else np.asarray(e, np.float16))
        job.row.computed += n
        done = job.row.computed + job.row.cached
        self.host.notify(
            "on_batch_end",
            run=job.info,
            task=job.task.name,
            model=job.entry.key,
            batch=BatchStats(n, seconds, done),
        )
        if self.progress is not None:
            self.progress.advance(n)

    def account_failures(self, row: Row, state: Batching) -> None:
        """Fail a row whose failed reviews are more than the error budget allows; else note them."""
        failed, budget = row.failed_reviews, state.budget
        if not failed:
            return
        if budget.exceeded(len(failed), row.n + len(failed)):
            raise self.over_budget(row, budget, state.last_failure) from state.last_failure
        row.notes.append(
            f"{len(failed)} review(s) failed and are left out (within --max-errors {budget.text}): "
            + ", ".join(r["id"] for r in failed[:MAX_IDS_SHOWN])
            + (" ..." if len(failed) > MAX_IDS_SHOWN else "")
        )

    # writing prediction records -----------------------------------------------------------
    def record_chunk(
        self,
        job: RowJob,
        chunk: list[Example],
        found: dict[str, CachedPrediction],
        collected: Collected,
        out: IO[str],
    ) -> None:
        """Write a chunk's prediction records to `out` and add its examples to what the row scored."""
        if not chunk:
            return
        row = job.row
        keys = [text_key(ex.text) for ex in chunk]
        chunk_probs = np.stack([found[key].probs for key in keys])
        for ex, key, p in zip(chunk, keys, chunk_probs, strict=True):
            hit = found[key]
            row.runtime_s += hit.latency_s
            collected.latencies.append(hit.latency_s)
            row.truncated += int(hit.truncated)
            if collected.keep_raw:
                collected.raw_texts.append(hit.raw_text)
            record = self.prediction_record(job.task, job.entry, ex, p, hit)
            collected.slices.add(record)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        collected.gold.extend(ex.label for ex in chunk)
        collected.ids.extend(ex.id for ex in chunk)
        collected.clusters.extend(None if ex.cluster is None else sys.intern(ex.cluster) for ex in chunk)
        collected.probs.append(chunk_probs)

    # row metrics, intervals and slices ----------------------------------------------------
    def measure(self, job: RowJob, collected: Collected) -> None:
        """The row's metrics, from the run's registry, with their intervals (resampling clusters where the
        reviews fall into clusters), its raw-text measures and its slices; keeps what it scored for pooling
        seeds."""
        task, row, board = job.task, job.row, self.board
        gold = np.asarray(collected.gold, dtype=np.int64)
        probs = np.concatenate(collected.probs)
        flag_unparseable(row, probs)
        own = own_report(task, self.registries.metrics, gold, probs)
        metrics = row_metrics(task, self.registries.metrics, self.requested_metrics, own)
        row.metrics = {**own, **report(metrics.added, gold, probs, task.labels)}
        row.added_metrics = metrics.columns()
        row.notes.extend(metrics.notes)
        clusters = cluster_codes(collected.clusters)
        intervals, effects = clustered_intervals(
            metrics, gold, probs, resamples=board.bootstrap, seed=board.seed, clusters=clusters
        )
        row.intervals = {name: [lo, hi] for name, (lo, hi) in intervals.items()}
        if clusters is not None:
            row.clustering = {"column": board.source_options.get("cluster_col") or DEFAULT_CLUSTER_COL,
                              "clusters": cluster_count(clusters, row.n), "design_effect": effects}  # fmt: skip
        stats = RowStats()
        if isinstance(job.model, ReportsRowStats):  # covers cached predictions, never counts the warm-up
            stats = job.model.row_stats(collected.raw_texts, gold, task)
            row.extra.update(stats.extra)
            self.add_raw_measures(row, stats.measures, gold, clusters)
        key = (task.name, job.entry.spec, job.entry.display)
        self.scored[key] = Scored(collected.ids, gold, probs, metrics, collected.clusters)
        row.reviews_per_s = row.n / row.runtime_s if row.runtime_s > 0 else None
        row.slices = slice_report(
            collected.slices, gold, probs, metrics,
            resamples=board.bootstrap, seed=board.seed, clusters=clusters, flags=stats.flags,
        )  # fmt: skip

    @staticmethod
    def over_budget(row: Row, budget: ErrorBudget, last: BaseException | None) -> ReviewsFailed:
        """The error that fails a row whose failed reviews are more than its error budget allows."""
        failed = row.failed_reviews
        cause = last if last is not None else RuntimeError(failed[-1]["error"])
        return ReviewsFailed(
            [r["id"] for r in failed],
            cause,
            "{n} review(s) failed, more than --max-errors " + budget.text + " allows",
        )

    def add_raw_measures(
        self,
        row: Row,
        values: dict[str, np.ndarray],
        gold: np.ndarray,
        clusters: np.ndarray | None = None,
    ) -> None:
        """A model's per-review figures from its raw texts as metrics with intervals, shown as columns."""
        if not values:
            return
        names = list(values)
        table = np.column_stack([np.asarray(values[name], dtype=np.float64) for name in names])

        def means(_: np.ndarray, part: np.ndarray) -> dict[str, float]:
            return {name: float(np.mean(part[:, j])) for j, name in enumerate(names)}

        row.metrics.update(means(gold, table))
        intervals = bootstrap_intervals(
            means, gold, table, resamples=self.board.bootstrap, seed=self.board.seed, clusters=clusters
        )
        row.intervals.update({name: [lo, hi] for name, (lo, hi) in intervals.items()})
        row.added_metrics += [{"name": name, "higher_is_better": True} for name in names]

    def timed_predict(
        self, model: Model, texts: list[str], task: Task, entry: ModelEntry, *, warm: bool
    ) -> tuple[ModelOutput, float]:
        """One batch, device-synchronised; the first call of a model is preceded by an untimed warm-up."""
        timeout: float = self.runner_options(entry)["timeout"]
        if not warm:
            call_with_timeout(model.predict, (texts[:WARMUP_TEXTS], task), timeout, entry.spec)
        self.backend.synchronize()
        began = time.perf_counter()
        raw = call_with_timeout(model.predict, (texts, task), timeout, entry.spec)
        self.backend.synchronize()
        seconds = time.perf_counter() - began
        return probabilities(raw, len(texts), len(task.labels), entry.spec), seconds

    @staticmethod
    def prediction_record(
        task: Task, entry: ModelEntry, ex: Example, probs: np.ndarray, hit: CachedPrediction
    ) -> dict[str, Any]:
        pred = int(predictions(probs[None, :])[0])
        record: dict[str, Any] = {
            "task": task.name,
            "model": entry.key,
            "id": ex.id,
            "text": ex.text[:PREDICTION_TEXT_CHARS],
            "gold": task.labels[ex.label],
            "pred": task.labels[pred] if pred != NO_LABEL else None,
            "correct": pred == ex.label,
            "probs": [round(float(p), 6) for p in probs],
            "latency_s": round(hit.latency_s, 6),
            "truncated": hit.truncated,
            "features": text_features(ex.text),
        }
        if ex.facets:
            record["facets"] = dict(ex.facets)
        if ex.cluster is not None:
            record["cluster"] = ex.cluster
        if hit.raw_text is not None:
            record["raw_text"] = hit.raw_text
        if hit.embedding is not None:
            record["embedding"] = embedding_text(hit.embedding)
        return record
