"""Which engine and precision score a classifier: given by the options, or measured once per machine.

``engine=auto`` (with ``precision=auto``) leaves the choice to a measurement
on the machine that runs the model: every installed engine and precision is
timed on a short sample of the run's own reviews, and the fastest whose
argmax agrees with float32 torch on at least 99.5% of that sample wins. Speed
depends on the processor (AMX makes bf16 the fastest on one Xeon, VNNI int8
on another) and agreement on the checkpoint, so the decision is kept per
processor model and checkpoint, in the model directory, and later runs read it
instead of timing again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.plugins.models._engine_export import install_hint, missing
from harness.plugins.models._finetune import digest

AGREEMENT_BAR = 0.995  # the share of float32 torch's answers a chosen engine must keep
SAMPLE_WINDOWS = 64  # reviews (token windows) each candidate is timed on
MIN_SAMPLE = 16  # fewer reviews than this decide nothing: a predict call that small runs torch meanwhile
ENGINES = ("auto", "torch", "openvino", "onnxruntime")
PRECISIONS = {"openvino": ("fp32", "bf16", "int8"), "onnxruntime": ("fp32", "int8")}
AUTO_ENGINES = ("openvino", "onnxruntime")  # what engine=auto measures beside torch, where installed
TORCH_PRECISION = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


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

    def stats(self) -> dict[str, Any]:
        """For the row's run stats in results.json."""
        return {"engine": self.choice.key, "engine_choice": self.source, "engine_timings": self.timings}


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


def measure(
    found: Sequence[Candidate],
    windows: Sequence[Sequence[int]],
    build: Callable[[Candidate], Callable[[Sequence[Sequence[int]]], Any]],
    reference: Callable[[Sequence[Sequence[int]]], Any],
    columns: Sequence[int],
    path: Path,
) -> Decision:
    """Time every candidate on `windows`, keep the fastest within the agreement bar, record it at `path`.

    `build` makes a candidate's scorer (logits and embeddings of windows); one that cannot run
    here (a HarnessError) is left out with its reason. `reference` is float32
    torch, whose answers on the task's `columns` the candidates must keep.
    """
    sample = spread(windows, SAMPLE_WINDOWS)
    expected = reference(sample)[0][:, list(columns)].argmax(1)
    timings: dict[str, dict[str, Any]] = {}
    for candidate in found:
        try:
            scorer = build(candidate)
        except HarnessError as error:
            timings[candidate.key] = {"skipped": str(error)}
            continue
        scorer(sample[:4])  # warm-up: first-call allocations and kernel choices stay out of the timing
        began = time.perf_counter()
        logits, _ = scorer(sample)
        seconds = time.perf_counter() - began
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
    return Decision(best, "measured", timings)


def spread(items: Sequence[Any], count: int) -> list[Any]:
    """At most `count` items taken evenly across `items`, so the sample spans its lengths."""
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]
