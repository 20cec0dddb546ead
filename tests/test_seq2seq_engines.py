"""Label scoring's encoder pass on OpenVINO and ONNX Runtime against float32 torch, and engine=auto's cached choice.

Tolerances, on a tiny random T5: fp32 engines run the same float32 encoder in
another order of operations, so its states agree to 1e-5 and the label
log-likelihoods the torch decoder reads from them to a relative 1e-5 (the
bench's bar for label scoring); bf16 and int8 move probabilities by as much as
a classifier's (0.02 and 0.08, see tests/test_engines.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.plugins.engines import choice as engine_choice
from harness.plugins.models.seq2seq import Seq2SeqScorer, make_seq2seq
from tests.engine_runs import assert_measured_once_then_cached, run_twice_rows
from tests.tiny_t5 import PromptTask, build_tiny_t5, make_context

pytestmark = pytest.mark.engines
TEXTS = [
    "This blender works great and I love it. Five stars!",
    "The book broke after two days. Returned it.",
    "ok",
    "These shoes arrived late and damaged, feels cheap but does the job. Okay for the price.",
]
TOLERANCE = {"bf16": 0.02, "int8": 0.08}


@pytest.fixture(scope="module")
def t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_t5(tmp_path_factory.mktemp("t5") / "t5")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model directory for the module: an export made by one test is reused by the next."""
    return tmp_path_factory.mktemp("models")


def scorer(checkpoint: Path, workdir: Path, **options: str) -> Seq2SeqScorer:
    return make_seq2seq(str(checkpoint), make_context(workdir, **options))


def inputs(model: Seq2SeqScorer) -> list[list[int]]:
    model._load()
    return [model._encode(text) + [1] for text in TEXTS]


def by_row(encoded: Any, rows: list[list[int]]) -> dict[int, np.ndarray]:
    """Each input's encoder states, its padding left out, whatever batches they came in."""
    return {
        index: np.asarray(states[position, : len(rows[index])].detach())
        for batch, states in encoded
        for position, index in enumerate(batch)
    }


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime"])
def test_float32_encoder_engines_match_torch(t5: Path, model_dir: Path, engine: str) -> None:
    torch_model = scorer(t5, model_dir, engine="torch")
    rows = inputs(torch_model)
    words = PromptTask().label_words
    reference = torch_model.label_scores(rows, words)
    assert np.abs(reference[:, 0] - reference[:, 1]).max() > 0.1  # distinct answers, so a swap would show
    model = scorer(t5, model_dir, engine=engine, precision="fp32")
    encoder = model.encoder(words)
    assert encoder is not None
    for row, states in by_row(encoder(rows), rows).items():
        np.testing.assert_allclose(states, by_row(torch_model.torch_encoder(rows), rows)[row], atol=1e-5)
    np.testing.assert_allclose(model.label_scores(rows, words, encoder), reference, rtol=1e-5)
    np.testing.assert_allclose(
        model.predict(TEXTS, PromptTask()).probs, torch_model.predict(TEXTS, PromptTask()).probs, atol=1e-5
    )
    assert model.run_stats()["engine"] == f"{engine}-fp32"


@pytest.mark.long
@pytest.mark.parametrize(
    ("engine", "precision"), [("openvino", "bf16"), ("openvino", "int8"), ("onnxruntime", "int8")]
)
def test_reduced_precision_encoders_stay_close_to_torch(
    t5: Path, model_dir: Path, engine: str, precision: str
) -> None:
    from harness.plugins.engines import openvino as openvino_engine

    if precision == "bf16" and not openvino_engine.supported("bf16"):
        pytest.skip("this CPU has no bf16 units")
    reference = scorer(t5, model_dir, engine="torch").predict(TEXTS, PromptTask()).probs
    changed = scorer(t5, model_dir, engine=engine, precision=precision).predict(TEXTS, PromptTask()).probs
    assert np.abs(changed - reference).max() > 0  # the precision was applied
    np.testing.assert_allclose(changed, reference, atol=TOLERANCE[precision])


def test_auto_measures_once_records_the_choice_and_reuses_it(
    t5: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = run_twice_rows(f"seq2seq:{t5}", tmp_path, model_dir, monkeypatch)
    assert_measured_once_then_cached(first, second, model_dir)


def test_engine_options_refuse_what_cannot_run(t5: Path, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="has no precision bf16"):
        scorer(t5, tmp_path, engine="onnxruntime", precision="bf16")
    with pytest.raises(HarnessError, match="generate runs torch"):
        scorer(t5, tmp_path, engine="openvino", mode="generate")
    with pytest.raises(HarnessError, match="dtype float32"):
        make_seq2seq(str(t5), make_context(tmp_path, dtype="bfloat16", engine="openvino"))


def test_explicit_engines_change_the_fingerprint_and_auto_does_not(t5: Path, tmp_path: Path) -> None:
    auto = scorer(t5, tmp_path).fingerprint()
    assert auto == scorer(t5, tmp_path, engine="auto").fingerprint()
    assert "engine" not in auto
    assert scorer(t5, tmp_path, engine="onnxruntime", precision="int8").fingerprint() != auto


@pytest.mark.long
def test_bench_times_label_scoring_with_each_encoder_engine_against_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.plugins.bench import _scoring
    from harness.plugins.bench._encoder_engines import encoder_engines
    from harness.plugins.bench.command import render_encoder_engines

    tiny = {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4}
    monkeypatch.setattr(_scoring, "T5_SMALL", tiny)
    monkeypatch.setattr(engine_choice, "AUTO_ENGINES", ("onnxruntime",))
    figures = encoder_engines(TEXTS, tmp_path)
    rows = figures["engines"]
    assert list(rows) == ["torch-fp32", "onnxruntime-fp32", "onnxruntime-int8"]
    assert rows["torch-fp32"]["vs_torch"] == 1 and rows["torch-fp32"]["max_abs_loglik_diff"] == 0
    assert (
        rows["onnxruntime-fp32"]["argmax_agreement"] == 1
        and rows["onnxruntime-fp32"]["max_abs_loglik_diff"] < 1e-3
    )
    assert all(row["reviews_per_s"] > 0 for row in rows.values())
    assert figures["encoder_share"] < 1  # the decoder takes some of the time
    table = render_encoder_engines(figures)
    assert all(key in table for key in rows)
