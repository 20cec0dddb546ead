"""`harness bench` part `llm`: SmolLM2's label scoring against a plain forward pass over the same tokens.

What label scoring must read per review is the review with the prompt's tail
and each distinct label-prefix token once (the prompt's head, demonstrations
included, is read once for all reviews). The roofline is the model's plain
forward pass over exactly those tokens, one review at a time: no cache, no
mask, no padding, the logits of the last position only. The figure is label
scoring's tokens/s as a share of the forward pass's, in the same process on
the same machine and precision, so it holds on a busy machine; reviews/s is
reported beside it. Both tasks use the default options (4 demonstrations;
calibration is an affine map of the scores, so it is not timed). The
category task's demonstrations take the 11 labels in turn: their words set
the prompt's length, which is what the timing depends on. The reviews are
taken in chunks, each timed one way and then the other, so that a load
change on a shared machine falls on both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import Example

CHUNKS = 4
TARGET = 0.6  # label scoring's tokens/s as a share of the plain forward pass's


def llm(
    texts: Sequence[str],
    train: Sequence[Example],
    workdir: Path,
    build: Callable[[Path], Any] | None = None,
    tasks: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Per task: tokens/s of label scoring and of the plain forward pass, their share, and reviews/s.

    `build` makes the causal scorer (default: the packaged SmolLM2 with the
    default options) and `tasks` the tasks (default: polarity and category).
    """
    from harness.tasks.category import CategoryTask
    from harness.tasks.polarity import PolarityTask

    scorer = (build or _smollm2)(workdir)
    report: dict[str, Any] = {"reviews": len(texts), "target": TARGET, "by_task": {}}
    for task in tasks or (PolarityTask(), CategoryTask()):
        report["by_task"][task.name] = _measure(scorer, texts, train, task)
    return report


def _measure(scorer: Any, texts: Sequence[str], train: Sequence[Example], task: Any) -> dict[str, Any]:
    import torch

    from harness.plugins.models._label_scoring import LabelTree

    labels = len(task.label_words)
    demos = [Example(e.id, e.text, i % labels) for i, e in enumerate(train)]
    scorer._load_tokenizer()
    scorer._demos[task.fingerprint()] = scorer.choose_demonstrations(demos, task)
    head, suffixes, _, delimiter = scorer.prompts(texts, task)
    continuations = scorer._continuations(task, delimiter)
    tree = LabelTree.of(continuations)
    rows = [[*suffix, *tree.tokens] for suffix in suffixes]
    scorer.continuation_scores(head, suffixes[:2], continuations)  # loads the weights and the head's cache
    model = scorer._model

    def forward(batch: Sequence[Sequence[int]]) -> None:
        with torch.inference_mode():
            for row in batch:
                model(input_ids=torch.tensor([list(row)], device=model.device), logits_to_keep=1)

    forward(rows[:1])
    scoring_s = forward_s = 0.0
    size = -(-len(rows) // CHUNKS)
    for start in range(0, len(rows), size):
        began = time.perf_counter()
        scorer.continuation_scores(head, suffixes[start : start + size], continuations)
        scoring_s += time.perf_counter() - began
        began = time.perf_counter()
        forward(rows[start : start + size])
        forward_s += time.perf_counter() - began
    tokens = sum(len(row) for row in rows)
    return {
        "labels": labels,
        "demonstrations": len(scorer._demos[task.fingerprint()]),
        "head_tokens": len(head),
        "label_tree_tokens": len(tree.tokens),
        "tokens": tokens,
        "scoring_tokens_per_s": tokens / scoring_s,
        "forward_tokens_per_s": tokens / forward_s,
        "share_of_forward": forward_s / scoring_s,
        "reviews_per_s": len(rows) / scoring_s,
        "dtype": str(model.dtype).removeprefix("torch."),
        "batch_size": scorer.batch_size,
    }


def _smollm2(workdir: Path) -> Any:
    from harness.plugins.bench._small import context
    from harness.plugins.models.causal_lm import make_smollm2

    return make_smollm2(None, context(workdir, "float32", {}))
