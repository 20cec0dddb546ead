"""Hybrid models: the small model answers, the large one sees only what the router escalates.

Spec: ``hybrid:SMALL>LARGE@ROUTER:PARAM``, e.g. ``hybrid:distilbert>flan-t5@confidence:0.9``
(the study's Hybrid-T5). The large side may itself be a hybrid, so cascades nest:
``hybrid:minilm>smollm2>flan-t5@confidence:0.9`` escalates twice with the same router.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.hookspecs import hookimpl
from harness.registry import HarnessError
from harness.types import Example, Model, ModelContext, ModelOutput, Task

DEFAULT_ROUTER = "confidence:0.9"


def parse_hybrid(arg: str) -> tuple[str, str, str]:
    """`SMALL>LARGE@ROUTER` -> (small spec, large spec, router spec)."""
    body, at, router = arg.rpartition("@")
    if not at:
        body, router = arg, DEFAULT_ROUTER
    small, gt, large = body.partition(">")
    if not gt or not small or not large:
        raise HarnessError(
            f"hybrid spec {arg!r} must look like SMALL>LARGE@ROUTER, e.g. minilm>smollm2@confidence:0.9"
        )
    if ">" in large and not large.startswith("hybrid:"):
        large = f"hybrid:{large}@{router}"
    return small, large, router


class HybridModel:
    def __init__(self, small: Model, large: Model, router: Any, spec: str) -> None:
        self.small = small
        self.large = large
        self.router = router
        self.name = spec
        self.stats = {"examples": 0, "escalated": 0, "small_s": 0.0, "large_s": 0.0}

    def fit(self, train: Sequence[Example], task: Task) -> None:
        for part in (self.small, self.large):
            fit = getattr(part, "fit", None)
            if callable(fit):
                fit(train, task)

    def predict(self, texts: Sequence[str], task: Task) -> ModelOutput:
        began = time.perf_counter()
        small = _as_output(self.small.predict(texts, task))
        self.stats["small_s"] += time.perf_counter() - began
        probs = np.array(small.probs, dtype=np.float32, copy=True)
        truncated = list(small.truncated or [False] * len(texts))
        escalate = np.flatnonzero(self.router.escalate(probs))
        if len(escalate):
            began = time.perf_counter()
            large = _as_output(self.large.predict([texts[i] for i in escalate], task))
            self.stats["large_s"] += time.perf_counter() - began
            probs[escalate] = large.probs
            for j, i in enumerate(escalate):
                truncated[i] = bool(large.truncated[j]) if large.truncated else False
        self.stats["examples"] += len(texts)
        self.stats["escalated"] += len(escalate)
        return ModelOutput(probs=probs, truncated=truncated)

    def fingerprint(self) -> str:
        parts = "|".join((self.small.fingerprint(), self.large.fingerprint(), self.router.name))
        return "hybrid-" + hashlib.sha256(parts.encode()).hexdigest()[:16]

    def run_stats(self) -> dict[str, Any]:
        seen = self.stats["examples"]
        return {**self.stats, "escalated_share": self.stats["escalated"] / seen if seen else None}


def _as_output(output: Any) -> ModelOutput:
    return output if isinstance(output, ModelOutput) else ModelOutput(probs=np.asarray(output))


def make_hybrid(arg: str | None, ctx: ModelContext) -> HybridModel:
    if not arg:
        raise HarnessError("hybrid needs SMALL>LARGE@ROUTER, e.g. hybrid:minilm>smollm2@confidence:0.9")
    small, large, router = parse_hybrid(arg)
    return HybridModel(
        ctx.build_model(small), ctx.build_model(large), ctx.build_router(router), f"hybrid:{arg}"
    )


def _named(spec: str):
    def make(arg: str | None, ctx: ModelContext) -> HybridModel:
        return make_hybrid(spec, ctx)

    return make


@hookimpl
def register_models(register):
    register("hybrid", make_hybrid, description="SMALL>LARGE@ROUTER:PARAM cascade; nests")
    register("Hybrid-T5", _named("distilbert>flan-t5@confidence:0.9"),
             description="the study's hybrid: DistilBERT, then Flan-T5 below 0.9 confidence")  # fmt: skip
    register("Hybrid-UL2", _named("distilbert>flan-ul2@confidence:0.9"),
             description="the study's hybrid: DistilBERT, then Flan-UL2 below 0.9 confidence")  # fmt: skip
