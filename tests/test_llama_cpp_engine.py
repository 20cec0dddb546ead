"""The llama.cpp engine for GGUF models: choosing it, its one-line errors, and agreement with transformers."""

from __future__ import annotations

import os

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.plugins.engines import llama_cpp
from harness.plugins.models import causal_lm
from harness.plugins.models._label_scoring import answers_to_probs, scores_to_probs
from harness.tasks.category import CategoryTask
from harness.tasks.polarity import PolarityTask
from tests.tiny_t5 import make_context

llama_cpp_missing = pytest.mark.skipif(
    llama_cpp.available() is not None, reason="llama-cpp-py-sync is not installed or does not load"
)
REVIEWS = [
    "Absolutely love it! Works perfectly and the quality is excellent. Highly recommend.",
    "Terrible. It broke after one day and customer service never answered. Waste of money.",
    "These running shoes fit well and the soles grip on wet roads.",
    "The blender is loud but crushes ice in seconds; the jug cracked after a month.",
    "My son plays with this toy truck every day, the wheels still turn fine.",
    "Nice lipstick colour, it lasts all day and does not dry my lips.",
]
# With weights=stored, llama.cpp multiplies the Q4_1 weights with 8-bit activations where transformers
# dequantizes them to float32, so a label's log-likelihood moves by about 0.1 nats (up to 0.4). Measured,
# zero-shot and uncalibrated: the largest probability difference was 0.012 (polarity) and 0.064 (category)
# on these reviews, 0.038 on 32 real polarity reviews and 0.084 on 16 real category reviews; the tolerances
# leave room above that. Argmax agreement is asserted where the top two labels are further apart than the
# noise; raw category scores are often closer than that, so few reviews qualify there. On the float32
# copy (the default) both compute on the same weights: 0.0011 on 40 real category reviews, 0.0006 on 40
# polarity ones, every answer the same.
PROBABILITY_TOLERANCE = {
    ("stored", "polarity"): 0.05,
    ("stored", "category"): 0.12,
    ("float32", "polarity"): 0.005,
    ("float32", "category"): 0.005,
}
CLEAR_MARGIN = 0.3


@pytest.fixture
def without_llama_cpp(monkeypatch):
    monkeypatch.setattr(llama_cpp, "PACKAGE", "llama_cpp_py_sync_not_installed")


def test_engine_llama_cpp_without_the_package_is_one_line_naming_what_to_install(tmp_path, without_llama_cpp):
    with pytest.raises(HarnessError) as error:
        causal_lm.make_smollm2(None, make_context(tmp_path, engine="llama.cpp"))
    message = str(error.value)
    assert "\n" not in message
    assert "pip install" in message and "llama-cpp-py-sync" in message


def test_engine_auto_falls_back_to_transformers_without_the_package(tmp_path, without_llama_cpp):
    model = causal_lm.make_smollm2(None, make_context(tmp_path))
    assert model.engine == "transformers"
    assert model.run_stats() == {"engine": "transformers"}


def test_engine_llama_cpp_needs_a_local_gguf(tmp_path):
    with pytest.raises(HarnessError, match="local .gguf"):
        causal_lm.make_causal_lm("HuggingFaceTB/SmolLM2-135M", make_context(tmp_path, engine="llama.cpp"))
    auto = causal_lm.make_causal_lm("HuggingFaceTB/SmolLM2-135M", make_context(tmp_path))
    assert auto.engine == "transformers"


@llama_cpp_missing
def test_auto_picks_llama_cpp_for_a_gguf_and_the_engine_enters_the_fingerprint(tmp_path):
    default = causal_lm.make_smollm2(None, make_context(tmp_path))
    auto = causal_lm.make_smollm2(None, make_context(tmp_path, engine="auto"))
    explicit = causal_lm.make_smollm2(None, make_context(tmp_path, engine="llama.cpp"))
    transformers = causal_lm.make_smollm2(None, make_context(tmp_path, engine="transformers"))
    stored = causal_lm.make_smollm2(None, make_context(tmp_path, engine="llama.cpp", weights="stored"))
    assert auto.engine == "llama.cpp" and auto.run_stats() == {"engine": "llama.cpp", "weights": "float32"}
    assert auto.fingerprint() == explicit.fingerprint() != transformers.fingerprint()
    assert stored.fingerprint() != explicit.fingerprint() and stored.run_stats()["weights"] == "stored"
    assert default.engine == "transformers" and default.fingerprint() == transformers.fingerprint()
    assert transformers.run_stats() == {"engine": "transformers"}
    transformers_stored = causal_lm.make_smollm2(None, make_context(tmp_path, weights="stored"))
    assert transformers_stored.fingerprint() == transformers.fingerprint(), "weights is llama.cpp's alone"


@llama_cpp_missing
def test_the_float32_copy_is_written_once_and_holds_only_float32_tensors(tmp_path, monkeypatch):
    from gguf import GGMLQuantizationType, GGUFReader

    from harness.plugins.models import _checkpoints

    monkeypatch.setattr(_checkpoints, "hash_store", lambda: tmp_path / "cache" / "file-hashes.json")
    source = causal_lm.packaged_smollm2()
    copy = llama_cpp.float32_copy(str(source))
    assert copy.startswith(str(tmp_path / "cache")) and copy.endswith(".f32.gguf")
    written = os.stat(copy).st_mtime_ns
    assert llama_cpp.float32_copy(str(source)) == copy and os.stat(copy).st_mtime_ns == written
    types = {GGMLQuantizationType(t.tensor_type) for t in GGUFReader(copy).tensors}
    assert types == {GGMLQuantizationType.F32}
    assert {GGMLQuantizationType(t.tensor_type) for t in GGUFReader(source).tensors} != types


@llama_cpp_missing
def test_a_file_llama_cpp_cannot_read_leaves_no_copy_behind(tmp_path, monkeypatch):
    from harness.plugins.models import _checkpoints

    monkeypatch.setattr(_checkpoints, "hash_store", lambda: tmp_path / "cache" / "file-hashes.json")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF not really")
    with pytest.raises(RuntimeError, match="float32 copy"):
        llama_cpp.float32_copy(str(broken))
    assert list((tmp_path / "cache" / "gguf-float32").iterdir()) == []


def _scores(engine: str, task, tmp_path, **options: str) -> np.ndarray:
    model = causal_lm.make_smollm2(
        None, make_context(tmp_path, engine=engine, shots="0", calibrate="none", **options)
    )
    head, suffixes, _, delimiter = model.prompts(REVIEWS, task)
    return model.continuation_scores(head, suffixes, model._continuations(task, delimiter))


@pytest.mark.slow
@pytest.mark.long
@llama_cpp_missing
@pytest.mark.parametrize("weights", ["float32", "stored"])
@pytest.mark.parametrize("task", [PolarityTask(), CategoryTask()], ids=["polarity", "category"])
def test_llama_cpp_label_likelihoods_agree_with_transformers_on_the_packaged_gguf(task, weights, tmp_path):
    ours = _scores("llama.cpp", task, tmp_path, weights=weights)
    reference = _scores("transformers", task, tmp_path)
    assert ours.shape == reference.shape == (len(REVIEWS), len(task.label_words))
    top_two = np.sort(reference, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > (CLEAR_MARGIN if weights == "stored" else 0.01)
    print(f"{task.name}: {int(clear.sum())} clear, margins {np.round(top_two[:, 1] - top_two[:, 0], 2)}")
    assert clear.any()
    np.testing.assert_array_equal(ours.argmax(axis=1)[clear], reference.argmax(axis=1)[clear])
    difference = np.abs(scores_to_probs(ours) - scores_to_probs(reference)).max()
    print(f"{task.name}: largest probability difference {difference:.4f}")
    assert difference <= PROBABILITY_TOLERANCE[(weights, task.name)]


@pytest.mark.slow
@pytest.mark.long
@llama_cpp_missing
def test_llama_cpp_on_the_float32_copy_generates_what_transformers_generates(tmp_path):
    answers = {}
    for engine in ("llama.cpp", "transformers"):
        model = causal_lm.make_smollm2(None, make_context(tmp_path, engine=engine, mode="generate"))
        out = model.predict(REVIEWS[:3], PolarityTask())
        np.testing.assert_array_equal(out.probs, answers_to_probs(out.raw_text, PolarityTask().label_words))
        answers[engine] = list(out.raw_text)
    print(f"answers: {answers}")
    assert answers["llama.cpp"] == answers["transformers"]
    assert any(text.strip() for text in answers["llama.cpp"])
