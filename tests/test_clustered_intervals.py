"""Clustered intervals and power, checked against simulated data whose cluster structure is known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from harness import intervals
from harness.cli import cli
from harness.leaderboard._compare import compare_records
from harness.leaderboard.commands import register_commands
from harness.power import independent_disagreement, min_detectable_difference, reviews_needed
from harness.tasks.sources._tsv import TsvSource
from harness.types import IssueLog, SourceOptions

SAMPLE = Path(__file__).resolve().parents[1] / "tasks" / "data" / "sample.tsv"
Z = 1.959963984540054


def accuracy(gold: np.ndarray, hits: np.ndarray) -> dict[str, float]:
    return {"accuracy": float(np.mean(hits))}


def clustered_hits(rng: np.random.Generator, clusters: int, size: int, mean: float, icc: float) -> np.ndarray:
    """Right/wrong per review; each cluster's accuracy is drawn from a Beta of the given mean and
    intra-cluster correlation, so the design effect of the mean is sqrt(1 + (size - 1) icc)."""
    strength = (1 - icc) / icc
    rates = rng.beta(mean * strength, (1 - mean) * strength, size=clusters)
    return (rng.random((clusters, size)) < rates[:, None]).ravel().astype(np.float64)


def test_clustered_interval_covers_at_its_nominal_rate_where_the_review_interval_does_not() -> None:
    replicates, clusters, size, mean, icc = 300, 40, 10, 0.8, 0.3
    codes = np.repeat(np.arange(clusters), size)
    covered = {"clustered": 0, "reviews": 0}
    effects = []
    for replicate in range(replicates):
        hits = clustered_hits(np.random.default_rng(replicate), clusters, size, mean, icc)
        gold = np.zeros(len(hits))
        for name, unit in (("clustered", codes), ("reviews", None)):
            low, high = intervals.bootstrap_intervals(
                accuracy, gold, hits, resamples=200, seed=replicate, clusters=unit
            )["accuracy"]
            covered[name] += low <= mean <= high
        if replicate < 20:
            _, effect = intervals.clustered_intervals(
                accuracy, gold, hits, resamples=200, seed=replicate, clusters=codes
            )
            effects.append(effect["accuracy"])
    error = math.sqrt(0.95 * 0.05 / replicates)
    assert abs(covered["clustered"] / replicates - 0.95) < 3.5 * error
    # the review bootstrap's standard error is 1/sqrt(1 + 9 * 0.3) of the true one: it covers about 70%
    assert covered["reviews"] / replicates < 0.95 - 6 * error
    assert abs(np.median(effects) - math.sqrt(1 + (size - 1) * icc)) < 0.35


def test_a_clustered_resample_holds_whole_clusters_of_unequal_size() -> None:
    keys = [None, "a", "b", "a", "c", "c", "c", None, "b", "a"]
    codes = intervals.cluster_codes(keys)
    assert codes is not None and intervals.cluster_count(codes, len(keys)) == 5  # a, b, c and two singles
    sizes = np.bincount(codes)
    rows = [row for block in intervals.resample_blocks(len(keys), 300, 4, codes) for row in block]
    assert len(rows) == 300
    for row in rows:
        drawn = np.bincount(codes[row], minlength=len(sizes))
        assert np.all(drawn % sizes == 0) and drawn.sum() // 1 == len(row)
        assert (drawn // sizes).sum() == len(sizes)  # as many clusters drawn as there are
    assert intervals.cluster_codes([None, None]) is None


def simulated_power(n: int, disagreement: float, difference: float, *, cluster_size: int = 1, spread: float = 0.0,
                    replicates: int = 4000, seed: int = 0) -> float:  # fmt: skip
    """Share of simulated paired comparisons that a cluster-robust z-test of the accuracy difference
    rejects at 5%. Per review, only B right has probability (p + d + u) / 2 and only A right (p - d - u) / 2,
    u a cluster's own shift (sd `spread`), so the design effect is sqrt(1 + (m - 1) spread^2 / (p - d^2))."""
    rng = np.random.default_rng(seed)
    clusters = n // cluster_size
    shift = difference + spread * rng.standard_normal((replicates, clusters, 1))
    b_right = np.clip((disagreement + shift) / 2, 0, disagreement)
    draws = rng.random((replicates, clusters, cluster_size))
    per_review = np.where(draws < b_right, 1.0, np.where(draws < disagreement, -1.0, 0.0))
    totals = per_review.sum(axis=2)
    estimate = totals.sum(axis=1) / (clusters * cluster_size)
    residual = totals - cluster_size * estimate[:, None]
    variance = clusters / (clusters - 1) * (residual**2).sum(axis=1) / (clusters * cluster_size) ** 2
    return float(np.mean(np.abs(estimate) > Z * np.sqrt(variance)))


def test_reviews_needed_reach_the_planned_power_in_simulation() -> None:
    p, d = 0.3, 0.04
    n = reviews_needed(d, p)
    assert abs(simulated_power(n, p, d) - 0.8) < 0.03
    assert simulated_power(n // 2, p, d) < 0.6
    size, spread = 40, 0.06  # shifts stay well inside [-p, p], so none is clipped in practice
    effect = math.sqrt(1 + (size - 1) * spread**2 / (p - d * d))
    clustered = reviews_needed(d, p, design_effect=effect)
    assert clustered > 1.3 * n
    n_clusters = math.ceil(clustered / size) * size
    assert abs(simulated_power(n_clusters, p, d, cluster_size=size, spread=spread, seed=1) - 0.8) < 0.035


def test_min_detectable_difference_inverts_reviews_needed() -> None:
    for p, effect in ((0.05, 1.0), (0.2, 1.7)):
        for n in (300, 5000):
            d = min_detectable_difference(n, p, design_effect=effect)
            assert d is not None and 0 < d < math.sqrt(p)
            assert reviews_needed(d * 1.001, p, design_effect=effect) <= n < reviews_needed(d * 0.999, p,
                                                                                           design_effect=effect)  # fmt: skip
    assert min_detectable_difference(500, 0.0) is None
    assert independent_disagreement(0.85, 0.01) == pytest.approx(0.85 * 0.14 + 0.86 * 0.15)
    with pytest.raises(ValueError, match="disagreement rate above it"):
        reviews_needed(0.05, 0.04)


def test_the_release_tsv_clusters_by_product_unless_told_otherwise(tmp_path: Path) -> None:
    def clusters(options: SourceOptions) -> list[str | None]:
        return [r.cluster for r in TsvSource().read(str(SAMPLE), options, IssueLog())]

    products = [line.split("\t")[3] for line in SAMPLE.read_text(encoding="utf-8").splitlines()[1:] if line]
    assert clusters(SourceOptions()) == products
    assert clusters(SourceOptions(cluster_col="none")) == [None] * len(products)
    assert clusters(SourceOptions(cluster_col="customer_id"))[0] is not None
    with pytest.raises(ValueError, match=r"column 'shop' \(--cluster\) not found"):
        clusters(SourceOptions(cluster_col="shop"))


def records(hits: list[bool], clusters: list[str]) -> list[dict[str, object]]:
    return [{"id": str(i), "gold": "pos", "pred": "pos" if hit else "neg", "cluster": c}
            for i, (hit, c) in enumerate(zip(hits, clusters, strict=True))]  # fmt: skip


def test_a_paired_comparison_resamples_the_same_clusters_for_both_runs() -> None:
    # B is right where A is wrong on whole products only: the difference is as clustered as it gets
    clusters = [f"p{i // 10}" for i in range(200)]
    a = [True] * 200
    b = [i // 10 % 5 != 0 for i in range(200)]
    clustered = compare_records("polarity", "m", records(a, clusters), records(b, clusters), resamples=500)
    flat = [f"q{i}" for i in range(200)]
    independent = compare_records("polarity", "m", records(a, flat), records(b, flat), resamples=500)
    assert clustered.clusters == 20 and independent.clusters == 200
    assert clustered.design_effect is not None and clustered.design_effect > 2.5
    assert independent.design_effect == pytest.approx(1.0, abs=0.15)
    width = {c.clusters: next(m.high - m.low for m in c.metrics if m.name == "accuracy")
             for c in (clustered, independent)}  # fmt: skip
    assert width[20] > 2.5 * width[200]
    assert clustered.min_detectable is not None and independent.min_detectable is not None
    assert clustered.min_detectable > 2.5 * independent.min_detectable


def test_a_run_on_product_data_reports_clustered_intervals_compare_and_power(tmp_path: Path) -> None:
    runner, commands = CliRunner(), click.Group()
    register_commands(commands)
    runs = {}
    for name, extra in (("body", []), ("both", ["--task-option", "input=title+body"])):
        runs[name] = tmp_path / name
        args = ["run", "--model", "vader", "--task", "polarity", "--data", str(SAMPLE), "--out", str(runs[name]),
                "--bootstrap", "200", *extra]  # fmt: skip
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    assert "‡ ± resamples product_id clusters" in result.output
    row = json.loads((runs["body"] / "results.json").read_text())["rows"][0]
    assert row["clustering"]["column"] == "product_id" and row["clustering"]["clusters"] >= 2
    assert set(row["clustering"]["design_effect"]) <= set(row["intervals"])
    assert all("cluster" in json.loads(line) for line in (runs["body"] / "predictions.jsonl").open())
    flat = tmp_path / "flat"
    args = ["run", "--model", "vader", "--task", "polarity", "--data", str(SAMPLE), "--out", str(flat),
            "--cluster", "none", "--bootstrap", "200"]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 0 and "‡" not in result.output
    assert json.loads((flat / "results.json").read_text())["rows"][0]["clustering"] == {}
    compared = runner.invoke(commands, ["compare", str(runs["body"]), str(runs["both"]), "--show", "0"])
    assert compared.exit_code == 0, compared.output
    assert "resampling" in compared.output and "minimum detectable accuracy difference" in compared.output
    planned = runner.invoke(commands, ["power", "--baseline", "0.85", "--difference", "0.01"])
    assert planned.exit_code == 0 and "errors independent" in planned.output
    assert f"reviews needed: {reviews_needed(0.01, independent_disagreement(0.85, 0.01)):,}" in planned.output
    refused = runner.invoke(
        commands, ["power", "--baseline", "0.85", "--difference", "0.01", "--from", str(flat)]
    )
    assert refused.exit_code != 0 and "a pilot needs two models" in str(refused.exception or refused.output)


def test_the_two_level_bootstrap_resamples_clusters_where_the_reviews_have_them() -> None:
    hits = clustered_hits(np.random.default_rng(0), 30, 10, 0.8, 0.3)
    ids, keys = [str(i) for i in range(300)], [f"p{i // 10}" for i in range(300)]

    def measure(seed: int, index: np.ndarray) -> dict[str, float]:
        return {"m": float(hits[index].mean())}

    by_review = intervals.two_level_draws(
        measure, [intervals.resampling_units(ids, None)] * 2, resamples=2000
    )
    by_cluster = intervals.two_level_draws(
        measure, [intervals.resampling_units(ids, keys)] * 2, resamples=2000
    )
    # both seeds scored the same reviews: the spread is the reviews' (design effect sqrt(1 + 9 * 0.3) = 1.9)
    assert np.std(by_cluster["m"]) > 1.5 * np.std(by_review["m"])
