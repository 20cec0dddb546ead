"""HF sequence classifiers on tiny random-weight models: label mapping, probabilities, long inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.plugins.models import classifiers
from harness.plugins.models._truncation import fit_tokens
from harness.plugins.models.classifiers import (
    Family,
    HFClassifier,
    LabelMappingError,
    map_labels,
    parse_label_map,
)
from tests.tiny_encoders import FakeTask, build_distilbert, build_electra, make_ctx

TEXTS = [
    "Great blender, crushes ice in seconds.",
    "It stopped working after a week and support never answered.",
    "ok",
    "The case fits my phone, the colour is a bit darker than the picture but I like it anyway.",
    "Terrible.",
]
LONG_TEXT = " ".join(["the battery lasted a long time and the screen was bright"] * 20)


@pytest.fixture(scope="module")
def distilbert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # labels deliberately in the reverse of the task's order
    return build_distilbert(tmp_path_factory.mktemp("distilbert"), {0: "Positive", 1: "NEGATIVE"})


@pytest.fixture(scope="module")
def electra_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_electra(tmp_path_factory.mktemp("electra"), {0: "LABEL_0", 1: "LABEL_1"})


def naive_probs(directory: Path, texts: list[str], max_length: int = 512) -> np.ndarray:
    """Softmax of the checkpoint's own logits, one text at a time, in the checkpoint's label order."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
            rows.append(torch.softmax(model(**inputs).logits, dim=-1)[0].numpy())
    return np.array(rows)


def test_map_labels_matches_names_in_any_order_and_case() -> None:
    assert map_labels({0: "POSITIVE", 1: "negative"}, ("negative", "positive")) == [1, 0]
    assert map_labels({0: "neg", 1: "pos"}, ("positive", "negative")) == [1, 0]


def test_map_labels_uses_an_explicit_map_by_name_or_index() -> None:
    id2label = {0: "LABEL_0", 1: "LABEL_1"}
    assert map_labels(id2label, ("negative", "positive"), {"LABEL_0": "positive", "LABEL_1": "negative"}) == [
        1,
        0,
    ]
    assert map_labels(id2label, ("negative", "positive"), {"0": "negative", "1": "positive"}) == [0, 1]


@pytest.mark.parametrize(
    ("id2label", "label_map", "needle"),
    [
        ({0: "LABEL_0", 1: "LABEL_1"}, None, "'LABEL_0' matches no task label"),
        ({0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_0": "negative", "LABEL_1": "happy"}, "'happy'"),
        ({0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_0": "negative", "LABEL_1": "negative"}, "both"),
        ({0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_7": "negative"}, "label_7"),
        ({0: "negative", 1: "neutral", 2: "positive"}, None, "'neutral'"),
        ({0: "negative"}, None, "no checkpoint label means positive"),
    ],
)
def test_map_labels_fails_clearly(id2label: dict, label_map: dict | None, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        map_labels(id2label, ("negative", "positive"), label_map, checkpoint="some/model")
    message = str(info.value)
    assert needle in message
    assert "some/model" in message and "negative, positive" in message and "label_map=" in message


def test_parse_label_map() -> None:
    assert parse_label_map("LABEL_0=negative, LABEL_1=positive") == {
        "LABEL_0": "negative",
        "LABEL_1": "positive",
    }
    assert parse_label_map(None) == {}
    with pytest.raises(LabelMappingError, match="NAME=label"):
        parse_label_map("LABEL_0:negative")


def test_register_models_registers_the_small_families() -> None:
    found = {}
    classifiers.register_models(
        lambda name, factory, description="", **declared: found.setdefault(name, factory)
    )
    assert set(found) == {"hf-classifier", "distilbert", "electra", "minilm"}
    assert all(callable(f) for f in found.values())


def test_config_labels_are_mapped_into_task_order(distilbert_dir: Path, tmp_path: Path) -> None:
    task = FakeTask()
    model = classifiers.make_hf_classifier(str(distilbert_dir), make_ctx(tmp_path))
    out = model.predict(TEXTS, task)
    assert out.probs.shape == (len(TEXTS), 2)
    assert out.probs.dtype == np.float32
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-6)
    # the checkpoint says 0=Positive, 1=NEGATIVE; the task wants (negative, positive)
    np.testing.assert_allclose(out.probs, naive_probs(distilbert_dir, TEXTS)[:, [1, 0]], atol=1e-5)
    assert list(out.truncated) == [False] * len(TEXTS)


def test_batching_does_not_change_scores(distilbert_dir: Path, tmp_path: Path) -> None:
    task = FakeTask()
    batched = classifiers.make_distilbert(str(distilbert_dir), make_ctx(tmp_path, {"batch_size": "2"}))
    single = classifiers.make_distilbert(str(distilbert_dir), make_ctx(tmp_path, {"batch_size": "1"}))
    np.testing.assert_allclose(
        batched.predict(TEXTS, task).probs, single.predict(TEXTS, task).probs, atol=1e-5
    )
    assert batched.predict([], task).probs.shape == (0, 2)


def test_unmappable_labels_fail_naming_both_label_sets(electra_dir: Path, tmp_path: Path) -> None:
    model = classifiers.make_electra(str(electra_dir), make_ctx(tmp_path))
    with pytest.raises(ValueError, match=r"LABEL_0, LABEL_1.*negative, positive.*label_map="):
        model.predict(TEXTS, FakeTask())


def test_explicit_label_map_orders_columns(electra_dir: Path, tmp_path: Path) -> None:
    task = FakeTask()
    straight = classifiers.make_electra(
        str(electra_dir), make_ctx(tmp_path, {"label_map": "LABEL_0=negative,LABEL_1=positive"})
    )
    swapped = classifiers.make_electra(
        str(electra_dir), make_ctx(tmp_path, {"label_map": "LABEL_1=negative,LABEL_0=positive"})
    )
    naive = naive_probs(electra_dir, TEXTS)
    np.testing.assert_allclose(straight.predict(TEXTS, task).probs, naive, atol=1e-5)
    np.testing.assert_allclose(swapped.predict(TEXTS, task).probs, naive[:, [1, 0]], atol=1e-5)
    assert straight.fingerprint() != swapped.fingerprint()


def test_family_default_checkpoint_uses_its_builtin_label_map(electra_dir: Path, tmp_path: Path) -> None:
    family = Family(
        name="electra-like",
        ready={"polarity": str(electra_dir)},
        label_maps={str(electra_dir): "LABEL_0=negative,LABEL_1=positive"},
    )
    model = HFClassifier(family, None, make_ctx(tmp_path))
    np.testing.assert_allclose(
        model.predict(TEXTS, FakeTask()).probs, naive_probs(electra_dir, TEXTS), atol=1e-5
    )
    with pytest.raises(HarnessError, match="no ready checkpoint"):
        HFClassifier(family, None, make_ctx(tmp_path, {"finetune": "never"})).predict(
            TEXTS, FakeTask("category", ("book", "toy"))
        )


@pytest.mark.parametrize("policy", ["head", "head+tail"])
def test_long_inputs_are_cut_and_flagged_never_dropped(
    distilbert_dir: Path, tmp_path: Path, policy: str
) -> None:
    model = classifiers.make_hf_classifier(str(distilbert_dir), make_ctx(tmp_path, {"truncation": policy}))
    out = model.predict([LONG_TEXT, "short and sweet"], FakeTask())
    assert out.probs.shape == (2, 2)
    assert list(out.truncated) == [True, False]
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-6)
    if policy == "head":
        # the tokenizer's own truncation keeps the head too: both must agree
        naive = naive_probs(distilbert_dir, [LONG_TEXT], max_length=64)[:, [1, 0]]
        np.testing.assert_allclose(out.probs[:1], naive, atol=1e-5)


def test_window_policy_averages_windows_one_row_per_text(distilbert_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    task = FakeTask()
    windowed = classifiers.make_hf_classifier(
        str(distilbert_dir), make_ctx(tmp_path, {"truncation": "window"})
    )
    texts = [LONG_TEXT + " but it broke", "fine", LONG_TEXT]
    out = windowed.predict(texts, task)
    assert out.probs.shape == (3, 2)
    assert list(out.truncated) == [False, False, False]
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-6)

    tokenizer = AutoTokenizer.from_pretrained(distilbert_dir)
    model = AutoModelForSequenceClassification.from_pretrained(distilbert_dir).eval()
    ids = tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    windows, _ = fit_tokens(ids, 62, "window")
    assert len(windows) > 1
    with torch.no_grad():
        rows = [
            torch.softmax(model(torch.tensor([[101, *w, 102]])).logits, dim=-1)[0].numpy() for w in windows
        ]
    np.testing.assert_allclose(out.probs[0], np.mean(rows, axis=0)[[1, 0]], atol=1e-5)


def test_fingerprint_is_stable_and_tracks_settings(distilbert_dir: Path, tmp_path: Path) -> None:
    arg = str(distilbert_dir)
    first = classifiers.make_hf_classifier(arg, make_ctx(tmp_path))
    again = classifiers.make_hf_classifier(arg, make_ctx(tmp_path / "elsewhere"))
    assert first.fingerprint() == again.fingerprint()
    assert (
        first.fingerprint()
        != classifiers.make_hf_classifier(arg, make_ctx(tmp_path, {"truncation": "head"})).fingerprint()
    )
    assert first.fingerprint() != classifiers.make_distilbert(arg, make_ctx(tmp_path)).fingerprint()


def test_bad_options_and_missing_checkpoint_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="hf-classifier:"):
        classifiers.make_hf_classifier(None, make_ctx(tmp_path))
    with pytest.raises(HarnessError, match="truncation"):
        classifiers.make_distilbert(None, make_ctx(tmp_path, {"truncation": "middle"}))
    with pytest.raises(HarnessError, match="finetune"):
        classifiers.make_distilbert(None, make_ctx(tmp_path, {"finetune": "sometimes"}))
    with pytest.raises(HarnessError, match="batch_size"):
        classifiers.make_distilbert(None, make_ctx(tmp_path, {"batch_size": "many"}))
    model = classifiers.make_hf_classifier(str(tmp_path / "absent"), make_ctx(tmp_path))
    with pytest.raises(HarnessError, match="absent"):
        model.predict(TEXTS, FakeTask())


def test_pickled_weights_load_only_when_allowed(distilbert_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (pickled / name).write_bytes((distilbert_dir / name).read_bytes())
    torch.save(load_file(distilbert_dir / "model.safetensors"), pickled / "pytorch_model.bin")
    with pytest.raises(HarnessError, match="allow_pickle=true"):
        classifiers.make_hf_classifier(str(pickled), make_ctx(tmp_path)).predict(TEXTS, FakeTask())
    allowed = classifiers.make_hf_classifier(str(pickled), make_ctx(tmp_path, {"allow_pickle": "true"}))
    np.testing.assert_allclose(
        allowed.predict(TEXTS, FakeTask()).probs, naive_probs(distilbert_dir, TEXTS)[:, [1, 0]], atol=1e-5
    )


def _fresh_thread_count() -> int:
    """The intra-op thread count a newly started thread gets (torch's process-wide setting)."""
    import threading

    import torch

    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


@pytest.mark.parametrize(("batch_size", "truncation"), [("1", "head+tail"), ("2", "window")])
def test_streams_score_exactly_as_one_stream_in_order(
    distilbert_dir: Path, tmp_path: Path, batch_size: str, truncation: str
) -> None:
    task = FakeTask()
    texts = [*TEXTS, LONG_TEXT, "fine", LONG_TEXT + " but it broke"]
    options = {"batch_size": batch_size, "truncation": truncation}
    one = classifiers.make_hf_classifier(str(distilbert_dir), make_ctx(tmp_path, options))
    reference = one.predict(texts, task)
    for streams in ("2", "3"):
        many = classifiers.make_hf_classifier(
            str(distilbert_dir), make_ctx(tmp_path, {**options, "streams": streams})
        )
        out = many.predict(texts, task)
        np.testing.assert_allclose(out.probs, reference.probs, atol=1e-6)
        assert list(out.truncated) == list(reference.truncated)
        assert many.predict(texts[:1], task).probs.shape == (1, 2)
        assert many.predict([], task).probs.shape == (0, 2)


def test_streams_restore_the_thread_count(distilbert_dir: Path, tmp_path: Path) -> None:
    import torch

    main, fresh = torch.get_num_threads(), _fresh_thread_count()
    model = classifiers.make_hf_classifier(
        str(distilbert_dir), make_ctx(tmp_path, {"batch_size": "1", "streams": "2"})
    )
    assert model.batch_size == classifiers.PREDICT_CALL_REVIEWS, "the runner sends every stream work"
    wide = classifiers.make_hf_classifier(
        str(distilbert_dir), make_ctx(tmp_path, {"batch_size": "16", "streams": "4"})
    )
    assert wide.batch_size == 64
    model.predict(TEXTS, FakeTask())
    assert torch.get_num_threads() == main
    assert _fresh_thread_count() == fresh


def test_each_stream_gets_its_share_of_the_threads_and_errors_reach_the_caller() -> None:
    import threading

    import torch

    before = torch.get_num_threads()
    seen: dict[int, tuple[str, int]] = {}

    def record(batch: list[int]) -> None:
        seen[batch[0]] = (threading.current_thread().name, torch.get_num_threads())

    try:
        torch.set_num_threads(4)
        classifiers.in_streams(record, [[i] for i in range(6)], 2)
        assert sorted(seen) == list(range(6))
        assert all(name.startswith("harness-stream") and n == 2 for name, n in seen.values())
        assert torch.get_num_threads() == 4 and _fresh_thread_count() == 4
        seen.clear()
        classifiers.in_streams(record, [[i] for i in range(6)], 8)
        assert {n for _, n in seen.values()} == {1}
        seen.clear()
        classifiers.in_streams(record, [[0]], 2)
        assert seen[0] == (threading.current_thread().name, 4)

        def fail(batch: list[int]) -> None:
            raise RuntimeError(f"batch {batch[0]} failed")

        with pytest.raises(RuntimeError, match="batch 0 failed"):
            classifiers.in_streams(fail, [[i] for i in range(4)], 2)
        assert torch.get_num_threads() == 4 and _fresh_thread_count() == 4
    finally:
        torch.set_num_threads(before)


def test_streams_option_is_checked_and_leaves_the_fingerprint_alone(
    distilbert_dir: Path, tmp_path: Path
) -> None:
    arg = str(distilbert_dir)
    with pytest.raises(HarnessError, match=r"option streams='0' must be at least 1"):
        classifiers.make_hf_classifier(arg, make_ctx(tmp_path, {"streams": "0"}))
    with pytest.raises(HarnessError, match=r"option streams='two' must be a whole number"):
        classifiers.make_hf_classifier(arg, make_ctx(tmp_path, {"streams": "two"}))
    assert (
        classifiers.make_hf_classifier(arg, make_ctx(tmp_path, {"streams": ""})).streams is None
    )  # the engine's
    plain = classifiers.make_hf_classifier(arg, make_ctx(tmp_path))
    streamed = classifiers.make_hf_classifier(arg, make_ctx(tmp_path, {"streams": "4"}))
    assert plain.fingerprint() == streamed.fingerprint()
    assert "streams" not in classifiers.OPTIONS.fingerprinted(streamed.options)
