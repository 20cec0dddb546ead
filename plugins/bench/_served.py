"""`harness bench` part `served`: SmolLM2 behind an OpenAI-compatible server against the same GGUF in-process.

The server (for example llama-cpp-python's, started on the float32 copy of
the packaged GGUF that the in-process engines compute on) scores the
polarity labels in the mode the `openai:` family's `auto` finds; the
in-process engines score the same reviews with the same prompt and label
words, zero-shot and uncalibrated, as a served model is. Agreement is
measured against both in-process engines, llama.cpp and transformers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ENGINES = ("llama.cpp", "transformers")


def served(
    texts: Sequence[str], workdir: Path, base_url: str | None, model_name: str, options: dict[str, str]
) -> dict[str, Any]:
    """Reviews/s of the server and of each in-process engine, and their agreement on polarity."""
    if not base_url:
        return {"skipped": "give --served-url (and --served-model) of a server serving the packaged SmolLM2"}
    import numpy as np

    from harness.plugins.bench._llama import _scorer
    from harness.plugins.bench._small import context
    from harness.plugins.engines.llama_cpp import available
    from harness.plugins.models._label_scoring import scores_to_probs
    from harness.plugins.models.openai_endpoint import endpoint_stats, make_endpoint
    from harness.tasks.polarity import PolarityTask

    task = PolarityTask()
    endpoint = make_endpoint(model_name, context(workdir, "float32", {"base_url": base_url, **options}))
    mode = endpoint.mode  # probes the server before anything is timed
    began = time.perf_counter()
    answer = endpoint.predict(texts, task)
    seconds = {"served": time.perf_counter() - began}
    probs = {"served": answer.probs}
    for engine in ENGINES:
        if engine == "llama.cpp" and available():
            continue
        model = _scorer(engine, workdir)
        head, suffixes, _, delimiter = model.prompts(texts, task)
        continuations = model._continuations(task, delimiter)
        model.continuation_scores(head, suffixes[:2], continuations)  # loads the weights, untimed
        began = time.perf_counter()
        probs[engine] = scores_to_probs(model.continuation_scores(head, suffixes, continuations))
        seconds[engine] = time.perf_counter() - began
    report: dict[str, Any] = {
        "reviews": len(texts),
        "base_url": base_url,
        "model": model_name,
        "scoring_mode": mode,
        "reviews_per_s": {name: len(texts) / spent for name, spent in seconds.items()},
        "served_tokens": endpoint_stats(answer.raw_text or [], 0.0, 0.0),
        "against": {},
    }
    for engine in ENGINES:
        if engine in probs:
            difference = np.abs(probs["served"] - probs[engine]).max(axis=1)
            report["against"][engine] = {
                "argmax_agreement": float((probs["served"].argmax(1) == probs[engine].argmax(1)).mean()),
                "max_abs_prob_diff": float(difference.max()),
                "p95_abs_prob_diff": float(np.percentile(difference, 95)),
            }
    return report
