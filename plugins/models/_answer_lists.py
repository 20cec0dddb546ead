"""Generated answers as the study read them: one label, or with `topk_prompts=K` one list per k.

The study asked its LLMs for the product category K times per review (k =
1..5), the k-th prompt asking for the k categories that fit best, and split
each answer on ", ". With `topk_prompts=K` (generate mode) the seq2seq and
causal LM families do the same: the task's prompt has a `{k}` placeholder,
filled with 1..K. Each item of a list is read as a single answer is (case,
quotes and surrounding punctuation forgiven); an item that names no label is
an unknown label and counts as wrong. A prediction's raw text is the JSON
list of the K lists, verbatim, so the answers can be read back and the
figures below rebuilt from the cache.

What a row reports from the lists:
- `answer_top1` .. `answer_topK`: the share of reviews whose gold label is
  in the k-th prompt's list, the study's top-k accuracy for its LLMs (a list
  longer than k is not cut, as the study did not cut it);
- the probability row, which top-1/2/3 and mAP read: the labels ranked by the
  first prompt whose list names them, then by their place in that list, with
  scores falling linearly by rank and 0 for a label no list names. Top-1 is
  thus the first label the k=1 answer names, and mAP over these rows is an
  approximation of a ranking the study approximated from the same lists;
- `unparseable_answers`: per k, the answers that named no label. A review
  none of whose answers names a label gets an all-zero row, which the runner
  counts as `unparseable`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from harness import ModelOutput, Task
from harness.plugins.models._label_scoring import answers_to_probs, parse_answer

if TYPE_CHECKING:
    import numpy as np

SEPARATOR = ", "
# Answers and truncation flags of one prompt for every review: what a family's generate path returns.
AnswerFn = Callable[[int], tuple[list[str], Sequence[bool]]]


def generated_output(answer: AnswerFn, topk_prompts: int, task: Task) -> ModelOutput:
    """Rows from generated answers: one prompt parsed as one label, or K prompts parsed as lists.

    `answer(k)` generates every review's answer to the prompt asking for k
    labels; a review is truncated when any of its prompts had to cut it.
    """
    if not topk_prompts:
        answers, truncated = answer(1)
        return ModelOutput(answers_to_probs(answers, task.label_words), truncated=truncated, raw_text=answers)
    check_prompt(task, topk_prompts)
    per_k = [answer(k) for k in range(1, topk_prompts + 1)]
    raw = [
        json.dumps([as_list(text) for text in texts], ensure_ascii=False)
        for texts in zip(*(answers for answers, _ in per_k), strict=True)
    ]
    truncated = [any(flags) for flags in zip(*(flags for _, flags in per_k), strict=True)]
    return ModelOutput(lists_to_probs(raw, task.label_words), truncated=truncated, raw_text=raw)


def check_prompt(task: Task, topk_prompts: int) -> None:
    """Refuse K prompts that could not differ, or that ask for more labels than the task has."""
    if topk_prompts > len(task.labels):
        raise ValueError(
            f"topk_prompts={topk_prompts} asks for more labels than task {task.name!r} has ({len(task.labels)})"
        )
    if topk_prompts > 1 and _filled(task.prompt, 1) == _filled(task.prompt, 2):
        raise ValueError(
            f"topk_prompts={topk_prompts} needs a prompt with a {{k}} placeholder (the number of labels "
            f"asked for); give task {task.name!r} one with --task-option prompt=..."
        )


def _filled(template: str, k: int) -> str:
    return template.format(text="", options="", k=k)


def as_list(answer: str) -> list[str]:
    """An answer split as the study split it; an empty answer is an empty list."""
    return answer.split(SEPARATOR) if answer.strip() else []


def named_labels(raw: str | None, label_words: Sequence[str]) -> list[list[int]]:
    """Per prompt, the label indices its list names, in order and each once; unknown items left out."""
    lists = json.loads(raw) if raw else []
    named: list[list[int]] = []
    for items in lists:
        indices = [parse_answer(item, label_words) for item in items]
        named.append(list(dict.fromkeys(i for i in indices if i is not None)))
    return named


def lists_to_probs(raw_texts: Sequence[str], label_words: Sequence[str]) -> np.ndarray:
    """Probability rows ranking the labels by the first prompt that names them (see the module's notes)."""
    import numpy as np

    probs = np.zeros((len(raw_texts), len(label_words)))
    for row, raw in enumerate(raw_texts):
        order = list(dict.fromkeys(i for named in named_labels(raw, label_words) for i in named))
        for rank, index in enumerate(order):
            probs[row, index] = len(order) - rank
        if order:
            probs[row] /= probs[row].sum()
    return probs


def per_k_measures(
    raw_texts: Sequence[str | None], gold: np.ndarray, task: Task, topk_prompts: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per review, whether the k-th prompt's list holds the gold label; and per k the unparseable answers."""
    import numpy as np

    if not topk_prompts:
        return {}, {}
    hits = np.zeros((len(raw_texts), topk_prompts))
    unparseable = [0] * topk_prompts
    for row, raw in enumerate(raw_texts):
        named = named_labels(raw, task.label_words)
        for k in range(topk_prompts):
            labels = named[k] if k < len(named) else []
            unparseable[k] += not labels
            hits[row, k] = int(gold[row]) in labels
    measures = {f"answer_top{k + 1}": hits[:, k] for k in range(topk_prompts)}
    return measures, {"unparseable_answers": unparseable}
