"""Dollars in sweeps: $ per 1,000 reviews at every threshold, the saving at equal quality, cascades by cost."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from harness.plugins.routing import _cascade as cascade
from harness.plugins.routing import sweep
from harness.plugins.routing._replay import review_costs
from harness.plugins.routing.routers import max_probability
from tests.toy_pair_models import PairPlugin


@pytest.fixture
def pair_plugin(host) -> PairPlugin:
    plugin = PairPlugin()
    host.register(plugin, "pair-plugin")
    return plugin


def priced_sweep(host, tmp_path, price: float | None):
    opts = {"data": "toy:300", "backend": "cpu", "bootstrap": 0}
    board = sweep.board_for_sweep(["cheap", "sharp"], "toy", opts)
    board.price_per_hour = price
    return sweep.run_sweep(host, board, tmp_path, sweep.SweepSettings(bootstrap=0))


def test_every_threshold_costs_the_small_model_on_all_and_the_large_on_the_escalated(
    host, pair_plugin, tmp_path
):
    report, results = priced_sweep(host, tmp_path, 3600.0)  # a dollar a second: dollars are seconds
    n = report.n
    assert report.small_only.usd_per_1000 == pytest.approx(1000 * report.small_only.runtime_s / n)
    assert report.large_only.usd_per_1000 == pytest.approx(1000 * report.large_only.runtime_s / n)
    for (
        point
    ) in report.curve:  # the hybrid's seconds are the small model's on all and the large one's escalated
        assert point.usd_per_1000 == pytest.approx(1000 * point.runtime_s / n)
    dollars = [p.usd_per_1000 for p in sorted(report.curve, key=lambda p: p.share)]
    assert dollars == sorted(dollars)
    saving = report.saving
    large = report.large_only.metrics[report.metric]
    assert saving is not None and saving.quality >= large and 0 < saving.share < 1
    assert all(
        p.usd_per_1000 >= saving.usd_per_1000 for p in report.curve if p.metrics[report.metric] >= large
    )
    assert saving.saving == pytest.approx(1 - saving.usd_per_1000 / report.large_only.usd_per_1000)
    rows = list(csv.DictReader(io.StringIO(sweep.sweep_csv(report))))
    # the CSV carries eight decimal places: equal to within half of the last one, whatever the timing's digits
    assert float(rows[0]["usd_per_1000_reviews"]) == pytest.approx(
        report.curve[0].usd_per_1000, rel=0, abs=5e-9
    )


def test_a_run_without_prices_sweeps_without_dollars_and_says_so(host, pair_plugin, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "harness.runner.hourly_price", lambda backend, price: None
    )  # a device with no list price
    report, _ = priced_sweep(host, tmp_path, None)
    assert report.saving is None and all(p.usd_per_1000 is None for p in report.curve)
    assert any("no dollars" in note for note in report.notes)
    assert list(csv.DictReader(io.StringIO(sweep.sweep_csv(report))))[0]["usd_per_1000_reviews"] == ""


def test_token_priced_rows_share_their_dollars_equally_and_hardware_rows_by_seconds():
    latency = np.array([0.5, 1.5])
    results = {
        "pricing": {"usd_per_hour": 36.0},
        "rows": [
            {"task": "t", "model": "served", "n": 2, "cost": {"usd": 0.3}, "extra": {"token_cost_usd": 0.3}},
            {"task": "t", "model": "local", "n": 2, "cost": {"usd": 0.02}, "extra": {}},
            {"task": "t", "model": "unpriced", "n": 2, "cost": {"usd": None}, "extra": {}},
        ],
    }
    np.testing.assert_allclose(review_costs(results, "t", "served", latency), [0.15, 0.15])
    np.testing.assert_allclose(review_costs(results, "t", "local", latency), [0.005, 0.015])
    assert review_costs(results, "t", "unpriced", latency) is None
    assert review_costs(results, "t", "absent", latency) is None


def accuracy(gold, probs):
    return {"accuracy": float(np.mean(probs.argmax(axis=1) == gold))}


def test_a_cascade_with_dollars_picks_its_frontier_by_dollars_not_runtime():
    """B is slow but nearly free (a cheap local model), C fast but dear (a hosted one): runtime and dollars
    rank the pairs differently, and the picks follow the dollars."""
    rng = np.random.default_rng(0)
    n = 400
    gold = rng.integers(0, 2, n)

    def model(right: float) -> np.ndarray:
        sure = 0.5 + 0.5 * rng.random(n)
        correct = rng.random(n) < right
        p1 = np.where(correct == (gold == 1), sure, 1 - sure)
        return np.column_stack([1 - p1, p1])

    probs = [model(0.7), model(0.85), model(0.97)]
    latency = [np.full(n, 0.001), np.full(n, 1.0), np.full(n, 0.01)]
    cost = [np.full(n, 1e-6), np.full(n, 1e-5), np.full(n, 1e-2)]
    priced = cascade.Cascade(gold, probs, latency, cost)
    shares = np.linspace(0, 1, 11)
    points, best = cascade.replay_cascade(priced, max_probability, accuracy, "accuracy", shares)
    by_time, best_by_time = cascade.replay_cascade(cascade.Cascade(gold, probs, latency), max_probability, accuracy,
                                                   "accuracy", shares)  # fmt: skip
    assert all(p.usd_per_1000 is not None for p in points) and all(p.usd_per_1000 is None for p in by_time)
    frontier = {(p.first, p.second) for p in points if p.frontier}
    assert frontier != {(p.first, p.second) for p in by_time if p.frontier}
    for pick in best.values():
        assert pick is not None
        goal = pick.metrics["accuracy"]
        assert all(p.usd_per_1000 >= pick.usd_per_1000 for p in points if p.metrics["accuracy"] >= goal)
    dollars = {(p.first, p.second): p.usd_per_1000 for p in points}
    by_runtime = {k: dollars[(p.first, p.second)] for k, p in best_by_time.items() if p is not None}
    assert any(best[k].usd_per_1000 < by_runtime[k] - 1e-9 for k in by_runtime)  # type: ignore[union-attr]
