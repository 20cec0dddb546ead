"""Which engine and precision score a classifier: given by the options, or measured once per machine.

``engine=auto`` (with ``precision=auto``) leaves the choice to a measurement
on the machine that runs the model: every installed engine and precision is
timed on a short sample of the run's own reviews, and the fastest whose
argmax agrees with float32 torch on at least 99.5% of that sample wins. Speed
depends on the processor (AMX makes bf16 the fastest on one Xeon, VNNI int8
on another) and agreement on the checkpoint, so the decision is kept per
processor model and checkpoint, in the model directory, and later runs read it
instead of timing again.

Measuring is not free: each candidate is an export of the model (tens of
seconds for a small encoder) before it is timed. So a measurement is made only
where it can pay for itself: torch is timed on the sample first, and the
candidates are exported and timed only when the run's reviews, at the most any
engine has beaten torch by, would save at least ten times the estimated cost
of measuring them (``measure=always`` measures whatever the run's size). A run
too small to repay it scores on torch at once and records why; nothing is
stored, so a later, larger run still measures.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import HarnessError, Option
from harness.plugins.engines.export import install_hint, missing
from harness.plugins.models._finetune import digest

AGREEMENT_BAR = 0.995  # the share of float32 torch's answers a chosen engine must keep
SAMPLE_WINDOWS = 64  # reviews (token windows) each candidate is timed on
ENGINES = ("auto", "torch", "openvino", "onnxruntime")
PRECISIONS = {"openvino": ("fp32", "bf16", "int8"), "onnxruntime": ("fp32", "int8")}
AUTO_ENGINES = ("openvino", "onnxruntime")  # what engine=auto measures beside torch, where installed
TORCH_PRECISION = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
# The `measure` option of every model whose engine `auto` chooses: when the saving repays it, or always.
MEASURE_OPTION = Option(
    "measure",
    str,
    "auto",
    "engine=auto: measure the engines when the run's reviews repay it (auto) or whatever its size (always)",
    choices=("auto", "always"),
    affects_output=False,
)
# A measurement may cost at most this share of what it can save on the run.
BUDGET_SHARE = 0.1
# The most an engine has run faster than float32 torch in `harness bench` (1.7x to 2.9x): what the budget
# assumes the best candidate saves, so that it never skips a measurement that could have paid.
BEST_SPEEDUP = 3.0
# Exporting and timing one candidate: a few seconds whatever the model, and about a second per million
# parameters (MiniLM-L6, 22.7M, took about 25 s a candidate on a 2-core EPYC). An order of magnitude.
EXPORT_S_FIXED = 3.0
EXPORT_S_PER_MILLION_PARAMETERS = 1.0


@dataclass(frozen=True)
class Candidate:
    """One engine at one precision."""

    engine: str
    precision: str

    @property
    def key(self) -> str:
        return f"{self.engine}-{self.precision}"


@dataclass
class Decision:
    """The engine that scores, how it was chosen (given, measured or cached) and the timings behind it."""

    choice: Candidate
    source: str
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget: dict[str, Any] | None = None  # what measuring was weighed against (see `Workload.budget`)

    def stats(self) -> dict[str, Any]:
        """For the row's run stats in results.json."""
        found = {"engine": self.choice.key, "engine_choice": self.source, "engine_timings": self.timings}
        return found | ({"engine_budget": self.budget} if self.budget is not None else {})


def candidates(engine: str, precision: str, device: str, dtype: str) -> list[Candidate]:
    """The engines and precisions the options allow on this backend; one means no measurement.

    torch runs at the backend's dtype. OpenVINO and ONNX Runtime set their own
    precision, so they start from float32 weights on the cpu backend; `auto`
    leaves out the engines that are not installed or cannot run here.
    """
    torch_precision = TORCH_PRECISION.get(dtype, dtype)
    if engine == "torch":
        if precision not in ("auto", torch_precision):
            raise HarnessError(
                f"engine=torch runs at the backend's dtype ({dtype}); set the backend option dtype instead "
                f"of precision={precision}"
            )
        return [Candidate("torch", torch_precision)]
    if engine != "auto":
        if missing(engine):
            raise HarnessError(install_hint(engine))
        if device != "cpu" or dtype != "float32":
            raise HarnessError(
                f"engine={engine} runs on the cpu backend with dtype float32 weights (it sets its own precision)"
            )
        if precision not in ("auto", *PRECISIONS[engine]):
            raise HarnessError(
                f"engine={engine} has no precision {precision}: choose {', '.join(PRECISIONS[engine])}"
            )
        return [Candidate(engine, p) for p in PRECISIONS[engine] if precision in ("auto", p)]
    found = [Candidate("torch", torch_precision)] if precision in ("auto", torch_precision) else []
    if device == "cpu" and dtype == "float32":
        for name in AUTO_ENGINES:
            if not missing(name):
                found += [Candidate(name, p) for p in PRECISIONS[name] if precision in ("auto", p)]
    if not found:
        raise HarnessError(f"no installed engine runs precision={precision} on this backend")
    return found


def machine() -> str:
    """The processor model: decisions hold for every machine with the same one."""
    from harness.provenance import cpu_name

    return cpu_name()


def cache_file(workdir: Path, found: Sequence[Candidate], settings: Mapping[str, Any]) -> Path:
    """Where the decision for these candidates, settings (checkpoint identity included) and processor lives."""
    key = digest([machine(), [c.key for c in found], dict(settings)])
    return Path(workdir) / "engines" / f"choice-{key}.json"


def cached(found: Sequence[Candidate], path: Path) -> Decision | None:
    """The only candidate (given), or the decision an earlier run recorded at `path`; None to measure."""
    if len(found) == 1:
        return Decision(found[0], "given")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    by_key = {c.key: c for c in found}
    if not isinstance(record, dict) or record.get("choice") not in by_key:
        return None
    return Decision(by_key[record["choice"]], "cached", record.get("timings", {}))


@dataclass(frozen=True)
class Workload:
    """What a measurement is weighed against: the reviews the run scores and the model's size."""

    reviews: int
    parameters: int
    always: bool = False

    def budget(self, found: Sequence[Candidate], torch_s_per_review: float) -> dict[str, Any]:
        """Whether measuring `found` can pay for itself, with the estimate behind the answer."""
        exports = sum(1 for c in found if c.engine != "torch")
        cost_s = exports * (EXPORT_S_FIXED + EXPORT_S_PER_MILLION_PARAMETERS * self.parameters / 1e6)
        saving_s = self.reviews * torch_s_per_review * (1 - 1 / BEST_SPEEDUP)
        return {
            "reviews": self.reviews,
            "torch_s_per_review": torch_s_per_review,
            "measuring_s_estimate": cost_s,
            "saving_s_at_most": saving_s,
            "measure": self.always or cost_s <= BUDGET_SHARE * saving_s,
        }


def choose(
    found: Sequence[Candidate],
    windows: Sequence[Sequence[int]],
    build: Callable[[Candidate], Callable[[Sequence[Sequence[int]]], Any]],
    reference: Callable[[Sequence[Sequence[int]]], Any],
    columns: Sequence[int],
    path: Path,
    workload: Workload,
) -> Decision:
    """Score on torch where measuring cannot pay for itself on `workload`, else measure (see `measure`).

    The reference's timing on the sample is the torch time per review the
    budget needs, and it is kept as torch's timing when the candidates are measured.
    """
    sample = spread(windows, SAMPLE_WINDOWS)
    expected_logits, seconds = timed_logits(reference, sample)
    budget = workload.budget(found, seconds / len(sample))
    torch = next((c for c in found if c.engine == "torch"), None)
    if not budget["measure"] and torch is not None:
        return Decision(torch, "budget", budget=budget)
    return measure(found, sample, build, expected_logits, columns, path, budget)


def measure(
    found: Sequence[Candidate],
    sample: Sequence[Sequence[int]],
    build: Callable[[Candidate], Callable[[Sequence[Sequence[int]]], Any]],
    expected_logits: Any,
    columns: Sequence[int],
    path: Path,
    budget: dict[str, Any],
) -> Decision:
    """Time every candidate on `sample`, keep the fastest within the agreement bar, record it at `path`.

    `build` makes a candidate's scorer (logits and embeddings of windows); one that cannot run
    here (a HarnessError) is left out with its reason. `expected_logits` are float32
    torch's on the sample, whose answers on the task's `columns` the candidates must keep.
    """
    expected = expected_logits[:, list(columns)].argmax(1)
    timings: dict[str, dict[str, Any]] = {}
    for candidate in found:
        try:
            scorer = build(candidate)
        except HarnessError as error:
            timings[candidate.key] = {"skipped": str(error)}
            continue
        logits, seconds = timed_logits(scorer, sample)
        agreement = float((logits[:, list(columns)].argmax(1) == expected).mean())
        timings[candidate.key] = {
            "reviews_per_s": len(sample) / seconds,
            "argmax_agreement": agreement,
            "passes": agreement >= AGREEMENT_BAR,
        }
    passing = [c for c in found if timings[c.key].get("passes")]
    if not passing:
        raise HarnessError(f"no engine keeps {AGREEMENT_BAR:.1%} of float32 torch's answers: {timings}")
    best = max(passing, key=lambda c: timings[c.key]["reviews_per_s"])
    record = {"choice": best.key, "machine": machine(), "reviews": len(sample), "timings": timings}
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_text(json.dumps(record, indent=2) + "\n")
    scratch.replace(path)
    return Decision(best, "measured", timings, budget)


def timed_logits(
    scorer: Callable[[Sequence[Sequence[int]]], Any], sample: Sequence[Sequence[int]]
) -> tuple[Any, float]:
    """The scorer's logits on `sample` and the seconds they took, after a warm-up on its first windows
    (first-call allocations and kernel choices stay out of the timing)."""
    scorer(sample[:4])
    began = time.perf_counter()
    logits, _ = scorer(sample)
    return logits, time.perf_counter() - began


def spread(items: Sequence[Any], count: int) -> list[Any]:
    """At most `count` items taken evenly across `items`, so the sample spans its lengths."""
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]
