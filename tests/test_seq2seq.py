"""Seq2seq rank classification on a tiny random T5 loaded from disk like a hub checkpoint."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.plugins.models import seq2seq
from harness.plugins.models._label_scoring import (
    answers_to_probs,
    parse_answer,
    prompt_parts,
    scores_to_probs,
)
from harness.plugins.models._truncation import fit_tokens
from harness.types import Model, ModelOutput
from tests.tiny_t5 import PromptTask, build_tiny_t5, make_context

REVIEWS = [
    "This blender works great and I love it. Five stars!",
    "The charger broke after two days. Returned it.",
    "These shoes feel cheap but does the job.",
]
# Label words of different token lengths, so padding of label targets is exercised.
TASK = PromptTask(
    labels=("neg", "pos", "mixed"),
    label_words=("negative", "positive", "works great and cheap"),
)


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory: pytest.TempPathFactory):
    # Seed 1 gives a random model whose greedy answers are not empty, so parsing can be tested.
    return build_tiny_t5(tmp_path_factory.mktemp("tiny-t5"), seed=1)


def build(t5_dir, tmp_path, **options) -> seq2seq.Seq2SeqScorer:
    return seq2seq.make_flan_t5(str(t5_dir), make_context(tmp_path, **options))


def naive_loglik(model, tokenizer, source: list[int], word: str) -> float:
    """One full forward per (input, label) pair with `labels=`, the textbook way."""
    import torch

    target = tokenizer(word)["input_ids"]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([source]), labels=torch.tensor([target])).logits
    logp = logits[0].log_softmax(-1)
    return float(sum(logp[i, t] for i, t in enumerate(target)))


def test_registers_three_families():
    seen = {}
    seq2seq.register_models(
        lambda name, factory, description="", **declared: seen.update({name: (factory, description)})
    )
    assert set(seen) == {"flan-t5", "flan-ul2", "seq2seq"}
    assert all(description for _, description in seen.values())


def test_defaults_are_the_study_checkpoints_and_nothing_loads_before_predict(tmp_path):
    flan = seq2seq.make_flan_t5(None, make_context(tmp_path))
    ul2 = seq2seq.make_flan_ul2(None, make_context(tmp_path))
    assert (flan.checkpoint, ul2.checkpoint) == ("google/flan-t5-xxl", "google/flan-ul2")
    assert isinstance(flan, Model)
    assert "google/flan-t5-xxl" in flan.fingerprint()
    with pytest.raises(ValueError, match="seq2seq:HUB_ID_OR_PATH"):
        seq2seq.make_seq2seq(None, make_context(tmp_path))


def test_importing_the_plugins_does_not_import_torch():
    code = (
        "import sys, harness.plugins.models.seq2seq, harness.plugins.models.causal_lm\n"
        "sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_probabilities_have_one_row_per_review_summing_to_one(t5_dir, tmp_path):
    out = build(t5_dir, tmp_path).predict(REVIEWS, TASK)
    assert isinstance(out, ModelOutput)
    assert out.probs.shape == (len(REVIEWS), len(TASK.labels))
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-9)
    assert (out.probs > 0).all()
    assert list(out.truncated) == [False, False, False]


def test_shared_encoder_scores_equal_a_full_forward_per_label(t5_dir, tmp_path):
    scorer = build(t5_dir, tmp_path, batch_size="2")
    scorer._load()
    tokenizer = scorer._tokenizer
    inputs = [tokenizer(text)["input_ids"] for text in REVIEWS]
    scores = scorer.label_scores(inputs, TASK.label_words)
    naive = [[naive_loglik(scorer._model, tokenizer, src, w) for w in TASK.label_words] for src in inputs]
    np.testing.assert_allclose(scores, naive, atol=1e-4)


def test_length_norm_divides_each_label_score_by_its_token_count(t5_dir, tmp_path):
    summed = build(t5_dir, tmp_path)
    normed = build(t5_dir, tmp_path, length_norm="true")
    summed._load()
    inputs = [summed._tokenizer(text)["input_ids"] for text in REVIEWS]
    counts = np.array([len(t) for t in summed.label_targets(TASK.label_words)])
    assert len(set(counts)) > 1
    np.testing.assert_allclose(
        normed.label_scores(inputs, TASK.label_words),
        summed.label_scores(inputs, TASK.label_words) / counts,
        atol=1e-5,
    )
    assert normed.fingerprint() != summed.fingerprint()


def test_prediction_scores_the_prompt_around_the_review(t5_dir, tmp_path):
    scorer = build(t5_dir, tmp_path)
    scorer._load()
    before, after = prompt_parts(TASK.prompt, TASK.label_words)
    encode = scorer._encode
    source = encode(before) + encode(REVIEWS[0]) + encode(after) + [scorer._tokenizer.eos_token_id]
    naive = np.array([naive_loglik(scorer._model, scorer._tokenizer, source, w) for w in TASK.label_words])
    expected = np.exp(naive - naive.max()) / np.exp(naive - naive.max()).sum()
    np.testing.assert_allclose(scorer.predict(REVIEWS[:1], TASK).probs[0], expected, atol=1e-4)


def test_long_reviews_are_truncated_and_flagged_never_dropped(t5_dir, tmp_path):
    long_review = " ".join([REVIEWS[0]] * 40)
    texts = [REVIEWS[1], long_review]
    for policy in ("head", "head+tail", "window"):
        out = build(t5_dir, tmp_path, max_length="128", truncation=policy).predict(texts, TASK)
        assert out.probs.shape == (2, 3)
        np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-9)
        assert list(out.truncated) == [False, policy != "window"]


def test_window_policy_averages_the_windows_of_a_long_review(t5_dir, tmp_path):
    words = ("negative", "positive")
    task = PromptTask(label_words=words)
    long_review = " ".join(REVIEWS * 12)
    scorer = build(t5_dir, tmp_path, max_length="128", truncation="window")
    windowed = scorer.predict([long_review], task).probs
    before, after = prompt_parts(task.prompt, words)
    head = scorer._encode(before)
    tail = scorer._encode(after) + [scorer._tokenizer.eos_token_id]
    windows, _ = fit_tokens(scorer._encode(long_review), 128 - len(head) - len(tail), "window")
    assert len(windows) > 2
    rows = scores_to_probs(scorer.label_scores([head + w + tail for w in windows], words))
    assert np.ptp(rows[:, 0]) > 1e-6
    np.testing.assert_allclose(windowed[0], rows.mean(axis=0), atol=1e-9)


def test_prompt_longer_than_the_budget_is_a_clear_error(t5_dir, tmp_path):
    with pytest.raises(ValueError, match="max_length=4"):
        build(t5_dir, tmp_path, max_length="4").predict(REVIEWS, TASK)


def test_generate_mode_keeps_every_answer_and_parses_label_words(t5_dir, tmp_path):
    # No {options} in the prompt, so changing the label words below leaves the model's input alone.
    task = PromptTask(labels=TASK.labels, label_words=TASK.label_words, prompt="Review: {text}")
    model = build(t5_dir, tmp_path, mode="generate", max_new_tokens="5")
    out = model.predict(REVIEWS, task)
    assert out.raw_text is not None and len(out.raw_text) == len(REVIEWS)
    assert out.probs.shape == (len(REVIEWS), 3)
    np.testing.assert_array_equal(out.probs, answers_to_probs(out.raw_text, task.label_words))
    first = out.raw_text[0].strip()
    assert first, "the random model generated nothing to parse"
    echo = PromptTask(labels=("a", "b"), label_words=(first, "zzz"), prompt=task.prompt)
    # The same batch again, so that padding cannot tip the random model's near-tied greedy choices.
    parsed = model.predict(REVIEWS, echo)
    assert parsed.raw_text[0].strip() == first
    np.testing.assert_array_equal(parsed.probs[0], [1.0, 0.0])


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("positive", 1),
        (" Positive.", 1),
        ("'negative'", 0),
        ("NEGATIVE\n", 0),
        ("positive and negative", None),
        ("I think positive", None),
        ("", None),
    ],
)
def test_parse_answer(answer, expected):
    assert parse_answer(answer, ("negative", "positive")) == expected


def test_prompt_parts_follow_format_rules():
    before, after = prompt_parts("Pick {{one}} of [{options}]: {text}.", ("bad", "good"))
    assert (before, after) == ("Pick {one} of [bad, good]: ", ".")


def test_unparseable_answers_get_rows_that_name_no_label():
    probs = answers_to_probs(["positive", "no idea"], ("negative", "positive"))
    np.testing.assert_array_equal(probs, [[0.0, 1.0], [0.0, 0.0]])


def test_float16_becomes_bfloat16_for_t5(t5_dir, tmp_path, caplog):
    import torch

    scorer = seq2seq.make_flan_t5(str(t5_dir), make_context(tmp_path, dtype="float16"))
    with caplog.at_level(logging.WARNING):
        scorer._load()
    assert scorer._model.dtype == torch.bfloat16
    assert "bfloat16" in caplog.text


def test_local_fingerprint_follows_the_weights(t5_dir, tmp_path):
    checkpoint = Path(shutil.copytree(t5_dir, tmp_path / "t5"))
    scorer = build(checkpoint, tmp_path)
    before = scorer.fingerprint()
    weights = checkpoint / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert scorer.fingerprint() == before, "a touched file holds the same weights"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert scorer.fingerprint() != before


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "chat"},
        {"length_norm": "maybe"},
        {"truncation": "middle"},
        {"batch_size": "0"},
        {"mode": "generate", "truncation": "window"},
        {"trust_remote_code": "sure"},
        {"device_map": "balanced"},
    ],
)
def test_bad_options_fail_when_the_model_is_built(tmp_path, options):
    with pytest.raises(ValueError):
        seq2seq.make_flan_t5(None, make_context(tmp_path, **options))
