"""`harness bench` part `scoring`: label scoring with a shared encoder pass against one full pass per label.

lm-evaluation-harness scores each (review, label) pair with its own forward
pass, so the encoder reads every review once per label. The seq2seq scorer
runs the encoder once per review and only the short label continuations per
label. Both are timed on a T5 of flan-t5-base's shape (random weights) over
the 11 category labels, and their log-likelihoods must agree to a relative
1e-5. Relative, because a label's log-likelihood is a sum over its tokens of
log-softmax over the 32k-word vocabulary, computed in float32 by two different
orders of operations (one padded batch of labels against one label at a time):
rounding grows with the sum's magnitude, so an absolute bar (1e-4) fails long,
unlikely labels (near -60 with random weights) whose relative error is a few
1e-6, tens of float32 ulps (1.2e-7 each), while 1e-5 still catches any real
difference, a wrong token or mask moving a log-likelihood by far more.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CATEGORY_LABELS = (
    "Books", "Music", "Video", "Toys", "Tools", "Office Products", "Electronics", "Kitchen", "Sports",
    "Shoes", "Health & Personal Care",
)  # fmt: skip
PROMPT = "Which product category is this review about? Options: {options}.\nReview: {text}"


# flan-t5-base's and flan-t5-small's shapes (gated GELU, untied embeddings, like every Flan-T5).
T5_BASE = {
    "d_model": 768,
    "d_kv": 64,
    "d_ff": 2048,
    "num_layers": 12,
    "num_decoder_layers": 12,
    "num_heads": 12,
}
T5_SMALL = {
    "d_model": 512,
    "d_kv": 64,
    "d_ff": 1024,
    "num_layers": 8,
    "num_decoder_layers": 8,
    "num_heads": 6,
}


def build_t5_shape(directory: Path, shape: Mapping[str, Any], seed: int = 0) -> Path:
    """A T5 of `shape` (`T5_BASE`, `T5_SMALL`) with random weights.

    Its tokenizer is the uncased WordPiece vocabulary the MiniLM package ships:
    only token ids matter for timing and for comparing two ways of scoring.
    """
    import torch
    from transformers import (  # type: ignore[attr-defined]  # BertTokenizerFast is exported lazily
        BertTokenizerFast,
        T5Config,
        T5ForConditionalGeneration,
    )

    from harness.plugins.models.classifiers import _minilm_path

    tokenizer = BertTokenizerFast(vocab_file=str(Path(_minilm_path()) / "vocab.txt"), model_max_length=512)
    config = T5Config(  # type: ignore[call-arg]  # the T5-specific keywords are typed as **kwargs
        vocab_size=len(tokenizer), feed_forward_proj="gated-gelu", tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id, decoder_start_token_id=0,
        **shape,
    )  # fmt: skip
    torch.manual_seed(seed)
    T5ForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def full_pass_scores(model: Any, inputs: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> Any:
    """Log-likelihood [n, k] of each target, one complete encoder-decoder pass per (input, target)."""
    import numpy as np
    import torch

    scores = np.zeros((len(inputs), len(targets)))
    with torch.inference_mode():
        for i, row in enumerate(inputs):
            ids = torch.tensor([list(row)])
            for j, target in enumerate(targets):
                labels = torch.tensor([list(target)])
                logits = model(input_ids=ids, labels=labels).logits.float()
                scores[i, j] = logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).sum().item()
    return scores


def scoring(texts: Sequence[str], workdir: Path) -> dict[str, Any]:
    """Seconds for both ways on `texts`, the speed-up, and the largest log-likelihood difference."""
    import numpy as np
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from harness.plugins.bench._small import context
    from harness.plugins.models._label_scoring import prompt_parts
    from harness.plugins.models.seq2seq import make_seq2seq

    checkpoint = build_t5_shape(workdir / "t5-base-shape", T5_BASE)
    scorer = make_seq2seq(str(checkpoint), context(workdir, "float32", {"batch_size": "1"}))
    targets = scorer.label_targets(CATEGORY_LABELS)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint).eval()
    before, after = prompt_parts(PROMPT, CATEGORY_LABELS)
    encoded = tokenizer([before + text + after for text in texts], truncation=True, max_length=512)
    inputs = [list(ids) for ids in encoded["input_ids"]]
    scorer.label_scores(inputs[:1], CATEGORY_LABELS)
    began = time.perf_counter()
    shared = scorer.label_scores(inputs, CATEGORY_LABELS)
    shared_s = time.perf_counter() - began
    began = time.perf_counter()
    full = full_pass_scores(model, inputs, targets)
    full_s = time.perf_counter() - began
    return {
        "reviews": len(texts),
        "labels": len(CATEGORY_LABELS),
        "shared_encoder_s": shared_s,
        "full_pass_per_label_s": full_s,
        "speedup": full_s / shared_s,
        "max_abs_loglik_diff": float(np.abs(shared - full).max()),
        "max_rel_loglik_diff": float((np.abs(shared - full) / np.abs(full)).max()),
    }
