"""Bootstrap intervals: the array form of the built-in metrics gives what one call per resample gives."""

from __future__ import annotations

import numpy as np
import pytest

from harness import intervals, metrics
from harness.metrics import RowMetrics, row_metrics
from harness.plugin_manager import get_host
from harness.slices import SliceNames, slice_report
from harness.tasks.builtin_metrics import BUILTIN_METRICS
from harness.tasks.category import CategoryTask
from harness.tasks.polarity import PolarityTask
from tests.fakes import ToyTask


def scored(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gold labels and probabilities with ties, unparseable (all-zero) rows and a class never predicted."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, k, size=n)
    probs = rng.dirichlet(np.ones(k), size=n)
    probs[:, k - 1] *= 0.01  # the last class is rarely the argmax
    probs[rng.random(n) < 0.1] = 0.0  # an answer that names no label
    probs[rng.random(n) < 0.1] = 1.0 / k  # a tie, at a bin edge of the calibration error
    return gold, probs


def per_call(compute, gold: np.ndarray, probs: np.ndarray, labels, index: np.ndarray) -> np.ndarray:
    return np.array([compute(gold[row], probs[row], labels) for row in index])


@pytest.mark.parametrize("metric", [m for m in BUILTIN_METRICS if m.resampled], ids=lambda m: m.name)
@pytest.mark.parametrize(("n", "k"), [(2, 2), (5, 2), (60, 2), (7, 5), (80, 5)])
def test_each_builtin_metric_on_resamples_equals_one_call_per_resample(metric, n: int, k: int) -> None:
    if not metric.applies_to(k):
        pytest.skip(f"{metric.name} needs {metric.label_range()}")
    labels = [f"c{i}" for i in range(k)]
    gold, probs = scored(n, k, seed=n * k)
    index = np.random.default_rng(1).integers(0, n, size=(300, n))
    got = metric.resampled(gold, probs, labels, index)
    want = per_call(metric.compute, gold, probs, labels, index)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, equal_nan=True)
    assert got.shape == (300,)


def test_every_builtin_metric_has_an_array_form() -> None:
    assert [m.name for m in BUILTIN_METRICS if m.resampled is None] == []


def one_at_a_time(metric_fn, gold: np.ndarray, probs: np.ndarray, resamples: int, seed: int):
    """The bootstrap as it was first written: one seeded draw and one metric call per resample."""
    rng = np.random.default_rng(seed)
    rows = np.stack([rng.integers(0, len(gold), size=len(gold)) for _ in range(resamples)])
    return intervals.on_resamples(lambda g, p: metric_fn(g, p), gold, probs, rows)


@pytest.mark.parametrize("task", [PolarityTask({}), CategoryTask({"categories": "a,b,c,d"}), ToyTask()])
def test_a_rows_bootstrap_draws_the_same_resamples_and_values_as_one_call_per_resample(task, monkeypatch):
    gold, probs = scored(90, len(task.labels), seed=3)
    plan = row_metrics(task, get_host().registries.metrics, [], task.metrics(gold, probs))
    assert isinstance(plan, intervals.ResampledMetrics)
    want = one_at_a_time(plan, gold, probs, resamples=250, seed=7)
    monkeypatch.setattr(intervals, "BLOCK_INDICES", 90 * 40)  # blocks of 40 resamples: the stream runs on
    got = intervals.bootstrap_samples(plan, gold, probs, resamples=250, seed=7)
    assert list(got) == list(want) == list(plan(gold, probs))
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-12, equal_nan=True)


def test_a_task_with_metrics_of_its_own_is_resampled_by_calling_them(monkeypatch) -> None:
    calls = []

    class Counted(ToyTask):
        def metrics(self, gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
            calls.append(len(gold))
            return super().metrics(gold, probs)

    gold, probs = scored(30, 2, seed=4)
    plan = RowMetrics(Counted(), get_host().registries.metrics)
    intervals.bootstrap_samples(plan, gold, probs, resamples=20, seed=0)
    assert calls == [30] * 20


def test_slice_intervals_leave_out_a_metric_the_slice_cannot_define() -> None:
    task = PolarityTask({})
    gold, probs = scored(40, 2, seed=5)
    gold[:10] = 1  # the first ten reviews (the short ones) are all positive: accuracy_neg is undefined there
    records = [{"features": {"tokens": 10 if i < 10 else 100, "negation": 0.0}} for i in range(40)]
    plan = row_metrics(task, get_host().registries.metrics, [], task.metrics(gold, probs))
    slices = SliceNames.of_records(records)
    [short, long] = slice_report(slices, gold, probs, plan, resamples=50, seed=0)["length"]
    assert "accuracy_neg" not in short["intervals"] and "accuracy_neg" in long["intervals"]
    index = np.flatnonzero(np.arange(40) < 10)
    want = intervals.percentile_interval(
        one_at_a_time(plan, gold[index], probs[index], resamples=50, seed=0)["accuracy"]
    )
    assert short["intervals"]["accuracy"] == pytest.approx(list(want), abs=1e-12)


@pytest.mark.parametrize("task", [PolarityTask({}), CategoryTask({"categories": "a,b,c,d"})])
def test_the_built_in_tasks_are_resampled_without_a_metric_call_per_resample(task, monkeypatch) -> None:
    gold, probs = scored(50, len(task.labels), seed=6)
    plan = row_metrics(task, get_host().registries.metrics, [], task.metrics(gold, probs))
    counted = []
    monkeypatch.setattr(metrics, "report", lambda chosen, *args: counted.append(chosen))
    intervals.bootstrap_samples(plan, gold, probs, resamples=30, seed=0)
    assert not counted
