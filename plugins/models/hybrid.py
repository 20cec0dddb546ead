"""Hybrid models: the small model answers, the large one sees only what the router escalates.

Spec: ``hybrid:SMALL>LARGE@ROUTER:PARAM``, e.g. ``hybrid:distilbert>flan-t5@confidence:0.9``
(the study's Hybrid-T5). The large side may itself be a hybrid, so cascades nest:
``hybrid:minilm>smollm2>flan-t5@confidence:0.9`` escalates twice with the same router,
``...@confidence:0.97>confidence:0.8`` with one router per step. A router that
learns (``learned``, ``embedding``) is fitted on a calibration part of the
train split before anything is scored, and its fit is recorded with the row.

Every prediction carries a stage marker in its raw text, a small JSON object
``{"stage": 0, "seconds": [0.0012]}``: the stage that answered (0 = the small
model) and the seconds the example spent in each stage it passed through.
The runner caches raw text with the probabilities, so escalation counts,
per-stage times (``stage_stats``) and each slice's escalated share
(``flags_from_raw``) are rebuilt from the cache or predictions.jsonl even
when a resumed run computes nothing.

Inside a run, the large model's answers that the run's prediction cache
already holds under that model's own fingerprint (its own row scored them,
as on the study's board or the board `harness distill` writes) are read
back instead of computed again, with the seconds that row measured, so the
hybrid's runtime stays what the cascade costs. Their markers carry
``"stored": true`` and the row counts them as ``escalated_stored``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from harness import (
    ChoosesForWorkload,
    Example,
    HarnessError,
    LearnsToRoute,
    Model,
    ModelContext,
    ModelFactory,
    ModelOutput,
    Register,
    RowStats,
    StoredLookup,
    Task,
    hookimpl,
)

DEFAULT_ROUTER = "confidence:0.9"


def parse_stage_marker(raw: str | None) -> dict[str, Any] | None:
    """The stage marker in a hybrid prediction's raw text, or None when the text is not one."""
    if not raw or not raw.startswith("{"):
        return None
    try:
        marker = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("stage"), int):
        return None
    return marker


def parse_hybrid(arg: str) -> tuple[str, str, str]:
    """`SMALL>LARGE@ROUTER` -> (small spec, large spec, router spec).

    A cascade `A>B>C@R` routes both steps with R; `A>B>C@R1>R2` routes A's
    reviews with R1 and B's with R2 (the pair of thresholds a three-model
    sweep picks, e.g. `@confidence:0.97>confidence:0.8`).
    """
    body, at, router = arg.rpartition("@")
    if not at:
        body, router = arg, DEFAULT_ROUTER
    small, gt, large = body.partition(">")
    if not gt or not small or not large:
        raise HarnessError(
            f"hybrid spec {arg!r} must look like SMALL>LARGE@ROUTER, e.g. minilm>smollm2@confidence:0.9"
        )
    first, _, rest = router.partition(">")
    if rest and ">" not in large:
        raise HarnessError(f"hybrid spec {arg!r} gives {router.count('>') + 1} routers for "
                           f"{body.count('>')} steps: one router, or one per step joined by '>'")  # fmt: skip
    if ">" in large and not large.startswith("hybrid:"):
        large = f"hybrid:{large}@{rest or router}"
    return small, large, first


class StageTally:
    """Counts how many examples each stage answered and the seconds spent in each stage."""

    def __init__(self, stage_models: Sequence[str]) -> None:
        self.stage_models = list(stage_models)
        self.answered = [0] * len(self.stage_models)
        self.seconds = [0.0] * len(self.stage_models)
        self.stored = 0

    def add(self, marker: dict[str, Any]) -> None:
        stage = min(int(marker["stage"]), len(self.answered) - 1)
        self.answered[stage] += 1
        self.stored += bool(marker.get("stored"))
        for i, seconds in enumerate(marker.get("seconds", [])[: len(self.seconds)]):
            self.seconds[i] += float(seconds)

    def as_dict(self) -> dict[str, Any]:
        examples = sum(self.answered)
        escalated = examples - self.answered[0]
        return {
            "examples": examples,
            "escalated": escalated,
            "escalated_share": escalated / examples if examples else None,
            "escalated_stored": self.stored,
            "small_s": self.seconds[0],
            "large_s": sum(self.seconds[1:]),
            "stage_models": self.stage_models,
            "stage_answered": self.answered,
            "stage_seconds": self.seconds,
        }


class HybridModel:
    """A cascade of two models; the large one may itself be a hybrid."""

    def __init__(
        self,
        small: Model,
        large: Model,
        router: Any,
        spec: str,
        seed: int = 0,
        stored: StoredLookup | None = None,
    ) -> None:
        self.small = small
        self.large = large
        self.router = router
        self.name = spec
        self.seed = seed
        self.stored = stored
        self.router_fit: dict[str, Any] | None = None
        self.tally = StageTally(self.stage_models())

    def stage_models(self) -> list[str]:
        """Names of the models in cascade order, small first."""
        if isinstance(self.large, HybridModel):
            return [self.small.name, *self.large.stage_models()]
        return [self.small.name, self.large.name]

    def checkpoints(self, task: Task) -> list[str]:
        """Every stage's weights, all held at once (for preflight); a stage that cannot do `task` raises."""
        found: list[str] = []
        for part in (self.small, self.large):
            checkpoints = getattr(part, "checkpoints", None)
            if callable(checkpoints):
                found.extend(checkpoints(task))
        return found

    def fit(self, train: Sequence[Example], task: Task) -> None:
        """Fit both models; a learning router first sets aside a calibration part of `train` to learn from.

        The models fit on the rest, so the router sees how the small model
        does on reviews it never trained on, as it will on the scored ones.
        """
        learns = isinstance(self.router, LearnsToRoute)
        rest, calibration = split_calibration(train, self.seed) if learns else (list(train), [])
        for part in (self.small, self.large):
            fit = getattr(part, "fit", None)
            if callable(fit):
                fit(rest, task)
        if learns:
            texts = [example.text for example in calibration]
            small = _as_output(self.small.predict(texts, task))
            large = _as_output(self.large.predict(texts, task))
            gold = np.asarray([example.label for example in calibration], dtype=np.int64)
            self.router_fit = {"fit_reviews": len(rest),
                               **self.router.fit(texts, small, large, gold)}  # fmt: skip

    def choose(self, sample: Sequence[str], reviews: int, task: Task) -> None:
        """Let each stage that makes automatic choices make them; the large one sees only escalations,
        but how many is not known before routing, so it is told the whole run's size (an upper bound)."""
        for part in (self.small, self.large):
            if isinstance(part, ChoosesForWorkload):
                part.choose(sample, reviews, task)

    def predict(self, texts: Sequence[str], task: Task) -> ModelOutput:
        began = time.perf_counter()
        small = _as_output(self.small.predict(texts, task))
        small_each = (time.perf_counter() - began) / max(len(texts), 1)
        probs = np.array(small.probs, dtype=np.float32, copy=True)
        truncated = list(small.truncated or [False] * len(texts))
        markers: list[dict[str, Any]] = [{"stage": 0, "seconds": [small_each]} for _ in texts]
        if isinstance(self.router, LearnsToRoute):
            escalate = np.flatnonzero(self.router.escalate_outputs(texts, small))
        else:
            escalate = np.flatnonzero(self.router.escalate(probs))
        if len(escalate):
            large, large_seconds, stored = self._large_answers([texts[int(i)] for i in escalate], task)
            probs[escalate] = large.probs
            for j, i in enumerate(escalate):
                truncated[i] = bool(large.truncated[j]) if large.truncated else False
                markers[i] = self._escalated_marker(small_each, large_seconds[j], large.raw_text, j)
                if stored[j]:
                    markers[i]["stored"] = True
        for marker in markers:
            marker["seconds"] = [round(s, 7) for s in marker["seconds"]]
            self.tally.add(marker)
        raw = [json.dumps(m, separators=(",", ":"), ensure_ascii=False) for m in markers]
        # Answers read from the cache (here or in a nested hybrid) took no time here: each review then
        # costs its stages' seconds.
        seconds = [sum(m["seconds"]) for m in markers] if any(m.get("stored") for m in markers) else None
        return ModelOutput(probs=probs, truncated=truncated, raw_text=raw, seconds=seconds)

    def _large_answers(self, texts: list[str], task: Task) -> tuple[ModelOutput, list[float], list[bool]]:
        """The large model's answers, seconds per review and which were read from the run's cache.

        Stored answers come back with the seconds the large model's own row
        measured; the rest are predicted here and share this call's time.
        """
        stored = self.stored(self.large, texts, task) if self.stored is not None else [None] * len(texts)
        todo = [i for i, hit in enumerate(stored) if hit is None]
        if len(todo) == len(texts):  # nothing stored, or no run to read from
            large, each = self._timed_large(texts, task)
            return large, [each] * len(texts), [False] * len(texts)
        probs = np.zeros((len(texts), len(task.labels)), dtype=np.float32)
        truncated = [False] * len(texts)
        raw: list[str | None] = [None] * len(texts)
        seconds = [0.0] * len(texts)
        for i, hit in enumerate(stored):
            if hit is not None:
                probs[i] = hit.probs
                truncated[i], raw[i], seconds[i] = hit.truncated, hit.raw_text, hit.latency_s
        if todo:
            large, each = self._timed_large([texts[i] for i in todo], task)
            for j, i in enumerate(todo):
                probs[i] = large.probs[j]
                truncated[i] = bool(large.truncated[j]) if large.truncated else False
                raw[i] = large.raw_text[j] if large.raw_text else None
                seconds[i] = each
        texts_out = [r or "" for r in raw] if any(r is not None for r in raw) else None
        output = ModelOutput(probs=probs, truncated=truncated, raw_text=texts_out)
        return output, seconds, [hit is not None for hit in stored]

    def _timed_large(self, texts: list[str], task: Task) -> tuple[ModelOutput, float]:
        """The large model's output for `texts` and its seconds per review."""
        began = time.perf_counter()
        large = _as_output(self.large.predict(texts, task))
        return large, (time.perf_counter() - began) / len(texts)

    def _escalated_marker(
        self, small_each: float, large_each: float, large_raw: Sequence[str] | None, j: int
    ) -> dict[str, Any]:
        inner = parse_stage_marker(large_raw[j]) if large_raw else None
        if isinstance(self.large, HybridModel) and inner is not None:
            return {**inner, "stage": 1 + inner["stage"], "seconds": [small_each, *inner["seconds"]]}
        marker: dict[str, Any] = {"stage": 1, "seconds": [small_each, large_each]}
        if large_raw:
            marker["text"] = large_raw[j]
        return marker

    def fingerprint(self) -> str:
        fitted = json.dumps(self.router_fit, sort_keys=True) if self.router_fit else ""
        parts = "|".join((self.small.fingerprint(), self.large.fingerprint(), self.router.name, fitted,
                          "stages-1"))  # fmt: skip
        return "hybrid-" + hashlib.sha256(parts.encode()).hexdigest()[:16]

    def run_stats(self) -> dict[str, Any]:
        """Escalations and per-stage seconds of the examples this instance predicted."""
        return {**self.tally.as_dict(), **self._fits()}

    def row_stats(self, raw_texts: Sequence[str | None], gold: np.ndarray, task: Task) -> RowStats:
        """Escalations and per-stage seconds rebuilt from the stored raw texts (so cached predictions count
        too), and each review's escalation flag for the slices."""
        return RowStats(extra=self.stats_from_raw(raw_texts), flags=self.flags_from_raw(raw_texts))

    def stats_from_raw(self, raw_texts: Iterable[str | None]) -> dict[str, Any]:
        """The same statistics rebuilt from stored raw texts (cache or predictions.jsonl)."""
        return {**stage_stats(raw_texts, self.stage_models()), **self._fits()}

    def flags_from_raw(self, raw_texts: Sequence[str | None]) -> dict[str, list[bool]]:
        """Which predictions a later stage answered, from their stage markers: each slice's escalated share."""
        markers = [parse_stage_marker(raw) for raw in raw_texts]
        if all(m is None for m in markers):
            return {}
        return {"escalated": [m is not None and m["stage"] > 0 for m in markers]}

    def _fits(self) -> dict[str, Any]:
        """What each learning router of the cascade learned, outermost first, for results.json."""
        fits = [self.router_fit] if self.router_fit else []
        if isinstance(self.large, HybridModel):
            fits.extend(self.large._fits().get("router_fits", []))
        return {"router_fits": fits} if fits else {}


def stage_stats(raw_texts: Iterable[str | None], stage_models: Sequence[str]) -> dict[str, Any]:
    """Escalation counts and per-stage seconds from hybrid raw texts; non-marker texts are skipped."""
    tally = StageTally(stage_models)
    for raw in raw_texts:
        marker = parse_stage_marker(raw)
        if marker is not None:
            tally.add(marker)
    return tally.as_dict()


CALIBRATION_SHARE = 0.25


def split_calibration(train: Sequence[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded quarter of the train split for a learning router, the rest for the models; refuses a tiny one."""
    if len(train) < 8:
        raise HarnessError(f"a learning router needs the task's train split to learn from; it has {len(train)} "
                           "reviews (at least 8)")  # fmt: skip
    order = np.random.default_rng(seed).permutation(len(train))
    cut = int(round(len(train) * CALIBRATION_SHARE))
    return [train[int(i)] for i in sorted(order[cut:])], [train[int(i)] for i in sorted(order[:cut])]


def _as_output(output: Any) -> ModelOutput:
    return output if isinstance(output, ModelOutput) else ModelOutput(probs=np.asarray(output))


def make_hybrid(arg: str | None, ctx: ModelContext) -> HybridModel:
    if not arg:
        raise HarnessError("hybrid needs SMALL>LARGE@ROUTER, e.g. hybrid:minilm>smollm2@confidence:0.9")
    small, large, router = parse_hybrid(arg)
    return HybridModel(
        ctx.build_model(small),
        ctx.build_model(large),
        ctx.build_router(router),
        f"hybrid:{arg}",
        seed=ctx.seed_for("calibration"),
        stored=ctx.stored,
    )


def _named(spec: str):
    def make(arg: str | None, ctx: ModelContext) -> HybridModel:
        return make_hybrid(spec, ctx)

    return make


@hookimpl
def register_models(register: Register[ModelFactory]) -> None:
    # A hybrid passes the options on to the models it is built from (options=None).
    register("hybrid", make_hybrid, options=None, description="SMALL>LARGE@ROUTER:PARAM cascade; nests")
    register("Hybrid-T5", _named("distilbert>flan-t5@confidence:0.9"), options=None,
             description="the study's hybrid: DistilBERT, then Flan-T5 below 0.9 confidence")  # fmt: skip
    register("Hybrid-UL2", _named("distilbert>flan-ul2@confidence:0.9"), options=None,
             description="the study's hybrid: DistilBERT, then Flan-UL2 below 0.9 confidence")  # fmt: skip
