"""What the board says it found, on runs built from known predictions: winners, ties, hybrids that help or not."""

from __future__ import annotations

import json

import pytest

from harness.leaderboard._compare import compare_records
from harness.leaderboard._findings import board_findings
from harness.leaderboard._html import render_html
from harness.leaderboard._terminal import View, render_plain
from harness.leaderboard.exporters import render_json, render_markdown
from harness.leaderboard.run_outputs import add_findings
from harness.power import min_detectable_difference, reviews_needed
from harness.results import leaderboard_rows, read_results
from tests.leaderboard_runs import HYBRID, LARGE, SMALL, N, board, polarity_row, records, seeded_run


def only(rows: list) -> object:
    (found,) = board_findings(rows)
    return found


def test_a_clear_winner_is_named_with_the_paired_interval_that_separates_it(tmp_path):
    found = only(
        board(tmp_path, {"a": ("Alpha", set(), 1.0, 0.1), "b": ("Beta", set(range(0, 120, 2)), 2.0, 0.2)})
    )
    best = found.best
    assert best["label"] == "Alpha" and best["against_next"]["verdict"] == "gain"
    assert best["against_next"]["low"] > 0 and best["against_next"]["second"] == "Beta"
    assert (
        found.sentences[0].startswith("Best on macro-F1: Alpha")
        and "a lead the data support" in found.sentences[0]
    )
    assert found.dominated == [{"label": "Beta", "model": "b", "by": "Alpha"}]
    assert "Beta by Alpha" in found.sentences[-1] and len(found.sentences) <= 3


def test_a_tie_is_not_called_a_win_and_says_what_lead_is_ruled_out(tmp_path):
    found = only(
        board(
            tmp_path, {"a": ("Alpha", set(range(20)), 1.0, 0.1), "b": ("Beta", set(range(10, 30)), 1.0, 0.1)}
        )
    )
    against = found.best["against_next"]
    assert against["verdict"] == "not separated" and against["low"] < 0 < against["high"]
    assert "not separated from" in found.sentences[0] and "is ruled out" in found.sentences[0]
    assert "support" not in found.sentences[0]


def test_the_interval_is_the_one_harness_compare_gives(tmp_path):
    rows = board(
        tmp_path, {"a": ("Alpha", set(range(5)), 1.0, 0.1), "b": ("Beta", set(range(3, 30)), 1.0, 0.1)}
    )
    against = only(rows).best["against_next"]
    compared = compare_records("polarity", "a", records("b", set(range(3, 30))), records("a", set(range(5))))
    expected = next(m for m in compared.metrics if m.name == "macro_f1")
    assert (against["diff"], against["low"], against["high"]) == (expected.diff, expected.low, expected.high)
    assert against["mcnemar_p"] == compared.p_value


def test_a_hybrid_that_helps_gains_on_its_small_model_at_a_price(tmp_path):
    small_wrong, large_wrong = set(range(0, 80, 2)), set(range(100, 110))
    hybrid_wrong = set(range(0, 10, 2))  # the large model fixed most of what it was sent
    found = only(board(tmp_path, {
        SMALL: ("Small", small_wrong, 1.0, 0.05), LARGE: ("Large", large_wrong, 30.0, 1.5),
        HYBRID: ("Hybrid", hybrid_wrong, 7.0, 0.3),
    }))  # fmt: skip
    (hybrid,) = found.hybrids
    assert hybrid["small"] == "Small" and hybrid["large"] == "Large" and hybrid["escalated_share"] == 0.2
    assert hybrid["against_small"]["verdict"] == "gain" and hybrid["against_small"]["low"] > 0
    assert hybrid["usd_per_1000"] == {"hybrid": 0.3, "small": 0.05, "large": 1.5}
    sentence = next(s for s in found.sentences if s.startswith("Hybrid sends"))
    assert "20.0% of reviews to Large" in sentence and "against Small alone (gain)" in sentence
    assert "$0.3 per 1,000 reviews against $0.05 and $1.5" in sentence


def test_a_hybrid_that_does_not_help_is_not_said_to(tmp_path):
    small_wrong = set(range(0, 60, 2))
    found = only(board(tmp_path, {
        SMALL: ("Small", small_wrong, 1.0, 0.05), LARGE: ("Large", set(range(5)), 30.0, 1.5),
        HYBRID: ("Hybrid", small_wrong, 7.0, 0.3),  # escalated, and answered exactly as the small model did
    }))  # fmt: skip
    (hybrid,) = found.hybrids
    assert hybrid["against_small"]["diff"] == 0 and hybrid["against_small"]["verdict"] == "not separated"
    assert hybrid["against_large"]["verdict"] == "loss"
    sentence = next(s for s in found.sentences if s.startswith("Hybrid sends"))
    assert "against Small alone (not separated)" in sentence and "against Large alone (loss)" in sentence
    assert {"label": "Hybrid", "model": HYBRID, "by": "Small"} in found.dominated


def test_rows_without_predictions_get_no_separation_claim():
    rows = [polarity_row("a", "Alpha", 0.95, 1.0), polarity_row("b", "Beta", 0.70, 2.0)]
    found = only(rows)
    assert found.best["against_next"]["verdict"] == "no paired interval"
    assert "no separation is claimed" in found.sentences[0]


def test_a_seeded_run_pools_the_seeds_paired_differences(tmp_path):
    run = seeded_run(
        tmp_path / "seeded", {"a": lambda seed: set(), "b": lambda seed: set(range(seed, 100 + seed, 2))}
    )
    against = only(leaderboard_rows([run])).best["against_next"]
    assert against["verdict"] == "gain" and against["interval"].startswith("two-level bootstrap")


def test_rows_whose_intervals_overlap_are_told_their_reviews_could_not_separate_them(tmp_path):
    # Alpha alone is wrong on e0-e9, Beta alone on e20-e31: accuracy 0.900 against 0.890
    found = only(
        board(
            tmp_path, {"a": ("Alpha", set(range(20)), 1.0, 0.1), "b": ("Beta", set(range(10, 32)), 1.0, 0.1)}
        )
    )
    (pair,) = found.overlaps
    detectable = min_detectable_difference(N, 22 / N)  # no clusters: design effect 1
    assert (pair["first"], pair["second"], pair["n"], pair["disagreement"]) == ("Alpha", "Beta", N, 22 / N)
    assert pair["min_detectable"] == pytest.approx(detectable) and detectable > 0.01
    assert not pair["separable"] and pair["reviews_needed"] == reviews_needed(0.01, 22 / N)
    assert pair["paired_verdict"] == "not separated" and len(found.sentences) <= 3
    sentence = found.reach
    assert sentence.startswith(
        "Overlapping macro-F1 intervals no paired interval separates, against the accuracy difference their "
        "reviews detect with 80% power"
    )
    assert (
        f"Alpha and Beta, 0.900 vs 0.890, below the {detectable:.3f} these 200 reviews detect reliably"
        in sentence
    )


def test_the_note_on_what_the_reviews_could_detect_follows_the_sentences_in_every_format(tmp_path):
    rows = board(
        tmp_path, {"a": ("Alpha", set(range(20)), 1.0, 0.1), "b": ("Beta", set(range(10, 32)), 1.0, 0.1)}
    )
    found = only(rows)
    assert found.reach and found.reach not in found.sentences
    markdown = render_markdown(rows)
    assert markdown.index(found.sentences[-1]) < markdown.index(found.reach)
    assert f'<p class="reach">{found.reach}</p>' in render_html(rows)
    plain = " ".join(render_plain(rows, View(width=100)).split())
    assert plain.index(" ".join(found.sentences[-1].split())) < plain.index(" ".join(found.reach.split()))
    assert json.loads(render_json(rows))["tables"][0]["findings"]["reach"] == found.reach


def test_clearly_different_rows_get_no_such_note_nor_do_overlapping_rows_their_paired_interval_separates(
    tmp_path,
):
    rows = board(tmp_path, {"a": ("Alpha", set(), 1.0, 0.1), "b": ("Beta", set(range(0, 120, 2)), 2.0, 0.2)})
    found = only(rows)
    assert found.overlaps == [] and found.reach is None
    for (
        r
    ) in rows:  # intervals as wide as a tiny sample's: they overlap, yet 60 one-sided disagreements separate
        r["intervals"]["macro_f1"] = [0.4, 1.0]
    found = only(rows)
    (pair,) = found.overlaps
    assert pair["separable"] and pair["min_detectable"] < 0.3 and pair["paired_verdict"] == "gain"
    assert found.reach is None  # the data told them apart: nothing to say of what it could have


def test_many_overlapping_pairs_name_the_top_rows_and_keep_the_full_list(tmp_path):
    models = {name: (name.title(), set(range(i, 20 + i)), 1.0, 0.1) for i, name in enumerate("abcde")}
    found = only(board(tmp_path, models))  # every row 0.900: ten overlapping pairs
    assert len(found.overlaps) == 10 and all(not p["separable"] for p in found.overlaps)
    sentence = found.reach
    top = found.best["label"]
    assert sentence.count(f"{top} and ") == 3 and "of 7 more overlapping pairs, 7 are below what" in sentence


def test_a_seeded_runs_overlapping_rows_are_judged_on_the_pooled_reviews_and_seed_spread(tmp_path):
    run = seeded_run(
        tmp_path / "seeded",
        {"a": lambda seed: set(range(20)), "b": lambda seed: set(range(10 + seed, 32))},
        (0, 1, 2),
    )
    (pair,) = only(leaderboard_rows([run])).overlaps
    assert (pair["n"], pair["seeds"]) == (3 * N, 3) and pair["min_detectable"] is not None
    assert "these 600 reviews over 3 seeds detect reliably" in only(leaderboard_rows([run])).reach


def test_the_sentences_open_the_html_and_go_into_results_json_markdown_and_json(tmp_path):
    rows = board(
        tmp_path, {"a": ("Alpha <b>", set(), 1.0, 0.1), "b": ("Beta", set(range(0, 120, 2)), 2.0, 0.2)}
    )
    sentences = only(rows).sentences
    page = render_html(rows)
    opening = page.index('<section class="findings">')
    assert opening < page.index("<table") and "Alpha &lt;b&gt;" in page[opening:] and "Alpha <b>" not in page
    assert " ".join(sentences).replace("<", "&lt;").replace(">", "&gt;") in render_markdown(rows)
    assert json.loads(render_json(rows))["tables"][0]["findings"]["sentences"] == sentences
    run_dir = tmp_path / "run"
    add_findings(run_dir, read_results(run_dir))
    (stored,) = read_results(run_dir)["findings"]
    assert stored["sentences"] == sentences and stored["best"]["label"] == "Alpha <b>"
    results = read_results(run_dir)
    results["findings"][0]["sentences"] = ["As stored."]
    (run_dir / "results.json").write_text(json.dumps(results), encoding="utf-8")
    assert only(leaderboard_rows([run_dir])).sentences == ["As stored."]  # shown again, not drawn again
