"""Multi-seed runs: one run per seed sharing the cache, the spread over seeds, and the combined interval."""

from __future__ import annotations

import json
import statistics

import click
import numpy as np
import pytest
from click.testing import CliRunner

from harness import board_from_options
from harness import cli as cli_module
from harness.boards import Board, ModelEntry, board_from_dict
from harness.errors import HarnessError
from harness.intervals import percentile_interval, two_level_draws
from harness.leaderboard._compare import compare_seed_runs
from harness.leaderboard.commands import register_commands
from harness.leaderboard.exporters import render_markdown
from harness.results import leaderboard_rows
from harness.run import run_board
from harness.runner import WARMUP_TEXTS
from tests.fakes import SeededWordModel, WordModel

LABELS = ("negative", "positive")


def seed_board(**overrides) -> Board:
    fields = dict(
        name="s",
        tasks=["toy"],
        models=[ModelEntry("seeded-words")],
        data="toy:300",
        backend="cpu",
        bootstrap=200,
        seeds=[0, 1, 2],
    )
    fields.update(overrides)
    return Board(**fields)


def scored(run_dir, model):
    """Gold indices and probabilities of one model, read back from a run's predictions.jsonl."""
    records = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    records = [r for r in records if r["model"] == model]
    gold = np.array([LABELS.index(r["gold"]) for r in records])
    return gold, np.array([r["probs"] for r in records])


def row_of(results, model):
    return next(r for r in results["rows"] if r["model"] == model)


def test_spread_and_combined_interval_match_a_hand_computation(host, tmp_path):
    results = run_board(host, seed_board(), tmp_path)
    row = row_of(results, "seeded-words")
    accuracies = []
    for seed in (0, 1, 2):
        gold, probs = scored(tmp_path / f"seed-{seed}", "seeded-words")
        accuracies.append(float(np.mean(probs.argmax(axis=1) == gold)))
    assert len(set(accuracies)) == 3  # the seed changes this model's answers
    stats = row["seed_stats"]["metrics"]["accuracy"]
    assert row["metrics"]["accuracy"] == pytest.approx(sum(accuracies) / 3)
    assert stats["sd"] == pytest.approx(statistics.stdev(accuracies))
    assert (stats["min"], stats["max"]) == (pytest.approx(min(accuracies)), pytest.approx(max(accuracies)))
    seed_rows = [json.loads((tmp_path / f"seed-{s}" / "results.json").read_text()) for s in (0, 1, 2)]
    assert stats["intervals"] == [row_of(r, "seeded-words")["intervals"]["accuracy"] for r in seed_rows]
    # The combined interval by hand: the toy task scores the same reviews for every seed, so each draw
    # picks three seeds with replacement, draws the reviews once with replacement, and averages the picked
    # seeds' accuracy on that draw.
    answers = [scored(tmp_path / f"seed-{s}", "seeded-words") for s in (0, 1, 2)]
    n = len(answers[0][0])
    rng = np.random.default_rng(0)
    by_hand = []
    for _ in range(200):
        picks = rng.integers(0, 3, size=3)
        index = rng.integers(0, n, size=n)
        by_hand.append(
            np.mean([np.mean(answers[p][1][index].argmax(1) == answers[p][0][index]) for p in picks])
        )
    assert row["intervals"]["accuracy"] == pytest.approx(list(np.percentile(by_hand, [2.5, 97.5])))
    assert row["seed_stats"]["same_predictions"] is False
    # one seed's cost and latency, as the runtime is one seed's: their means
    for key in ("usd", "usd_per_1000_reviews"):
        assert row["cost"][key] == pytest.approx(
            statistics.fmean(row_of(r, "seeded-words")["cost"][key] for r in seed_rows)
        )
    assert row["latency"]["p95_s"] == pytest.approx(
        statistics.fmean(row_of(r, "seeded-words")["latency"]["p95_s"] for r in seed_rows)
    )


def test_two_level_draws_mix_seeds_and_reviews_as_computed_by_hand():
    # Two seeds whose figure never moves with the reviews (0.8 and 0.9): the mean of two seeds drawn with
    # replacement is 0.8, 0.85 or 0.9 with probabilities 1/4, 1/2, 1/4.
    ids = [[f"r{i}" for i in range(10)]] * 2
    draws = two_level_draws(lambda s, index: {"m": (0.8, 0.9)[s]}, ids, resamples=4000, seed=1)["m"]
    shares = [np.mean(np.isclose(draws, v)) for v in (0.8, 0.85, 0.9)]
    assert shares == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    assert percentile_interval(draws) == pytest.approx((0.8, 0.9))
    # Accuracy of 8 seeds with rates p_s, each on 400 reviews of its own. A draw is sum_s w_s m_s / 8 with
    # w ~ Multinomial(8, 1/8) and m_s the accuracy on seed s's resampled reviews (variance p_s (1 - p_s) / 400,
    # the same resample however often s is picked), so its variance is
    # var_pop(p) / 8 + E[w_s^2] mean(p (1 - p) / 400) / 8, with E[w_s^2] = 2 - 1/8.
    rng = np.random.default_rng(2)
    rates = np.linspace(0.70, 0.84, 8)
    hits = [rng.permutation(np.arange(400) < round(400 * p)) for p in rates]
    exact = np.array([h.mean() for h in hits])
    own = [[f"s{s}-r{i}" for i in range(400)] for s in range(8)]
    draws = two_level_draws(lambda s, index: {"m": hits[s][index].mean()}, own, resamples=5000, seed=3)["m"]
    expected_sd = np.sqrt(np.var(exact) / 8 + (2 - 1 / 8) * np.mean(exact * (1 - exact) / 400) / 8)
    assert np.std(draws) == pytest.approx(expected_sd, rel=0.05)
    # Seeds that scored the same reviews the same way add nothing: the shared review resample gives the
    # plain review bootstrap, sd sqrt(p (1 - p) / n), not that divided by sqrt(8).
    shared = [own[0]] * 8
    same = two_level_draws(lambda s, index: {"m": hits[0][index].mean()}, shared, resamples=5000, seed=3)["m"]
    assert np.std(same) == pytest.approx(np.sqrt(exact[0] * (1 - exact[0]) / 400), rel=0.05)


def test_seed_independent_predictions_are_computed_once(host, toy_plugin, tmp_path):
    results = run_board(host, seed_board(models=[ModelEntry("words"), ModelEntry("seeded-words")]), tmp_path)
    words = [m for m in toy_plugin.models if type(m) is WordModel]
    seeded = [m for m in toy_plugin.models if isinstance(m, SeededWordModel)]
    n = row_of(results, "words")["n"]
    assert len(words) == 3 and sum(m.predicted for m in words) == n + WARMUP_TEXTS
    assert sum(m.predicted for m in seeded) == 3 * (n + WARMUP_TEXTS)
    assert row_of(results, "words")["seed_stats"]["same_predictions"] is True
    assert row_of(results, "words")["seed_stats"]["metrics"]["accuracy"]["sd"] == 0
    assert (row_of(results, "words")["computed"], row_of(results, "words")["cached"]) == (n, 2 * n)
    assert (tmp_path / "cache.sqlite").is_file() and not (tmp_path / "seed-1" / "cache.sqlite").exists()


def test_vary_holds_the_other_components_at_the_fixed_seed(host, toy_plugin, tmp_path):
    board = seed_board(
        models=[ModelEntry("seeded-words:finetune"), ModelEntry("seeded-words:demos")], vary=["demos"], seed=7
    )
    results = run_board(host, board, tmp_path)
    assert {m.seed for m in toy_plugin.models if m.component == "finetune"} == {7}
    assert sorted(m.seed for m in toy_plugin.models if m.component == "demos") == [0, 1, 2]
    assert row_of(results, "seeded-words:finetune")["seed_stats"]["same_predictions"] is True
    assert row_of(results, "seeded-words:demos")["seed_stats"]["same_predictions"] is False
    config = json.loads((tmp_path / "seed-1" / "results.json").read_text())["config"]
    assert config["seed"] == 1 and config["component_seeds"] == {"split": 7, "finetune": 7, "calibration": 7}


def test_the_split_seed_picks_the_scored_reviews_unless_held_fixed(host, tmp_path):
    def ids(run_dir):
        return {json.loads(line)["id"] for line in (run_dir / "predictions.jsonl").read_text().splitlines()}

    common = dict(tasks=["polarity"], data="demo", limit=40, models=[ModelEntry("words")], seeds=[0, 1])
    run_board(host, seed_board(**common), tmp_path / "varied")
    assert ids(tmp_path / "varied" / "seed-0") != ids(tmp_path / "varied" / "seed-1")
    run_board(host, seed_board(**common, vary=["finetune"]), tmp_path / "fixed")
    assert ids(tmp_path / "fixed" / "seed-0") == ids(tmp_path / "fixed" / "seed-1")


def test_board_shows_mean_with_spread_and_marks_fixed_rows(host, tmp_path):
    run_board(host, seed_board(models=[ModelEntry("words"), ModelEntry("seeded-words")]), tmp_path)
    text = render_markdown(leaderboard_rows([tmp_path]))
    header = next(line for line in text.splitlines() if line.startswith("| task"))
    assert "seed sd" in header and "seed min-max" in header and "± reviews" in header
    words = next(line for line in text.splitlines() if "| words |" in line)
    assert "fixed" in words
    assert "mean over seeds 0, 1, 2 (varying split, finetune, demos, calibration)" in text
    assert (tmp_path / "leaderboard.md").is_file() and (tmp_path / "seed-2" / "leaderboard.md").is_file()


def test_a_seed_that_fails_makes_an_error_row(host, tmp_path):
    board = seed_board(models=[ModelEntry("words", options={"fail_on": "review 3 "})])
    [row] = run_board(host, board, tmp_path)["rows"]
    assert row["status"] == "error" and row["error"].startswith("seed 0: ")
    # Only the last seed fails: the pooled row names it, and the other rows still pool.
    models = [ModelEntry("seeded-words", options={"fail_on_seed": "2"}), ModelEntry("words")]
    failed, words = run_board(host, seed_board(models=models), tmp_path / "late")["rows"]
    assert failed["status"] == "error" and failed["error"] == "seed 2: RuntimeError: cannot build with seed 2"
    assert words["status"] == "ok" and words["seed_stats"]["same_predictions"]


def test_single_and_multi_seed_runs_never_share_a_directory(host, tmp_path):
    run_board(host, seed_board(seeds=[]), tmp_path)
    with pytest.raises(HarnessError, match="holds a single-seed run"):
        run_board(host, seed_board(), tmp_path)
    run_board(host, seed_board(), tmp_path / "multi")
    with pytest.raises(HarnessError, match="holds a multi-seed run"):
        run_board(host, seed_board(seeds=[]), tmp_path / "multi")


def test_compare_pools_seed_by_seed_differences(host, tmp_path):
    model = [ModelEntry("seeded-words")]
    run_board(host, seed_board(models=model), tmp_path / "a")
    run_board(host, seed_board(models=model, vary=["split"]), tmp_path / "b")  # its model keeps seed 0
    [comparison] = compare_seed_runs(tmp_path / "a", tmp_path / "b", resamples=200)
    accuracy = next(m for m in comparison.metrics if m.name == "accuracy")
    a = [row_of(json.loads((tmp_path / "a" / f"seed-{s}" / "results.json").read_text()), "seeded-words")
         for s in (0, 1, 2)]  # fmt: skip
    b0 = row_of(json.loads((tmp_path / "b" / "seed-0" / "results.json").read_text()), "seeded-words")
    by_hand = [b0["metrics"]["accuracy"] - r["metrics"]["accuracy"] for r in a]
    assert accuracy.diffs == pytest.approx(by_hand) and by_hand[0] == 0
    assert accuracy.sd == pytest.approx(statistics.stdev(by_hand))
    assert accuracy.low <= accuracy.diff <= accuracy.high
    assert accuracy.t_p_value is not None and 0 < accuracy.t_p_value <= 1
    group = click.Group()
    register_commands(group)
    out = CliRunner().invoke(group, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert out.exit_code == 0 and "t-test over seeds" in out.output
    run_board(host, seed_board(models=model, seeds=[]), tmp_path / "single")
    with pytest.raises(HarnessError, match="single-seed run"):
        compare_seed_runs(tmp_path / "a", tmp_path / "single")


def test_board_files_declare_seeds_and_what_they_vary():
    raw = {"tasks": ["toy"], "models": ["words"], "seeds": [0, 1, 2], "vary": ["demos", "calibration"]}
    board = board_from_dict(raw, "b.toml")
    assert board.seeds == [0, 1, 2] and board.vary == ["demos", "calibration"]
    assert board.for_seed(2).component_seeds == {"split": 0, "finetune": 0}
    with pytest.raises(HarnessError, match="unknown seed component"):
        board_from_dict({**raw, "vary": ["shots"]}, "b.toml")
    with pytest.raises(HarnessError, match="at least two seeds"):
        board_from_dict({**raw, "seeds": [3]}, "b.toml")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0"], "at least two seeds"),
        (["--seeds", "0,x"], "whole numbers"),
        (["--seeds", "0,0"], "given twice"),
        (["--seeds", "0,1", "--repeats", "2"], "not both"),
        (["--seeds", "0,1", "--vary", "split,prompt"], "unknown seed component"),
        (["--vary", "split"], "needs a multi-seed run"),
    ],
)
def test_seed_flags_are_checked(args, message, tmp_path):
    result = CliRunner().invoke(cli_module.cli, ["run", "--model", "vader", "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output


def test_repeats_counts_from_the_seed_and_seed_alone_runs_one_seed():
    board = seed_board(seed=5, seeds=[0, 1, 2])
    assert board_from_options({"repeats": 3, "seed": 5}, board).seeds == [5, 6, 7]
    assert board_from_options({"seed": 5}, board).seeds == []


def test_metrics_added_to_a_board_are_pooled_over_the_seeds_too(host, tmp_path):
    board = seed_board(tasks=["polarity"], data="demo", limit=40, metrics=["ece"], seeds=[0, 1])
    [row] = run_board(host, board, tmp_path)["rows"]
    assert {"name": "ece", "higher_is_better": False} in row["added_metrics"]
    per_seed = row["seed_stats"]["metrics"]["ece"]["values"]
    assert row["metrics"]["ece"] == pytest.approx(sum(per_seed) / 2)
    low, high = row["intervals"]["ece"]
    assert low <= row["metrics"]["ece"] <= high
    assert "ece" in render_markdown(leaderboard_rows([tmp_path]))
