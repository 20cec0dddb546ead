"""`harness bench` part `scoring`, second half: label scoring with its encoder pass on each engine.

A T5 of flan-t5-small's shape (random weights) scores the sample's reviews
under the polarity prompt with the encoder on torch, then on every installed
engine and precision, the decoder in torch each time, all in one process:
reviews/s as a ratio to torch's, the share of reviews whose best label is
torch's, and the largest log-likelihood difference. The encoder's share of
torch's label-scoring time bounds what any encoder engine can save.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

LABEL_WORDS = ("negative", "positive")


def encoder_engines(texts: Sequence[str], workdir: Path) -> dict[str, Any]:
    """Label-scoring reviews/s and agreement with torch for each encoder engine, and the encoder's share."""
    from transformers import AutoTokenizer

    from harness.plugins.bench._scoring import T5_SMALL, build_t5_shape
    from harness.plugins.bench._small import context
    from harness.plugins.engines import choice as engines
    from harness.plugins.models._label_scoring import prompt_parts
    from harness.plugins.models.seq2seq import make_seq2seq
    from harness.tasks.polarity import PROMPT

    checkpoint = build_t5_shape(workdir / "t5-small-shape", T5_SMALL)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    before, after = prompt_parts(PROMPT, LABEL_WORDS)
    encoded = tokenizer([before + text + after for text in texts], truncation=True, max_length=512)
    inputs = [list(ids) for ids in encoded["input_ids"]]
    reference: Any = None
    torch_s, share = 1.0, None
    rows: dict[str, dict[str, Any]] = {}
    for candidate in engines.candidates("auto", "auto", "cpu", "float32"):
        options = {"engine": candidate.engine, "precision": candidate.precision}
        try:
            scorer = make_seq2seq(str(checkpoint), context(workdir, "float32", options))
            encoder = scorer.encoder(LABEL_WORDS)  # exported and loaded here, not timed
        except HarnessError as error:
            rows[candidate.key] = {"skipped": str(error)}
            continue
        scorer.label_scores(inputs[:2], LABEL_WORDS, encoder)  # warm-up
        began = time.perf_counter()
        scores = scorer.label_scores(inputs, LABEL_WORDS, encoder)
        seconds = time.perf_counter() - began
        if reference is None:  # torch comes first
            reference, torch_s = scores, seconds
            share = encoder_share(scorer, inputs, seconds)
        rows[candidate.key] = {
            "reviews_per_s": len(inputs) / seconds,
            "vs_torch": torch_s / seconds,
            "argmax_agreement": float((scores.argmax(1) == reference.argmax(1)).mean()),
            "max_abs_loglik_diff": float(abs(scores - reference).max()),
        }
    return {
        "model": "T5, flan-t5-small's shape",
        "reviews": len(inputs),
        "encoder_share": share,
        "engines": rows,
    }


def encoder_share(scorer: Any, inputs: Sequence[Sequence[int]], seconds: float) -> float:
    """The share of torch's label-scoring `seconds` its encoder pass takes: all but the decoder's time.

    The decoder is timed on encoder states computed beforehand, handed over as an encoder.
    """
    import torch

    with torch.inference_mode():
        states = list(scorer.torch_encoder(inputs))
    began = time.perf_counter()
    scorer.label_scores(inputs, LABEL_WORDS, lambda rows: iter(states))
    return 1 - (time.perf_counter() - began) / seconds
