"""Causal LM label scoring on a tiny random Llama, and the packaged SmolLM2 for real."""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.plugins.models import causal_lm
from harness.plugins.models._checkpoints import checkpoint_identity
from harness.plugins.models._label_scoring import answers_to_probs, scores_to_probs
from harness.tasks.polarity import PolarityTask
from harness.types import Example, Model
from tests.tiny_t5 import PromptTask, build_tiny_llama, make_context

CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}"
)
REVIEWS = [
    "This blender works great and I love it. Five stars!",
    "The charger broke after two days.",
    "These shoes feel cheap but does the job. Okay for the price.",
]
TASK = PromptTask(
    labels=("neg", "pos", "mixed"), label_words=("negative", "positive", "works great and cheap")
)


def labelled(pairs: list[tuple[str, int]]) -> list[Example]:
    """Train examples from (text, label) pairs, with ids t0, t1, ..."""
    return [Example(f"t{i}", text, label) for i, (text, label) in enumerate(pairs)]


TRAIN = labelled(
    [
        ("Broke after a week and the seller never answered my emails.", 0),
        ("Love this kettle, it boils fast and looks great on the counter.", 1),
        ("Fine for the price but the lid feels cheap and rattles.", 2),
        ("Stopped charging after two days, do not buy this cable.", 0),
        ("Great little speaker with clear sound and a long battery life.", 1),
        ("Works great for small jobs though the handle is cheap plastic.", 2),
        ("Arrived scratched and smelled of smoke, sent it straight back.", 0),
        ("My kids play with this puzzle every day, sturdy and fun.", 1),
        ("Does the job, nothing special, the cheap strap may not last.", 2),
        ("Too small and the zipper broke the first time I used it.", 0),
        ("Comfortable shoes that fit true to size, bought a second pair.", 1),
        ("Cheap but works great as a spare for the garage.", 2),
    ]
)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), chat_template=CHAT_TEMPLATE)


def build(llama_dir, tmp_path, **options) -> causal_lm.CausalScorer:
    return causal_lm.make_causal_lm(str(llama_dir), make_context(tmp_path, **options))


def fitted(llama_dir, tmp_path, **options) -> causal_lm.CausalScorer:
    scorer = build(llama_dir, tmp_path, **options)
    scorer.fit(TRAIN, TASK)
    return scorer


def naive_loglik(model, prompt: list[int], continuation: list[int]) -> float:
    """The whole prompt and continuation in one forward pass, no cache, no padding."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt + continuation])).logits[0]
    logp = logits.log_softmax(-1)
    return float(sum(logp[len(prompt) - 1 + j, t] for j, t in enumerate(continuation)))


def test_registers_smollm2_and_generic_causal_lm():
    seen = {}
    causal_lm.register_models(lambda name, factory, description="", **declared: seen.update({name: factory}))
    assert set(seen) == {"smollm2", "causal-lm"}


def test_smollm2_defaults_to_the_packaged_gguf_without_loading(tmp_path):
    model = causal_lm.make_smollm2(None, make_context(tmp_path))
    assert isinstance(model, Model)
    assert model.gguf_file == causal_lm.SMOLLM2_GGUF
    assert (causal_lm.packaged_smollm2().parent / model.gguf_file).is_file()
    assert checkpoint_identity(str(causal_lm.packaged_smollm2())) in model.fingerprint()
    assert model._model is None
    with pytest.raises(ValueError, match="causal-lm:HUB_ID_OR_PATH"):
        causal_lm.make_causal_lm(None, make_context(tmp_path))


@pytest.mark.parametrize(
    ("template", "shots"), [("true", "0"), ("false", "0"), ("true", "3"), ("false", "3")]
)
def test_cached_prefix_scores_equal_full_sequence_scores(llama_dir, tmp_path, template, shots):
    scorer = fitted(
        llama_dir, tmp_path, chat_template=template, batch_size="2", calibrate="none", shots=shots
    )
    head, suffixes, _, delimiter = scorer.prompts(REVIEWS, TASK)
    assert len({len(p) for p in suffixes}) == len(suffixes), "prompts of one length would not test padding"
    continuations = [scorer._encode(delimiter + word) for word in TASK.label_words]
    assert len({len(c) for c in continuations}) > 1
    scores = scorer.continuation_scores(head, suffixes, continuations)
    naive = [[naive_loglik(scorer._model, head + p, c) for c in continuations] for p in suffixes]
    np.testing.assert_allclose(scores, naive, atol=1e-4)
    np.testing.assert_allclose(scorer.predict(REVIEWS, TASK).probs, scores_to_probs(scores), atol=1e-9)


def test_chat_template_wraps_the_prompt_as_a_user_turn(llama_dir, tmp_path):
    chat = build(llama_dir, tmp_path, chat_template="auto")
    plain = build(llama_dir, tmp_path)
    assert chat.uses_chat_template and not plain.uses_chat_template
    chat_head, chat_tail, chat_delimiter = chat.prompt_frame(TASK)
    plain_head, plain_tail, plain_delimiter = plain.prompt_frame(TASK)

    def decode(ids: list[int]) -> str:
        return chat._tokenizer.decode(ids).replace(" ", "")

    assert decode(chat_head).startswith("<s>user:")
    assert chat_tail.endswith("</s><s>assistant:")
    assert plain_tail.endswith("Answer:")
    assert plain_head[0] == chat._tokenizer.bos_token_id
    assert (chat_delimiter, plain_delimiter) == ("", " ")
    assert chat.fingerprint() != plain.fingerprint()


def test_length_norm_divides_by_label_token_count(llama_dir, tmp_path):
    summed = build(llama_dir, tmp_path)
    normed = build(llama_dir, tmp_path, length_norm="true")
    head, suffixes, _, delimiter = summed.prompts(REVIEWS, TASK)
    continuations = [summed._encode(delimiter + word) for word in TASK.label_words]
    counts = np.array([len(c) for c in continuations])
    np.testing.assert_allclose(
        normed.continuation_scores(head, suffixes, continuations),
        summed.continuation_scores(head, suffixes, continuations) / counts,
        atol=1e-5,
    )


def test_without_a_train_split_calibration_divides_out_the_prior_on_content_free_inputs(llama_dir, tmp_path):
    plain = build(llama_dir, tmp_path, calibrate="none")
    calibrated = build(llama_dir, tmp_path)  # calibrate=auto, never fitted
    prior = plain.predict(list(causal_lm.CONTENT_FREE), TASK).probs.mean(axis=0)
    raw = plain.predict(REVIEWS, TASK).probs
    expected = raw / prior
    expected /= expected.sum(axis=1, keepdims=True)
    out = calibrated.predict(REVIEWS, TASK).probs
    np.testing.assert_allclose(out, expected, atol=1e-9)
    assert not np.allclose(out, raw, atol=1e-3)
    assert calibrated.fingerprint() != plain.fingerprint()


def test_rows_sum_to_one_and_long_reviews_are_flagged(llama_dir, tmp_path):
    long_review = " ".join(REVIEWS * 30)
    for policy in ("head+tail", "window"):
        out = build(llama_dir, tmp_path, max_length="160", truncation=policy).predict(
            [REVIEWS[0], long_review], TASK
        )
        assert out.probs.shape == (2, 3)
        np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-9)
        assert list(out.truncated) == [False, policy != "window"]


def test_generate_mode_returns_a_row_and_the_text_for_every_review(llama_dir, tmp_path):
    out = build(llama_dir, tmp_path, mode="generate", max_new_tokens="4").predict(REVIEWS, TASK)
    assert out.raw_text is not None and len(out.raw_text) == len(REVIEWS)
    np.testing.assert_array_equal(out.probs, answers_to_probs(out.raw_text, TASK.label_words))


def test_a_gguf_path_is_split_into_folder_and_file(tmp_path):
    weights = tmp_path / "model.Q4.gguf"
    weights.write_bytes(b"GGUF")
    model = causal_lm.make_causal_lm(str(weights), make_context(tmp_path))
    assert (model.checkpoint, model.gguf_file) == (str(tmp_path), "model.Q4.gguf")


def test_unknown_chat_template_choice_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="chat_template"):
        causal_lm.make_smollm2(None, make_context(tmp_path, chat_template="maybe"))


def test_bad_calibration_and_shots_options_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="calibrate=.*: choose one of auto, train, content-free, none"):
        causal_lm.make_smollm2(None, make_context(tmp_path, calibrate="true"))
    with pytest.raises(ValueError, match="shots"):
        causal_lm.make_smollm2(None, make_context(tmp_path, shots="-1"))


def test_demonstrations_take_labels_in_turn_and_do_not_depend_on_train_order(llama_dir, tmp_path):
    scorer = fitted(llama_dir, tmp_path, shots="4")
    demos = scorer._demos[TASK.fingerprint()]
    assert len(demos) == 4
    assert len({d.label for d in demos[:3]}) == 3, "the first three demonstrations cover all three labels"
    shuffled = build(llama_dir, tmp_path, shots="4")
    shuffled.fit(TRAIN[::-1], TASK)
    assert shuffled._demos[TASK.fingerprint()] == demos
    head, _, _ = scorer.prompt_frame(TASK)
    shown = scorer._tokenizer.decode(head)
    for demo in demos:
        assert " ".join(demo.text.split()[:3]) in shown
    assert shown.count("Answer:") == 4
    zero = fitted(llama_dir, tmp_path, shots="0")
    assert zero._demos[TASK.fingerprint()] == ()
    assert len(zero.prompt_frame(TASK)[0]) < len(head)
    assert zero.fingerprint() != scorer.fingerprint()


def test_train_calibration_applies_the_scale_and_bias_fitted_on_other_train_reviews(llama_dir, tmp_path):
    from harness.plugins.routing._calibration import fit_scale_and_bias

    options = {"shots": "2", "calibration_size": "8"}
    scorer = fitted(llama_dir, tmp_path, **options)
    raw = fitted(llama_dir, tmp_path, calibrate="none", **options)
    shown = {d.id for d in scorer._demos[TASK.fingerprint()]}
    sample = [e for e in TRAIN if e.id not in shown]
    assert len(sample) == 10
    scale, bias = scorer._fitted[TASK.fingerprint()]
    chosen = [e for e in sample if e.id in _calibration_ids(tmp_path)]
    assert len(chosen) == 8, "the calibration sample excludes the demonstrations"
    head, suffixes, _, delimiter = raw.prompts([e.text for e in chosen], TASK)
    continuations = [raw._encode(delimiter + word) for word in TASK.label_words]
    expected = fit_scale_and_bias(
        raw.continuation_scores(head, suffixes, continuations), [e.label for e in chosen]
    )
    assert scale == pytest.approx(expected[0], rel=1e-4)
    np.testing.assert_allclose(bias, expected[1], atol=1e-4)
    raw_scores = np.log(raw.predict(REVIEWS, TASK).probs)
    np.testing.assert_allclose(
        scorer.predict(REVIEWS, TASK).probs, scores_to_probs(scale * raw_scores + bias), atol=1e-6
    )
    assert scorer.fingerprint() != raw.fingerprint()


def test_train_calibration_is_reused_from_the_work_directory(llama_dir, tmp_path, monkeypatch):
    first = fitted(llama_dir, tmp_path, calibration_size="6")
    again = build(llama_dir, tmp_path, calibration_size="6")
    monkeypatch.setattr(again, "continuation_scores", lambda *a: pytest.fail("recomputed the calibration"))
    again.fit(TRAIN, TASK)
    assert again.fingerprint() == first.fingerprint()
    assert again._model is None, "a stored calibration needs the tokenizer, never the weights"


def test_calibrate_train_without_a_train_split_is_a_clear_error(llama_dir, tmp_path):
    with pytest.raises(ValueError, match="calibrate=train needs a train split"):
        build(llama_dir, tmp_path, calibrate="train").predict(REVIEWS, TASK)


def _calibration_ids(workdir) -> set[str]:
    """The ids of the train reviews a stored calibration was fitted on."""
    import json

    (stored,) = (workdir / "calibration").glob("*.json")
    return set(json.loads(stored.read_text())["review_ids"])


@pytest.mark.slow
@pytest.mark.long
def test_packaged_smollm2_zero_shot_divides_the_content_free_prior_out_of_its_raw_scores(tmp_path):
    """Zero-shot SmolLM2-135M is near chance on a handful of reviews (0.668 macro-F1 on 1,000 marc
    reviews), so what is checked here is the path: the study's prompt scored, then calibrated."""
    reviews = [
        "Absolutely love it! Works perfectly and the quality is excellent. Highly recommend.",
        "Terrible. It broke after one day and customer service never answered. Waste of money.",
        "Great product, fast shipping, exactly as described. Five stars!",
        "Awful quality, arrived damaged and does not work at all. Returning it.",
    ]
    task = PolarityTask()  # the study's prompt, as users get it
    model = causal_lm.make_smollm2(None, make_context(tmp_path))  # no train split: content-free prior
    raw = causal_lm.make_smollm2(None, make_context(tmp_path, calibrate="none"))
    model._load()
    start = time.perf_counter()
    out = model.predict(reviews, task)
    print(f"smollm2: {len(reviews) / (time.perf_counter() - start):.1f} reviews/s")
    prior = model.label_prior(task)
    assert abs(prior[0] - prior[1]) > 0.01, "a flat prior would leave the check below empty"
    expected = raw.predict(reviews, task).probs / prior
    np.testing.assert_allclose(out.probs, expected / expected.sum(axis=1, keepdims=True), atol=1e-6)


@pytest.mark.slow
def test_packaged_smollm2_with_demonstrations_and_train_calibration(tmp_path):
    train = labelled(
        [
            ("Stopped working after a week. Very disappointed.", 0),
            ("Exactly what I needed, works perfectly.", 1),
            ("Cheap plastic, broke the first time I used it.", 0),
            ("My daughter loves it, great gift.", 1),
            ("Arrived damaged and the seller never replied.", 0),
            ("Great value and fast shipping, would buy again.", 1),
            ("Terrible fit and the color is nothing like the photo.", 0),
            ("Sturdy, well made and easy to clean.", 1),
            ("Waste of money, it does not do what it says.", 0),
            ("Comfortable and stylish, I wear them every day.", 1),
            ("The battery dies within an hour. Returning it.", 0),
            ("Five stars, best purchase this year.", 1),
        ]
    )
    reviews = [
        ("Absolutely love it! Works perfectly and the quality is excellent. Highly recommend.", 1),
        ("Terrible. It broke after one day and customer service never answered. Waste of money.", 0),
        ("Great product, fast shipping, exactly as described. Five stars!", 1),
        ("Awful quality, arrived damaged and does not work at all. Returning it.", 0),
    ]
    task = PolarityTask()
    model = causal_lm.make_smollm2(None, make_context(tmp_path, shots="4", calibration_size="8"))
    model.fit(train, task)
    assert len(model._demos[task.fingerprint()]) == 4
    assert (tmp_path / "calibration").is_dir()
    out = model.predict([text for text, _ in reviews], task)
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-9)
    assert int((out.probs.argmax(axis=1) == [gold for _, gold in reviews]).sum()) >= 3


def test_demonstration_and_calibration_seeds_are_separate_and_only_their_choices_fingerprint(
    llama_dir, tmp_path
):
    import dataclasses

    def seeded(seed: int, demos: int, calibration: int, **options: str) -> causal_lm.CausalScorer:
        context = make_context(tmp_path / f"{seed}-{demos}-{calibration}", **options)
        context = dataclasses.replace(context, seed=seed, seeds={"demos": demos, "calibration": calibration})
        scorer = causal_lm.make_causal_lm(str(llama_dir), context)
        scorer.fit(TRAIN, TASK)
        return scorer

    options = {"shots": "2", "calibration_size": "4"}
    base = seeded(0, 0, 0, **options)
    other_calibration = seeded(0, 0, 5, **options)
    other_demos = seeded(0, 5, 0, **options)
    key = TASK.fingerprint()
    assert other_calibration._demos[key] == base._demos[key]
    assert _calibration_ids(tmp_path / "0-0-5") != _calibration_ids(tmp_path / "0-0-0")
    assert other_demos._demos[key] != base._demos[key]
    zero_shot = {"shots": "0", "calibrate": "none"}
    assert seeded(0, 0, 0, **zero_shot).fingerprint() == seeded(3, 3, 3, **zero_shot).fingerprint()


def test_generate_mode_fingerprint_keeps_rows_cached_before_unparseable_answers_named_no_label(
    llama_dir, tmp_path
):
    generated = build(llama_dir, tmp_path, mode="generate").fingerprint()
    scored = build(llama_dir, tmp_path).fingerprint()
    assert "unparseable=no-label" in generated and "unparseable" not in scored


def test_a_whole_review_is_encoded_with_the_tail_as_the_prompt_text_is(tmp_path):
    """SmolLM2's tokenizer merges a review's last "." with the prompt's "." into ".."; scoring them as two
    tokens, as encoding the pieces apart did, is a prompt the model is never sent by a server."""
    model = causal_lm.make_smollm2(None, make_context(tmp_path, shots="0", max_length="64"))
    task = PolarityTask()
    long_review = "It works. " * 40
    texts = [*REVIEWS, long_review]
    head, suffixes, encoded, _ = model.prompts(texts, task)
    before, after = causal_lm.prompt_parts(task.prompt, task.label_words)
    for text, suffix in zip(REVIEWS, suffixes, strict=False):
        assert head + suffix == model._encode(before + text + after + model.answer_prefix)
    assert model._tokenizer.decode(suffixes[1][-4:-3]) == ".."
    assert encoded.truncated == [False, False, False, True]
    cut = suffixes[-1]
    tail = model._encode(after + model.answer_prefix)
    assert cut[-len(tail) :] == tail and len(head) + len(cut) <= 64, "a cut review keeps the tail apart"
