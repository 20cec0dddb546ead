"""`harness bench` part `llama`: the packaged SmolLM2 GGUF scored by llama.cpp against transformers.

The engines score the same reviews with the same prompts, token ids and
label words (the polarity task's 2 and the category task's 11), zero-shot
and uncalibrated, so that the figures compare the forward passes alone.
llama.cpp runs twice: on its float32 copy of the GGUF (the default, the
weights transformers computes on) and on the GGUF's own quantized weights.
The reviews are taken in chunks, each chunk timed on one engine and then on
the other, so that a load change on a shared machine falls on both.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHUNKS = 4
# name in the report: (engine, llama.cpp's weights)
ENGINES = {
    "transformers": ("transformers", "float32"),
    "llama.cpp float32": ("llama.cpp", "float32"),
    "llama.cpp stored": ("llama.cpp", "stored"),
}


def llama(texts: Sequence[str], workdir: Path) -> dict[str, Any]:
    """Reviews/s of each engine and llama.cpp's agreement with transformers, per task; loading is not timed."""
    from harness.plugins.engines.llama_cpp import available
    from harness.tasks.category import CategoryTask
    from harness.tasks.polarity import PolarityTask

    reason = available()
    if reason:
        return {"skipped": reason}
    report: dict[str, Any] = {"reviews": len(texts), "by_task": {}}
    for task in (PolarityTask(), CategoryTask()):
        report["by_task"][task.name] = _compare(texts, task, workdir)
    return report


def _compare(texts: Sequence[str], task: Any, workdir: Path) -> dict[str, Any]:
    import numpy as np

    from harness.plugins.models._label_scoring import scores_to_probs

    scorers = {name: _scorer(engine, workdir, weights) for name, (engine, weights) in ENGINES.items()}
    prompts = {name: model.prompts(texts, task) for name, model in scorers.items()}
    seconds = dict.fromkeys(scorers, 0.0)
    scores: dict[str, list[Any]] = {name: [] for name in scorers}
    for name, model in scorers.items():  # warm-up: loads the weights and the prompt head's cache
        head, suffixes, _, delimiter = prompts[name]
        model.continuation_scores(head, suffixes[:2], model._continuations(task, delimiter))
    size = -(-len(texts) // CHUNKS)
    for start in range(0, len(texts), size):
        for name, model in scorers.items():
            head, suffixes, _, delimiter = prompts[name]
            began = time.perf_counter()
            scores[name].append(
                model.continuation_scores(
                    head, suffixes[start : start + size], model._continuations(task, delimiter)
                )
            )
            seconds[name] += time.perf_counter() - began
    rates = {name: len(texts) / seconds[name] for name in scorers}
    reference = np.concatenate(scores["transformers"])
    by_weights = {}
    for name, (_, weights) in ENGINES.items():
        if name == "transformers":
            continue
        ours = np.concatenate(scores[name])
        by_weights[weights] = {
            "speedup": rates[name] / rates["transformers"],
            "argmax_agreement": float((ours.argmax(axis=1) == reference.argmax(axis=1)).mean()),
            "max_abs_prob_diff": float(np.abs(scores_to_probs(ours) - scores_to_probs(reference)).max()),
            "mean_abs_loglik_diff": float(np.abs(ours - reference).mean()),
        }
    return {"labels": len(task.label_words), "reviews_per_s": rates, "llama_cpp_by_weights": by_weights}


def _scorer(engine: str, workdir: Path, weights: str = "float32") -> Any:
    from harness.plugins.bench._small import context
    from harness.plugins.models.causal_lm import make_smollm2

    options = {"engine": engine, "weights": weights, "shots": "0", "calibrate": "none"}
    return make_smollm2(None, context(workdir, "float32", options))
