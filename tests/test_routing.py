"""Routers and hybrids: escalation matches the threshold; the large model sees only escalated reviews."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.plugin_manager import PluginHost
from harness.plugins.models.hybrid import HybridModel, make_hybrid, parse_hybrid, stage_stats
from harness.plugins.routing.routers import entropy_confidence, max_probability, top_two_margin
from harness.types import ModelContext


@pytest.fixture(scope="module")
def routers():
    return PluginHost(env={"HARNESS_LOAD_PLUGINS": ""}).registries.routers


def random_probs(n: int, k: int, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, k)) * 3
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("threshold", [0.55, 0.7, 0.9, 0.99])
def test_confidence_escalates_exactly_the_examples_below_threshold(routers, threshold):
    probs = random_probs(500, 2)
    mask = routers.get("confidence").obj(str(threshold)).escalate(probs)
    assert mask.mean() == pytest.approx(np.mean(probs.max(axis=1) < threshold))


def test_router_defaults_agree_on_binary_tasks(routers):
    probs = random_probs(2000, 2, seed=1)
    masks = [routers.get(name).obj(None).escalate(probs) for name in ("confidence", "margin", "entropy")]
    # Equal up to the rounding of the entropy default (0.531 for p = 0.9).
    assert (masks[0] == masks[1]).all()
    assert (masks[0] != masks[2]).mean() < 0.01


def test_margin_and_entropy_see_the_runner_up_on_multiclass():
    probs = np.array([[0.5, 0.49, 0.01], [0.5, 0.25, 0.25]])
    assert max_probability(probs).tolist() == [0.5, 0.5]
    margins = top_two_margin(probs)
    assert margins[0] < margins[1]
    confidences = entropy_confidence(probs)
    assert confidences[0] > confidences[1]  # the first row is less spread out


def test_bad_threshold_is_a_clear_error(routers):
    with pytest.raises(HarnessError, match="between 0 and 1"):
        routers.get("confidence").obj("1.5")
    with pytest.raises(HarnessError, match="must be a number"):
        routers.get("confidence").obj("high")


class Fixed:
    """A model returning preset probabilities per text, recording what it was asked."""

    def __init__(self, name, table):
        self.name, self.table, self.seen = name, table, []

    def predict(self, texts, task):
        self.seen.extend(texts)
        return np.array([self.table[t] for t in texts])

    def fingerprint(self):
        return self.name


def test_hybrid_keeps_confident_small_predictions_and_escalates_the_rest(routers):
    texts = [f"t{i}" for i in range(200)]
    small_probs = random_probs(200, 2, seed=3)
    large_probs = random_probs(200, 2, seed=4)
    small = Fixed("small", dict(zip(texts, small_probs, strict=True)))
    large = Fixed("large", dict(zip(texts, large_probs, strict=True)))
    hybrid = HybridModel(small, large, routers.get("confidence").obj("0.8"), "h")
    probs = hybrid.predict(texts, task=None).probs
    escalated = small_probs.max(axis=1) < 0.8
    assert np.allclose(probs[~escalated], small_probs[~escalated])
    assert np.allclose(probs[escalated], large_probs[escalated])
    assert large.seen == [t for t, e in zip(texts, escalated, strict=True) if e]
    assert hybrid.run_stats()["escalated"] == escalated.sum()
    assert hybrid.run_stats()["escalated_share"] == pytest.approx(escalated.mean())


def test_hybrid_spec_parsing_and_nesting():
    assert parse_hybrid("minilm>smollm2@margin:0.5") == ("minilm", "smollm2", "margin:0.5")
    assert parse_hybrid("a>b") == ("a", "b", "confidence:0.9")
    assert parse_hybrid("a>b>c@confidence:0.7") == ("a", "hybrid:b>c@confidence:0.7", "confidence:0.7")
    with pytest.raises(HarnessError, match="SMALL>LARGE"):
        parse_hybrid("minilm")


def test_three_stage_cascade_builds_nested_hybrids(routers, tmp_path):
    built = []

    def build_model(spec):
        if spec.startswith("hybrid:"):
            return make_hybrid(spec.removeprefix("hybrid:"), context)
        built.append(spec)
        return Fixed(spec, {})

    context = ModelContext(
        backend=None, workdir=tmp_path, seed=0, options={}, build_model=build_model,
        build_router=lambda spec: routers.get(spec.partition(":")[0]).obj(spec.partition(":")[2]),
    )  # fmt: skip
    cascade = make_hybrid("a>b>c@confidence:0.7", context)
    assert built == ["a", "b", "c"]
    assert isinstance(cascade.large, HybridModel) and cascade.large.small.name == "b"


def test_hybrid_marks_the_answering_stage_and_rebuilds_its_stats_from_raw_text(routers):
    texts = [f"t{i}" for i in range(100)]
    small_probs, large_probs = random_probs(100, 2, seed=5), random_probs(100, 2, seed=6)
    small = Fixed("small", dict(zip(texts, small_probs, strict=True)))
    large = Fixed("large", dict(zip(texts, large_probs, strict=True)))
    hybrid = HybridModel(small, large, routers.get("confidence").obj("0.8"), "h")
    first, second = hybrid.predict(texts[:60], task=None), hybrid.predict(texts[60:], task=None)
    raw = [*first.raw_text, *second.raw_text]
    stages = [json.loads(r)["stage"] for r in raw]
    assert stages == (small_probs.max(axis=1) < 0.8).astype(int).tolist()
    rebuilt = hybrid.stats_from_raw(raw)
    assert rebuilt == hybrid.run_stats()
    assert rebuilt["stage_models"] == ["small", "large"]
    assert rebuilt["stage_answered"] == [stages.count(0), stages.count(1)]
    assert rebuilt["small_s"] >= 0 and rebuilt["large_s"] >= 0


def test_three_stage_cascade_marks_each_stage(routers):
    texts = [f"t{i}" for i in range(300)]
    tables = [dict(zip(texts, random_probs(300, 2, seed=s), strict=True)) for s in (7, 8, 9)]
    a, b, c = (Fixed(name, table) for name, table in zip("abc", tables, strict=True))
    router = routers.get("confidence").obj("0.8")
    cascade = HybridModel(a, HybridModel(b, c, router, "bc"), router, "abc")
    raw = cascade.predict(texts, task=None).raw_text
    markers = [json.loads(r) for r in raw]
    a_unsure = np.array([tables[0][t].max() < 0.8 for t in texts])
    b_unsure = np.array([tables[1][t].max() < 0.8 for t in texts])
    expected = np.where(a_unsure, np.where(b_unsure, 2, 1), 0)
    assert [m["stage"] for m in markers] == expected.tolist()
    assert all(len(m["seconds"]) == m["stage"] + 1 for m in markers)
    assert c.seen == [t for t, e in zip(texts, expected, strict=True) if e == 2]
    stats = cascade.stats_from_raw(raw)
    assert stats["stage_models"] == ["a", "b", "c"]
    assert stats["stage_answered"] == np.bincount(expected, minlength=3).tolist()
    assert stats["escalated"] == int(a_unsure.sum())


def test_stage_stats_ignore_texts_that_are_not_markers():
    stats = stage_stats(["positive", None, '{"stage":1,"seconds":[0.5,2.0]}', "{broken"], ["s", "l"])
    assert stats["examples"] == 1 and stats["escalated"] == 1
    assert stats["small_s"] == 0.5 and stats["large_s"] == 2.0


def test_threshold_1_escalates_even_fully_sure_reviews(routers):
    probs = np.array([[1.0, 0.0], [0.999999, 0.000001], [0.6, 0.4]])
    assert routers.get("confidence").obj("1").escalate(probs).tolist() == [True, True, True]
    assert routers.get("confidence").obj("0.9999999").escalate(probs).tolist() == [False, True, True]


def test_a_hybrid_reads_what_its_large_models_own_row_stored_with_the_seconds_that_row_measured(
    host, toy_plugin, tmp_path
):
    from harness.boards import Board, ModelEntry
    from harness.run import run_board

    hybrid_spec = "hybrid:words:small>words:large@confidence:0.9"
    board = Board(name="t", tasks=["toy"], data="toy:60", backend="cpu", bootstrap=0,
                  models=[ModelEntry("words:large"), ModelEntry(hybrid_spec)])  # fmt: skip
    large_row, hybrid_row = run_board(host, board, tmp_path / "run")["rows"]
    assert large_row["status"] == hybrid_row["status"] == "ok"
    escalated = hybrid_row["extra"]["escalated"]
    assert escalated > 0 and hybrid_row["extra"]["escalated_stored"] == escalated
    large_row_model, hybrid_large = [m for m in toy_plugin.models if m.name == "words:large"]
    assert large_row_model.predicted > 0 and hybrid_large.predicted == 0  # nothing scored twice
    records = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    large_seconds = {r["id"]: r["latency_s"] for r in records if r["model"] == "words:large"}
    for record in (r for r in records if r["model"] == hybrid_spec):
        marker = json.loads(record["raw_text"])
        if (
            marker["stage"] == 1
        ):  # the large answer's seconds are its row's, and the hybrid's latency holds them
            assert marker["stored"] and marker["seconds"][1] == pytest.approx(
                large_seconds[record["id"]], abs=1e-6
            )
            assert record["latency_s"] == pytest.approx(sum(marker["seconds"]), abs=1e-6)
        else:
            assert "stored" not in marker

    alone = Board(
        name="t", tasks=["toy"], data="toy:60", backend="cpu", bootstrap=0, models=[ModelEntry(hybrid_spec)]
    )
    [fresh] = run_board(host, alone, tmp_path / "alone")["rows"]
    assert fresh["extra"]["escalated"] == escalated and fresh["extra"]["escalated_stored"] == 0
    assert fresh["metrics"] == hybrid_row["metrics"]
