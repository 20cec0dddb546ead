"""Review embeddings: classifiers return them, runs keep them, and routers learn from them (in sweeps and hybrids)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.boards import Board, ModelEntry
from harness.cache import embedding_from_text
from harness.errors import HarnessError
from harness.plugins.models.classifiers import GENERIC, HFClassifier
from harness.plugins.models.hybrid import parse_hybrid
from harness.plugins.routing import _learned as learned
from harness.plugins.routing import sweep
from harness.plugins.routing._calibration import calibration_mask
from harness.plugins.routing._replay import PairedPredictions, read_pair
from harness.run import run_board
from tests.tiny_encoders import FakeTask, build_distilbert, make_ctx

TEXTS = ["great blender, crushes ice", "it stopped working after a week", "ok"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_distilbert(tmp_path_factory.mktemp("distilbert"))


def accuracy(gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    return {"accuracy": float(np.mean(probs.argmax(axis=1) == gold))}


def test_a_classifier_returns_the_final_cls_state_of_its_encoder(tiny_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    stock = AutoModelForSequenceClassification.from_pretrained(tiny_dir).eval()
    with torch.no_grad():
        expected = [stock(**tokenizer(t, return_tensors="pt"), output_hidden_states=True).hidden_states[-1][0, 0]
                    for t in TEXTS]  # fmt: skip
    for layers in ("fast", "stock"):
        model = HFClassifier(GENERIC, str(tiny_dir), make_ctx(tmp_path, {"encoder_layers": layers}))
        output = model.predict(TEXTS, FakeTask())
        assert output.embeddings is not None and output.embeddings.shape == (3, 32)
        np.testing.assert_allclose(output.embeddings, torch.stack(expected).numpy(), atol=1e-4)


def two_models(tiny_dir: Path, **overrides) -> Board:
    fields = dict(name="t", tasks=["toy"], models=[ModelEntry(f"hf-classifier:{tiny_dir}"), ModelEntry("words")],
                  data="toy:120", backend="cpu", bootstrap=0)  # fmt: skip
    fields.update(overrides)
    return Board(**fields)


def test_a_run_keeps_embeddings_with_predictions_and_a_cached_run_still_has_them(
    host, tiny_dir: Path, tmp_path: Path
) -> None:
    spec = f"hf-classifier:{tiny_dir}"
    first = run_board(host, two_models(tiny_dir), tmp_path)
    records = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    mine = [r for r in records if r["model"] == spec]
    assert all("embedding" not in r for r in records if r["model"] == "words")  # it returns none
    fresh = HFClassifier(GENERIC, str(tiny_dir), make_ctx(tmp_path / "w")).predict([r["text"] for r in mine],
                                                                                   FakeTask("toy"))  # fmt: skip
    stored = np.stack([embedding_from_text(r["embedding"]) for r in mine])
    np.testing.assert_allclose(stored, fresh.embeddings, atol=2e-3)  # kept as float16
    second = run_board(host, two_models(tiny_dir), tmp_path)
    assert [row["computed"] for row in second["rows"]] == [0, 0] and first["rows"][0]["computed"] > 0
    pair = read_pair(tmp_path / "predictions.jsonl", "toy", ("negative", "positive"), spec, "words")
    assert pair.small_embeddings is not None
    np.testing.assert_array_equal(pair.small_embeddings, stored)
    without = read_pair(tmp_path / "predictions.jsonl", "toy", ("negative", "positive"), "words", spec)
    assert without.small_embeddings is None
    report = sweep.sweep_from_run(host, tmp_path, "toy", {}, spec, "words",
                                  sweep.SweepSettings(compare_routers=True, bootstrap=0))  # fmt: skip
    assert [r.router for r in report.routers][-1] == "embedding"  # replayed from the run, nothing re-run
    with pytest.raises(HarnessError, match="compare it with --compare-routers"):
        sweep.sweep_from_run(host, tmp_path, "toy", {}, spec, "words", sweep.SweepSettings(router="learned"))


def hidden_direction_pair(n: int = 2000, seed: int = 0) -> PairedPredictions:
    """The small model is wrong where its embedding points one way, with confidence and text saying nothing."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 2, n)
    vectors = rng.normal(size=(n, 48))
    wrong = np.where(vectors[:, 5] > 1.0, rng.random(n) < 0.8, rng.random(n) < 0.04)
    vectors[:, 5] *= 4  # the direction stands out, as a topic the small model misreads would
    sure = 0.6 + 0.4 * rng.random(n)
    predicted = np.where(wrong, 1 - gold, gold)
    small = np.where(predicted[:, None] == np.arange(2), sure[:, None], 1 - sure[:, None])
    large = np.eye(2)[gold] * 0.8 + 0.1
    return PairedPredictions(ids=[str(i) for i in range(n)], gold=gold, small=small, large=large,
                             small_latency=np.ones(n), large_latency=np.ones(n),
                             texts=["a review"] * n, small_embeddings=vectors)  # fmt: skip


def test_the_embedding_router_finds_errors_only_the_embedding_shows():
    pair = hidden_direction_pair()
    half = calibration_mask(pair.ids, seed=0)
    rows = {
        r.router: r for r in learned.compare_routers(pair, half, accuracy, "accuracy", np.linspace(0, 1, 51))
    }
    assert list(rows) == ["confidence", "margin", "entropy", "learned", "embedding"]
    assert rows["embedding"].apgr > rows["learned"].apgr + 0.1
    assert rows["embedding"].apgr > rows["confidence"].apgr + 0.1
    pair.small_embeddings = None  # predictions without embeddings: the router is left out
    assert "embedding" not in {
        r.router for r in learned.compare_routers(pair, half, accuracy, "accuracy", [0, 1])
    }


def test_cascade_routers_one_per_step():
    assert parse_hybrid("a>b>c@confidence:0.97>margin:0.5") == (
        "a",
        "hybrid:b>c@margin:0.5",
        "confidence:0.97",
    )
    assert parse_hybrid("a>b>c@confidence:0.9") == ("a", "hybrid:b>c@confidence:0.9", "confidence:0.9")
    with pytest.raises(HarnessError, match="2 routers for 1 steps"):
        parse_hybrid("a>b@confidence:0.9>margin:0.5")


def hybrid_row(host, tiny_dir: Path, tmp_path: Path, router: str) -> dict:
    spec = f"hybrid:hf-classifier:{tiny_dir}>words@{router}"
    [row] = run_board(host, two_models(tiny_dir, models=[ModelEntry(spec)], data="toy:1000"), tmp_path)[
        "rows"
    ]
    return row


@pytest.mark.parametrize("router", ["learned:share=0.3", "embedding:share=0.3", "embedding:0.9"])
def test_a_hybrid_fits_its_learned_router_on_a_calibration_part_of_the_train_split(
    host, toy_plugin, tiny_dir: Path, tmp_path: Path, router: str
) -> None:
    row = hybrid_row(host, tiny_dir, tmp_path, router)
    assert row["status"] == "ok", row["error"]
    [fit] = row["extra"]["router_fits"]
    [large] = toy_plugin.models
    train = row["counts"]["train"]
    assert fit["calibration_reviews"] == round(train / 4) and fit["fit_reviews"] == len(large.fitted)
    assert fit["calibration_reviews"] + fit["fit_reviews"] == train
    scored = {json.loads(line)["id"] for line in (tmp_path / "predictions.jsonl").read_text().splitlines()}
    assert not scored & {example.id for example in large.fitted}
    assert fit["router"] == router and 0 <= fit["threshold"] <= 1
    if "share" in router:
        assert fit["calibration_share_escalated"] == pytest.approx(0.3, abs=0.15), fit
    assert row["extra"]["escalated"] + row["extra"]["stage_answered"][0] == row["n"]


def test_the_embedding_router_refuses_a_small_model_without_embeddings(host, tmp_path: Path) -> None:
    board = Board(name="t", tasks=["toy"], models=[ModelEntry("hybrid:words>words:b@embedding:0.5")],
                  data="toy:300", backend="cpu", bootstrap=0)  # fmt: skip
    [row] = run_board(host, board, tmp_path)["rows"]
    assert row["status"] == "error" and "returns review embeddings" in row["error"]


def test_a_learned_router_with_nothing_to_learn_says_so(host, tmp_path: Path) -> None:
    board = Board(name="t", tasks=["toy"], models=[ModelEntry("hybrid:words>words:b@learned:share=0.2")],
                  data="toy:300", backend="cpu", bootstrap=0)  # fmt: skip
    [row] = run_board(host, board, tmp_path)["rows"]  # the same model twice: escalating never helps
    assert row["status"] == "error" and "nothing to learn: escalating helps on 0 of the 8" in row["error"]


def test_malformed_embeddings_are_refused_naming_the_model() -> None:
    from harness.runner import probabilities
    from harness.types import ModelOutput

    probs = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert probabilities(ModelOutput(probs, embeddings=np.ones((2, 4))), 2, 2, "m").embeddings.shape == (2, 4)
    for bad in (np.ones((3, 4)), np.ones(2), np.array([[1.0, np.nan], [0.0, 0.0]])):
        with pytest.raises(HarnessError, match="model 'm' returned embeddings"):
            probabilities(ModelOutput(probs, embeddings=bad), 2, 2, "m")


def test_a_cache_written_before_embeddings_were_kept_gains_the_column_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    import sqlite3

    from harness.cache import PredictionCache

    path = tmp_path / "cache.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE predictions (model_fp TEXT NOT NULL, task_fp TEXT NOT NULL, text_key TEXT NOT NULL, "
                "probs BLOB NOT NULL, latency_s REAL NOT NULL, truncated INTEGER NOT NULL, raw_text TEXT, "
                "PRIMARY KEY (model_fp, task_fp, text_key))")  # fmt: skip
    probs = np.array([0.25, 0.75], dtype=np.float32)
    old.execute("INSERT INTO predictions VALUES ('m', 't', 'old', ?, 0.1, 0, NULL)", (probs.tobytes(),))
    old.commit()
    old.close()
    cache = PredictionCache(path)
    cache.put_many("m", "t", [("new", probs, 0.1, False, None, np.arange(4, dtype=np.float32))])
    found = cache.get_many("m", "t", ["old", "new"], 2)
    assert found["old"].embedding is None and found["old"].probs.tolist() == [0.25, 0.75]
    assert found["new"].embedding.tolist() == [0, 1, 2, 3]
