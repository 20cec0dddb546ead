"""Label scoring reads each review once with the tree of its labels' tokens, and agrees with plain passes."""

from __future__ import annotations

import numpy as np
import pytest

from harness.plugins.bench import _llm as bench_llm
from harness.plugins.bench import command as bench
from harness.plugins.models import causal_lm
from harness.plugins.models._label_scoring import LabelTree
from harness.tasks.category import CategoryTask
from harness.types import Example
from tests.tiny_t5 import PromptTask, build_tiny_llama, make_context

REVIEWS = [
    "This blender works great and I love it. Five stars!",
    "The charger broke after two days.",
    "ok",
    "These shoes feel cheap but does the job. Okay for the price. Would not buy again, returned it.",
    "The lamp arrived late and damaged, a waste of money.",
]
# Labels that share their first tokens, of one to several tokens each.
TASK = PromptTask(
    labels=("a", "b", "c", "d", "e"),
    label_words=("works great", "works great and cheap", "works badly", "negative", "positive"),
)
TRAIN = [
    Example(f"t{i}", text, i % len(TASK.labels))
    for i, text in enumerate(
        [
            "Broke after a week and the seller never answered my emails.",
            "Love this kettle, it boils fast and looks great on the counter.",
            "Fine for the price but the lid feels cheap and rattles.",
            "Stopped charging after two days, do not buy this cable.",
            "Great little speaker with clear sound and a long battery life.",
        ]
    )
]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def reference_scores(model, head, suffixes, continuations, length_norm=False) -> np.ndarray:
    """Every prompt + label as one plain sequence: no cache, no padding, no mask."""
    import torch

    scores = np.zeros((len(suffixes), len(continuations)))
    with torch.inference_mode():
        for i, suffix in enumerate(suffixes):
            prompt = [*head, *suffix]
            for j, continuation in enumerate(continuations):
                logits = model(input_ids=torch.tensor([prompt + list(continuation)])).logits[0]
                logp = logits.double().log_softmax(-1)
                total = sum(float(logp[len(prompt) - 1 + m, t]) for m, t in enumerate(continuation))
                scores[i, j] = total / len(continuation) if length_norm else total
    return scores


def test_the_tree_reads_a_shared_prefix_once_and_each_label_from_its_own_nodes():
    tree = LabelTree.of([[5, 6, 7], [5, 6, 8, 9], [5, 2], [4], [5, 6, 7, 1]])
    assert tree.tokens == [5, 6, 8, 7]
    assert tree.depths == [1, 2, 3, 3]
    assert tree.ancestors == [[0], [0, 1], [0, 1, 2], [0, 1, 3]]
    assert tree.reads == [[-1, 0, 1], [-1, 0, 1, 2], [-1, 0], [-1], [-1, 0, 1, 3]]


@pytest.mark.parametrize(("batch_size", "shots", "length_norm"), [("2", "0", "false"), ("3", "3", "true")])
def test_packed_scores_equal_a_plain_pass_per_prompt_and_label(
    llama_dir, tmp_path, batch_size, shots, length_norm
):
    scorer = causal_lm.make_causal_lm(
        str(llama_dir),
        make_context(tmp_path, batch_size=batch_size, shots=shots, calibrate="none", length_norm=length_norm),
    )
    scorer.fit(TRAIN, TASK)
    head, suffixes, _, delimiter = scorer.prompts(REVIEWS, TASK)
    continuations = scorer._continuations(TASK, delimiter)
    tree = LabelTree.of(continuations)
    assert len(tree.tokens) < sum(len(c) - 1 for c in continuations), "no label prefix is shared"
    assert len({len(s) for s in suffixes}) == len(suffixes), "reviews of one length would not test padding"
    scores = scorer.continuation_scores(head, suffixes, continuations)
    expected = reference_scores(scorer._model, head, suffixes, continuations, length_norm == "true")
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_without_a_head_the_reviews_are_read_without_a_cache(llama_dir, tmp_path):
    scorer = causal_lm.make_causal_lm(str(llama_dir), make_context(tmp_path, batch_size="4"))
    scorer._load()
    suffixes = [scorer._encode(text) for text in REVIEWS]
    continuations = [scorer._encode(" " + word) for word in TASK.label_words]
    scores = scorer.continuation_scores([], suffixes, continuations)
    np.testing.assert_allclose(
        scores, reference_scores(scorer._model, [], suffixes, continuations), atol=1e-4
    )


def test_llm_part_counts_the_tokens_scoring_reads_and_compares_them_with_a_plain_pass(llama_dir, tmp_path):
    def build(workdir):
        return causal_lm.make_causal_lm(str(llama_dir), make_context(workdir, batch_size="2"))

    report = bench_llm.llm(REVIEWS, TRAIN, tmp_path, build=build, tasks=[TASK])
    figures = report["by_task"][TASK.name]
    scorer = build(tmp_path)
    scorer._load_tokenizer()
    scorer._demos[TASK.fingerprint()] = scorer.choose_demonstrations(TRAIN, TASK)
    head, suffixes, _, delimiter = scorer.prompts(REVIEWS, TASK)
    tree = LabelTree.of(scorer._continuations(TASK, delimiter))
    assert figures["demonstrations"] == 4 and figures["head_tokens"] == len(head)
    assert figures["tokens"] == sum(len(s) for s in suffixes) + len(REVIEWS) * len(tree.tokens)
    assert figures["share_of_forward"] == pytest.approx(
        figures["scoring_tokens_per_s"] / figures["forward_tokens_per_s"]
    )
    assert figures["reviews_per_s"] > 0


def test_llm_checks_hold_each_task_to_the_share_of_the_forward_pass():
    report = {
        "llm": {
            "target": 0.6,
            "by_task": {"polarity": {"share_of_forward": 0.75}, "category": {"share_of_forward": 0.4}},
        }
    }
    checks = {check.figure.split(":")[0]: check for check in bench.checks_for(report)}
    assert checks["polarity"].passed and not checks["category"].passed
    assert all(check.part == "llm" and check.target == ">= 60%" for check in checks.values())


@pytest.mark.slow
def test_packaged_smollm2_packed_scores_equal_plain_passes_on_the_category_labels(tmp_path):
    """Zero-shot, so that the plain passes the reference makes (one per review and label) stay short."""
    task = CategoryTask()
    scorer = causal_lm.make_smollm2(None, make_context(tmp_path, calibrate="none", shots="0"))
    head, suffixes, _, delimiter = scorer.prompts(REVIEWS[:2], task)
    continuations = scorer._continuations(task, delimiter)
    assert max(len(c) for c in continuations) > 2
    scores = scorer.continuation_scores(head, suffixes, continuations)
    expected = reference_scores(scorer._model, head, suffixes, continuations)
    np.testing.assert_allclose(scores, expected, atol=2e-4)
    assert (scores.argmax(axis=1) == expected.argmax(axis=1)).all()
