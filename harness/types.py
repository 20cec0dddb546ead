"""The nouns every plugin shares: reviews, tasks, examples, predictions, models.

Everything here is plain data or a Protocol, so that plugins can be written and
tested without importing the runner, and so that importing this module never
pulls in torch or transformers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from harness.boards import SEED_COMPONENTS

if TYPE_CHECKING:
    import numpy as np

    from harness.boards import Board
    from harness.cache import CachedPrediction


@dataclass(frozen=True, slots=True)
class Review:
    """One customer review as a source delivers it, before any task looks at it."""

    id: str
    text: str
    title: str = ""
    stars: int | None = None
    category: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    # The group the review belongs to for intervals (its product, by default): see `SourceOptions.cluster_col`.
    cluster: str | None = None


@dataclass(frozen=True, slots=True)
class Example:
    """A review turned into a task input: the text a model sees and the gold label index.

    `facets` are what slicing reads besides the text (stars, category and a
    user's `slice_col`), as strings; models never see them. `cluster` is the
    review's group (its product): reviews of one group are not independent,
    so intervals resample whole groups.
    """

    id: str
    text: str
    label: int
    facets: Mapping[str, str] = field(default_factory=dict)
    cluster: str | None = None


@dataclass
class LoadIssue:
    """A row a source could not use; the run goes on and the issue is counted and shown."""

    source: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.reason}"


class IssueLog:
    """Collects load issues so that bad rows are reported, not silently lost.

    Only the first `keep` issues are kept verbatim; all are counted, so a file
    with a million bad rows cannot exhaust memory.
    """

    def __init__(self, keep: int = 100) -> None:
        self.keep = keep
        self.issues: list[LoadIssue] = []
        self.counts: Counter[str] = Counter()
        self.on_issue: Callable[[LoadIssue], None] | None = None

    def add(self, source: str, line: int | None, reason: str) -> None:
        issue = LoadIssue(source, line, reason)
        self.counts[reason.split(":")[0]] += 1
        if len(self.issues) < self.keep:
            self.issues.append(issue)
        if self.on_issue is not None:
            self.on_issue(issue)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# The column whose reviews are clustered when the data has it and no other is chosen (`--cluster`).
DEFAULT_CLUSTER_COL = "product_id"
NO_CLUSTER = "none"


@dataclass
class SourceOptions:
    """How to read a source: column mapping for CSV/JSONL and anything source-specific.

    `cluster_col` names the column that groups reviews for intervals; None
    means `DEFAULT_CLUSTER_COL` where the data has it, and `NO_CLUSTER` none.
    """

    text_col: str | None = None
    stars_col: str | None = None
    category_col: str | None = None
    title_col: str | None = None
    cluster_col: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Source(Protocol):
    """Reads reviews from one kind of location (a TSV file, a JSONL file, a HF dataset...)."""

    description: str

    def sniff(self, location: str) -> bool:
        """True when this source can read `location` (used to pick a source for `--data`)."""
        ...

    def read(self, location: str, options: SourceOptions, issues: IssueLog) -> Iterator[Review]:
        """Stream reviews; malformed rows go to `issues` and never stop the stream."""
        ...


@dataclass
class Splits:
    """What a task makes of a review stream.

    `test` is an iterator (consumed once, streaming); `train` is materialised
    because fine-tuning needs several passes. `counts` is filled in while `test`
    is consumed (kept, dropped by reason, truncated...), so read it afterwards.
    """

    test: Iterator[Example]
    train: list[Example]
    counts: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


@runtime_checkable
class Task(Protocol):
    """A classification task over reviews (polarity, category...)."""

    name: str
    labels: tuple[str, ...]
    label_words: tuple[str, ...]
    prompt: str

    def split(self, reviews: Iterable[Review], *, limit: int | None, seed: int) -> Splits:
        """Turn reviews into a train list and a streamed, scored test set; deterministic per seed."""
        ...

    def metrics(self, gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
        """Headline metrics from gold label indices [n] and probabilities [n, k]."""
        ...

    def fingerprint(self) -> str:
        """Identity of the task definition (labels, prompt, input policy) for the prediction cache."""
        ...


@dataclass
class ModelOutput:
    """What `predict` may return when it has more to say than probabilities.

    A plain array of probabilities [n, k] is always accepted; this adds the
    per-example truncation flags, for generative models the raw text, and for
    models whose forward pass yields a review embedding (a classifier's
    [CLS]/pooled state) that embedding [n, d]: it costs nothing extra to
    return, the runner stores it with the prediction, and a router can learn
    from it (see `LearnsToRoute`). `seconds`, per example, replaces the
    call's measured time shared evenly when the model knows better: a hybrid
    whose large model's answers were read from the run's cache gives them the
    seconds that model's own row measured.
    """

    probs: np.ndarray
    truncated: Sequence[bool] | None = None
    raw_text: Sequence[str] | None = None
    embeddings: np.ndarray | None = None
    seconds: Sequence[float] | None = None


@runtime_checkable
class Model(Protocol):
    """The whole model contract: probabilities over the task's labels for a batch of texts.

    Optional: `fit(train: Sequence[Example], task: Task) -> None` for models
    that learn from the task's train split, and `batch_size: int` as a hint to
    the runner.
    """

    name: str

    def predict(self, texts: Sequence[str], task: Task) -> np.ndarray | ModelOutput:
        """Probabilities [len(texts), len(task.labels)], rows summing to 1."""
        ...

    def fingerprint(self) -> str:
        """Identity of the weights and settings, so the prediction cache never mixes models."""
        ...


# Optional capabilities: a model or backend has them by defining the member; the runner checks with isinstance.


@runtime_checkable
class FitsTrainSplit(Protocol):
    """A model that learns from the task's train split; the runner calls `fit` before any `predict`."""

    def fit(self, train: Sequence[Example], task: Task) -> None: ...


@runtime_checkable
class ChoosesForWorkload(Protocol):
    """A model that makes automatic choices (an engine, a precision) once it knows the run's workload.

    The runner calls `choose` after `fit` and before any `predict`, as a stage
    of its own, timed apart from fitting and scoring: what it spends is a
    one-off cost, not the per-review time or dollars of the row. `sample` is
    the first reviews the run will score, `reviews` how many it will score (at
    least: a long stream is counted only so far), so that a choice is measured
    only where the time it can save pays for the measuring.
    """

    def choose(self, sample: Sequence[str], reviews: int, task: Task) -> None: ...


@runtime_checkable
class KnowsFittedFingerprint(Protocol):
    """A model that learns from the train split and can say, without fitting, the fingerprint `fit` gives it.

    The runner then skips the fit when every prediction of the row is in the cache
    (a rerun, a sweep replaying a finished run), and fits before the first one that is not.
    """

    def fitted_fingerprint(self, train: Sequence[Example], task: Task) -> str: ...


@runtime_checkable
class ChoosesBatchSize(Protocol):
    """A model that knows how many texts a `predict` call should get; wins over the batch_size option."""

    batch_size: int


@runtime_checkable
class NamesCheckpoints(Protocol):
    """A model that can say which weights it loads for a task, so a preflight checks them before a run."""

    def checkpoints(self, task: Task) -> list[str]: ...


@dataclass(frozen=True)
class RowStats:
    """What a model adds to its row once every review is scored.

    `extra` is recorded in the row's `extra` (two keys feed its columns:
    `token_cost_usd`, and `request_latency_p50_s` with `request_latency_p95_s`);
    `measures` holds per-review values by metric name, whose means the row
    reports as metrics with bootstrap intervals; `flags` holds one bool per
    review by flag name, whose share every slice of the row reports as
    `<name>_share`.
    """

    extra: dict[str, Any] = field(default_factory=dict)
    measures: dict[str, np.ndarray] = field(default_factory=dict)
    flags: dict[str, list[bool]] = field(default_factory=dict)


@runtime_checkable
class ReportsRowStats(Protocol):
    """A model with statistics of its own for its row: counts, raw-text measures, per-review flags.

    Called once at the end of a row with the stored raw texts (so cached
    predictions count too), the gold labels and the task, in scoring order.
    """

    def row_stats(self, raw_texts: Sequence[str | None], gold: np.ndarray, task: Task) -> RowStats: ...


@runtime_checkable
class Backend(Protocol):
    """Where models run: device, dtype, threads; describes itself for results.json."""

    name: str
    device: str
    dtype: str

    def setup(self) -> None:
        """Apply process-wide settings (threads...) before models load."""
        ...

    def synchronize(self) -> None:
        """Wait for queued device work, so timings measure the work and not its launch."""
        ...

    def describe(self) -> dict[str, Any]:
        """Backend, device name, dtype and threads, as recorded in results.json."""
        ...


@runtime_checkable
class DistributesModels(Protocol):
    """A backend that builds model replicas itself (Ray's actors) instead of one in-process model."""

    def distribute(
        self, spec: str, options: Mapping[str, str], seed: int, workdir: Path, seeds: Mapping[str, int]
    ) -> Model:
        """Replicas of `spec` built as `build_model` would build it, with the run's component `seeds`."""
        ...


@runtime_checkable
class Router(Protocol):
    """Decides which examples a hybrid escalates from its small model to its large one."""

    name: str

    def escalate(self, probs: np.ndarray) -> np.ndarray:
        """Boolean mask [n]: True where the small model's probabilities say 'ask the large model'."""
        ...


@runtime_checkable
class LearnsToRoute(Protocol):
    """A router that learns when escalating helps (small model wrong, large right) before a hybrid scores.

    A hybrid holding one sets aside a calibration part of the train split
    (never the scored reviews), fits its models on the rest, runs both on the
    calibration part and calls `fit`; from then on it routes with `escalate_outputs`,
    which sees the review texts and the small model's whole output (its
    embeddings too), not only the probabilities `escalate` gets.
    """

    def fit(
        self, texts: Sequence[str], small: ModelOutput, large: ModelOutput, gold: np.ndarray
    ) -> dict[str, Any]:
        """Learn from the calibration reviews; returns what to record of the fit in results.json."""
        ...

    def escalate_outputs(self, texts: Sequence[str], small: ModelOutput) -> np.ndarray:
        """Boolean mask [n]: True where the fitted router asks the large model."""
        ...


# A metric on gold label indices [n], probabilities [n, k] and the label names; and on many resamples at once.
ComputeFn = Callable[["np.ndarray", "np.ndarray", Sequence[str]], float]
ResampledFn = Callable[["np.ndarray", "np.ndarray", Sequence[str], "np.ndarray"], "np.ndarray"]


@dataclass(frozen=True)
class Metric:
    """One number from gold label indices [n], probabilities [n, k] and the task's label names.

    `tasks` are the tasks that report it by default; `min_labels` and
    `max_labels` bound the label counts it makes sense for (an accuracy on the
    positive class needs a two-label task). `resampled`, where given, is the
    same metric on many bootstrap resamples at once: `resampled(gold, probs,
    labels, index)` gives [r], the metric on `gold[index[i]], probs[index[i]]`
    for each row i of `index` [r, n]; without it the bootstrap calls `compute`
    once per resample.
    """

    name: str
    compute: ComputeFn
    higher_is_better: bool = True
    tasks: tuple[str, ...] = ()
    min_labels: int = 2
    max_labels: int | None = None
    description: str = ""
    resampled: ResampledFn | None = None

    def applies_to(self, n_labels: int) -> bool:
        return n_labels >= self.min_labels and (self.max_labels is None or n_labels <= self.max_labels)

    def label_range(self) -> str:
        if self.max_labels is None:
            return f"{self.min_labels} or more labels"
        if self.max_labels == self.min_labels:
            return f"exactly {self.min_labels} labels"
        return f"{self.min_labels} to {self.max_labels} labels"


# The run's stored predictions of a model for texts of a task, None where there is none (`ModelContext.stored`).
StoredLookup = Callable[[Model, Sequence[str], Task], "list[CachedPrediction | None]"]


@dataclass
class ModelContext:
    """What a model factory gets besides its argument.

    `build_model` builds another model from a spec, so hybrids can nest;
    `workdir` is where a model keeps what it makes (fine-tuned weights) so a
    later run with the same config reuses it. `seed` is the run's seed;
    `seeds` holds the seed of each of `SEED_COMPONENTS` (read it with
    `seed_for`), which differ from `seed` when a multi-seed run holds some
    components fixed. `stored`, inside a run, reads the run's prediction cache
    for a model and texts (None where nothing is stored under that model's
    fingerprint), so a hybrid does not score again what its large model's own
    row already scored; it is None outside a run.
    """

    backend: Backend
    workdir: Path
    seed: int
    options: Mapping[str, str]
    build_model: Callable[[str], Model]
    build_router: Callable[[str], Router]
    seeds: Mapping[str, int] = field(default_factory=dict)
    stored: StoredLookup | None = None

    def seed_for(self, component: str) -> int:
        """The seed of one component of randomness; a model's fingerprint names only the ones it uses."""
        if component not in SEED_COMPONENTS:
            raise ValueError(f"unknown seed component {component!r}; known: {', '.join(SEED_COMPONENTS)}")
        return self.seeds.get(component, self.seed)


ModelFactory = Callable[[str | None, ModelContext], Model]
TaskFactory = Callable[[Mapping[str, str]], Task]
RouterFactory = Callable[[str | None], Router]
BackendFactory = Callable[[Mapping[str, str]], Backend]


@dataclass
class Exporter:
    """Renders leaderboard rows (from one or more results.json) into one format."""

    suffix: str
    render: Callable[[Sequence[Mapping[str, Any]]], str | bytes]
    description: str = ""


@dataclass
class RunInfo:
    """What lifecycle hooks learn about a run: where it writes, what it runs, when it started."""

    run_dir: Path
    board: Board
    started: str


@dataclass
class BatchStats:
    """One scored batch, as `on_batch_end` sees it: its size, device-synchronised seconds, examples done."""

    size: int
    seconds: float
    done: int
