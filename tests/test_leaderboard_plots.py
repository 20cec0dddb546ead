"""PNG plots, the files a run leaves behind (on_run_end), and a user's own board file, run and rendered."""

from __future__ import annotations

from harness.boards import load_board
from harness.leaderboard._plots import confusion_counts, per_class_accuracy, slug, write_plots
from harness.leaderboard._predictions import label_order
from harness.leaderboard._terminal import render_plain
from harness.results import leaderboard_rows
from harness.run import run_board
from tests.leaderboard_runs import category_row, polarity_row, prediction, write_run

PNG = b"\x89PNG\r\n\x1a\n"
CATEGORIES = ["Books", "Music", "Toys"]


def category_records(model: str) -> list[dict]:
    """Books always right; Music right once of twice; Toys never (predicted as Books)."""
    cases = [("Books", 0), ("Books", 0), ("Music", 1), ("Music", 0), ("Toys", 0)]
    records = []
    for i, (gold, picked) in enumerate(cases):
        probs = [0.1, 0.1, 0.1]
        probs[picked] = 0.8
        records.append(prediction("category", model, f"c{i}", gold, probs, CATEGORIES))
    return records


def test_confusion_counts_and_per_class_accuracy_by_hand():
    records = category_records("m")
    labels = label_order(records)
    assert labels == ["Books", "Music", "Toys"]  # Books is column 0, Music column 1; Toys never predicted
    assert confusion_counts(records, labels) == [[2, 0, 0], [1, 1, 0], [1, 0, 0]]
    assert per_class_accuracy(records, labels) == [1.0, 0.5, 0.0]
    assert per_class_accuracy(records, [*labels, "Shoes"])[-1] is None
    unparseable = {**records[0], "pred": None, "probs": [0.0, 0.0, 0.0]}  # a generated answer naming no label
    assert confusion_counts([*records, unparseable], labels) == [[2, 0, 0], [1, 1, 0], [1, 0, 0]]


def test_slug_makes_specs_file_safe():
    assert slug("hybrid:minilm>smollm2@confidence:0.9") == "hybrid-minilm-smollm2-confidence-0.9"
    assert slug("../../etc") == "etc"


def test_write_plots_makes_pareto_confusion_and_per_class_pngs(tmp_path):
    rows = [polarity_row("a", "Cost $5 $\\alpha$", 0.9, 1.0), polarity_row("b", "B", 0.8, 2.0),
            category_row("a", "A", 0.6, 1.0), category_row("b", "B", 0.4, 0.5)]  # fmt: skip
    run = write_run(tmp_path / "run", rows, category_records("a") + category_records("b"))
    written = write_plots(run, leaderboard_rows([run]))
    names = sorted(p.name for p in written)
    assert names == ["confusion_category_a.png", "confusion_category_b.png", "pareto_category.png",
                     "pareto_polarity.png", "per_class_category.png"]  # fmt: skip
    assert all(p.read_bytes().startswith(PNG) and p.stat().st_size > 5000 for p in written)


def test_priced_rows_also_get_a_quality_against_cost_picture(tmp_path):
    rows = [polarity_row("a", "A", 0.9, 1.0), polarity_row("b", "B", 0.8, 2.0)]
    for row, usd in zip(rows, (0.02, 0.01), strict=True):
        row["cost"] = {"usd": usd, "usd_per_1000_reviews": usd}
    run = write_run(tmp_path / "run", rows)
    names = sorted(p.name for p in write_plots(run, leaderboard_rows([run])))
    assert names == ["pareto_cost_polarity.png", "pareto_polarity.png"]


def test_one_point_gives_no_pareto_picture(tmp_path):
    run = write_run(tmp_path / "run", [polarity_row("a", "A", 0.9, 1.0)])
    assert write_plots(run, leaderboard_rows([run])) == []


def test_failed_rows_and_missing_predictions_give_no_plots(tmp_path):
    rows = [{**polarity_row("a", "A", 0.9, 1.0), "status": "error", "metrics": {}}]
    run = write_run(tmp_path / "run", rows)
    (run / "predictions.jsonl").unlink()
    assert write_plots(run, leaderboard_rows([run])) == []


def test_a_users_board_file_runs_and_its_leaderboard_files_are_written(host, tmp_path):
    board_file = tmp_path / "my_board.toml"
    board_file.write_text(
        'name = "mine"\ntasks = ["toy"]\ndata = "toy:40"\nbackend = "cpu"\nbootstrap = 20\n'
        '[[models]]\nspec = "words"\nlabel = "Words <b>|1"\n'
        '[[models]]\nspec = "words:other"\n',
        encoding="utf-8",
    )
    assert host.plugins["harness.leaderboard.run_outputs"].source == "built-in"  # writes on run end
    run_dir = tmp_path / "run"
    results = run_board(host, load_board(board_file), run_dir)
    assert [row["status"] for row in results["rows"]] == ["ok", "ok"]
    names = {p.name for p in run_dir.iterdir()}
    assert {"leaderboard.md", "leaderboard.html", "pareto_toy.png"} <= names
    md = (run_dir / "leaderboard.md").read_text(encoding="utf-8")
    assert "| toy | Words &lt;b&gt;\\|1 |" in md
    assert "Words &lt;b&gt;|1" in (run_dir / "leaderboard.html").read_text(encoding="utf-8")
    plain = render_plain(leaderboard_rows([run_dir]))
    assert "Words <b>|1" in plain and "malformed rows: 8" in plain  # the toy source spoils every 5th line
