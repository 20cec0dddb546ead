"""`harness compare` (paired differences, bootstrap, McNemar) and `harness errors` (failure analysis)."""

from __future__ import annotations

import json

import click
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.leaderboard._compare import compare_records, compare_runs, compare_seed_runs, mcnemar_exact
from harness.leaderboard._misclassified import display_text, misclassified
from harness.leaderboard.commands import register_commands
from tests.leaderboard_runs import polarity_row, prediction, records, seeded_run, write_run

POLARITY = ["negative", "positive"]


def polarity_records(
    model: str, golds: str, preds: str, confidences: list[float] | None = None
) -> list[dict]:
    """`golds`/`preds` as strings of n/p, one letter per example (ids e0, e1, ...)."""
    confidences = confidences or [0.9] * len(golds)
    records = []
    for i, (g, p, c) in enumerate(zip(golds, preds, confidences, strict=True)):
        probs = [c, 1 - c] if p == "n" else [1 - c, c]
        gold = "negative" if g == "n" else "positive"
        records.append(prediction("polarity", model, f"e{i}", gold, probs, POLARITY, text=f"review {i}"))
    return records


GOLD = "ppppnnnnpp"
PRED_A = "ppnnnnpnpp"  # wrong on e2, e3, e6
PRED_B = "ppppnnnpnp"  # wrong on e7, e8


def test_paired_differences_match_a_hand_computation():
    a, b = polarity_records("m", GOLD, PRED_A), polarity_records("m", GOLD, PRED_B)
    result = compare_records("polarity", "m", a, b, resamples=200, seed=3, show=10)
    metrics = {m.name: m for m in result.metrics}
    assert result.n == 10
    assert metrics["accuracy"].a == pytest.approx(0.7) and metrics["accuracy"].b == pytest.approx(0.8)
    assert metrics["accuracy"].diff == pytest.approx(0.1)
    assert metrics["accuracy[positive]"].a == pytest.approx(4 / 6)  # e2, e3 wrong of 6 positives
    assert metrics["accuracy[negative]"].b == pytest.approx(3 / 4)  # e7 wrong of 4 negatives
    # macro-F1 of A: positive P=4/5 R=4/6 -> F1=8/11; negative P=3/5 R=3/4 -> F1=2/3
    assert metrics["macro_f1"].a == pytest.approx((8 / 11 + 2 / 3) / 2)
    assert (result.only_a_right, result.only_b_right) == (2, 3)  # A: e7, e8; B: e2, e3, e6
    assert result.disagreement_count == 5
    assert [d["id"] for d in result.disagreements] == ["e2", "e3", "e6", "e7", "e8"]


def test_bootstrap_interval_resamples_both_runs_on_the_same_examples():
    a, b = polarity_records("m", GOLD, PRED_A), polarity_records("m", GOLD, PRED_B)
    result = compare_records("polarity", "m", a, b, resamples=300, seed=7)
    accuracy = next(m for m in result.metrics if m.name == "accuracy")
    right_a = np.array([g == p for g, p in zip(GOLD, PRED_A, strict=True)])
    right_b = np.array([g == p for g, p in zip(GOLD, PRED_B, strict=True)])
    picks = np.random.default_rng(7).integers(0, 10, size=(300, 10))
    diffs = [right_b[row].mean() - right_a[row].mean() for row in picks]
    assert accuracy.low == pytest.approx(np.percentile(diffs, 2.5))
    assert accuracy.high == pytest.approx(np.percentile(diffs, 97.5))
    assert accuracy.low <= accuracy.diff <= accuracy.high


def test_identical_runs_differ_by_exactly_zero():
    a = polarity_records("m", GOLD, PRED_A)
    result = compare_records("polarity", "m", a, a, resamples=50)
    assert all(m.diff == 0 and m.low == 0 and m.high == 0 for m in result.metrics)
    assert result.p_value == 1.0 and result.disagreements == []


@settings(deadline=None)  # the first example imports scipy
@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_matches_scipys_exact_binomial_test(only_a, only_b):
    from scipy.stats import binomtest

    expected = 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert mcnemar_exact(only_a, only_b) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_compare_refuses_runs_without_shared_examples_or_with_different_gold():
    a = polarity_records("m", "pp", "pp")
    b = [{**r, "id": r["id"] + "x"} for r in a]
    with pytest.raises(HarnessError, match="share no example ids"):
        compare_records("polarity", "m", a, b)
    flipped = [{**r, "gold": "negative"} for r in a]
    with pytest.raises(HarnessError, match="has gold"):
        compare_records("polarity", "m", a, flipped)


def test_compare_runs_pairs_every_task_and_model_in_both_runs(tmp_path):
    run_a = write_run(
        tmp_path / "a", [], polarity_records("m", GOLD, PRED_A) + polarity_records("only-a", "p", "p")
    )
    run_b = write_run(tmp_path / "b", [], polarity_records("m", GOLD, PRED_B))
    [comparison] = compare_runs(run_a, run_b, resamples=20)
    assert (comparison.task, comparison.model, comparison.n) == ("polarity", "m", 10)
    with pytest.raises(HarnessError, match="no \\(task, model\\) is in both runs"):
        compare_runs(run_a, run_b, model="only-a")


def cli_group() -> click.Group:
    group = click.Group()
    register_commands(group)
    return group


def test_compare_command_prints_differences_mcnemar_and_disagreements(tmp_path):
    run_a = write_run(tmp_path / "a", [], polarity_records("m", GOLD, PRED_A))
    run_b = write_run(tmp_path / "b", [], polarity_records("m", GOLD, PRED_B))
    result = CliRunner().invoke(
        cli_group(), ["compare", str(run_a), str(run_b), "--show", "2", "--resamples", "50"]
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "diff +0.100" in result.output
    assert f"p = {mcnemar_exact(2, 3):.4g}" in result.output
    assert "id=e2" in result.output and "id=e3" in result.output and "id=e6" not in result.output
    as_json = CliRunner().invoke(
        cli_group(), ["compare", str(run_a), str(run_b), "--json", "--resamples", "0"]
    )
    [data] = json.loads(as_json.output)
    assert data["only_b_right"] == 3 and data["metrics"][0]["low"] is None


@pytest.mark.parametrize("columns", [80, 120])
def test_compare_fits_the_terminal_and_wraps_long_lines_under_their_own_indent(tmp_path, columns):
    long_review = "a review that goes on " * 12
    run_a, run_b = (
        write_run(
            tmp_path / name, [], [{**r, "text": long_review} for r in polarity_records("m", GOLD, preds)]
        )
        for name, preds in (("a", PRED_A), ("b", PRED_B))
    )
    plain = CliRunner().invoke(cli_group(), ["compare", str(run_a), str(run_b), "--resamples", "50"],
                               env={"COLUMNS": "10000"})  # fmt: skip
    fitted = CliRunner().invoke(cli_group(), ["compare", str(run_a), str(run_b), "--resamples", "50"],
                                env={"COLUMNS": str(columns)})  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    lines = fitted.output.splitlines()
    assert max(len(line) for line in plain.output.splitlines()) > columns  # there was something to wrap
    assert max(len(line) for line in lines) <= columns
    assert " ".join(fitted.output.split()) == " ".join(plain.output.split())  # nothing lost
    example = next(i for i, line in enumerate(lines) if line.startswith("    id=e2"))
    assert lines[example + 1].startswith("      ")  # a review's continuation stays under its example


def test_multi_seed_compare_prints_the_detectable_difference_of_seeds_and_reviews(tmp_path):
    # The same reviews and predictions in every seed: three seeds see no more than one does.
    run_a = seeded_run(tmp_path / "a", {"m": lambda seed: set(range(20))}, (0, 1, 2))
    run_b = seeded_run(tmp_path / "b", {"m": lambda seed: set(range(10, 32))}, (0, 1, 2))
    [pooled] = compare_seed_runs(run_a, run_b)
    single = compare_records("polarity", "m", records("m", set(range(20))), records("m", set(range(10, 32))))
    assert pooled.disagreement == pytest.approx(22 / 200) and pooled.design_effect > 1.5
    assert single.min_detectable is not None
    assert pooled.min_detectable == pytest.approx(single.min_detectable, rel=0.1)
    result = CliRunner().invoke(cli_group(), ["compare", str(run_a), str(run_b)])
    assert result.exit_code == 0, result.output
    assert (
        f"minimum detectable accuracy difference (80% power, 5% two-sided): {pooled.min_detectable:.3f} "
        "(disagreement 11.0% over the 600 paired reviews of 3 seeds, design effect"
    ) in " ".join(result.output.split())  # the line is wrapped to the terminal's width


def error_run(tmp_path):
    records = polarity_records("tfidf", "nnnppp" + "n", "ppnnnp" + "n", [0.6, 0.99, 0.7, 0.95, 0.8, 0.9, 0.9])
    records[1]["text"] = "fine\x1b[2J\nreally\tfine"
    del records[3]["text"]
    rows = [polarity_row("tfidf", "TF-IDF", 0.5, 1.0)]
    return write_run(tmp_path / "run", rows, records)


def test_errors_split_false_positives_and_negatives_most_confident_first(tmp_path):
    groups = {g.title.split(": ")[1].split(" (")[0]: g for g in misclassified(error_run(tmp_path), "tfidf")}
    assert [r["id"] for r in groups["false positives"].records] == ["e1", "e0"]  # 0.99 before 0.6
    assert [r["id"] for r in groups["false negatives"].records] == ["e3", "e4"]  # 0.95 before 0.8
    assert groups["false positives"].total == 2


def test_errors_accept_the_display_label_and_limit_each_group(tmp_path):
    groups = misclassified(error_run(tmp_path), "TF-IDF", limit=1)
    assert [len(g.records) for g in groups] == [1, 1] and [g.total for g in groups] == [2, 2]
    with pytest.raises(HarnessError, match="tfidf \\(TF-IDF\\)"):
        misclassified(error_run(tmp_path), "minilm")


def test_error_text_is_one_line_without_control_characters_and_falls_back_to_the_id():
    assert display_text({"id": "x", "text": "fine\x1b[2J\nreally\tfine"}) == "fine [2J really fine"
    assert display_text({"id": "r42"}) == "(id r42; text not recorded)"
    assert display_text({"id": "x", "text": "a" * 300}, width=10) == "a" * 9 + "…"


def test_errors_command_prints_the_groups(tmp_path):
    result = CliRunner().invoke(cli_group(), ["errors", str(error_run(tmp_path)), "--model", "tfidf"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("polarity: false positives") and "0.990  id=e1" in lines[1]
    assert "\x1b" not in result.output and "(id e3; text not recorded)" in result.output


def test_errors_list_false_positives_before_false_negatives_whatever_the_file_order(tmp_path):
    records = polarity_records("m", "pn", "np")  # e0 a false negative, written before e1, a false positive
    run = write_run(tmp_path / "run", [polarity_row("m", "M", 0.0, 1.0)], records)
    assert [g.title for g in misclassified(run, "m")] == [
        "polarity: false positives (gold negative, predicted positive)",
        "polarity: false negatives (gold positive, predicted negative)",
    ]
