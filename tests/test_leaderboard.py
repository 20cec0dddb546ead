"""The leaderboard tables and their text formats: columns, intervals, best values, Pareto marks, escaping."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc

import pytest

from harness.leaderboard._html import render_html
from harness.leaderboard._report import reviews_section
from harness.leaderboard._table import build_tables, dominates
from harness.leaderboard._terminal import render, render_plain
from harness.leaderboard.exporters import register_exporters, render_csv, render_json, render_markdown
from tests.leaderboard_runs import GPU, category_row, error_row, polarity_row


def board_rows() -> list[dict]:
    return [
        polarity_row("minilm", "MiniLM", 0.90, 2.0),
        polarity_row("tfidf", "TF-IDF", 0.85, 0.5),
        polarity_row("hybrid:minilm>smollm2", "Hybrid", 0.93, 4.0, extra={"escalated_share": 0.125}),
        polarity_row("smollm2", "SmolLM2", 0.80, 30.0),
        error_row("broken", "RuntimeError: no weights"),
        category_row("minilm", "MiniLM", 0.60, 3.0),
        category_row("tfidf", "TF-IDF", 0.55, 0.1),
    ]


def table_dict(table) -> dict[str, dict[str, str]]:
    """label -> header -> cell text."""
    headers = [c.header for c in table.columns]
    return {label: dict(zip(headers, [c.text for c in cells], strict=True))
            for label, cells in zip(table.labels, table.rows, strict=True)}  # fmt: skip


def test_one_table_per_task_with_the_studys_columns():
    polarity, category = build_tables(board_rows())
    assert polarity.task == "polarity" and category.task == "category"
    headers = [c.header for c in polarity.columns]
    for expected in (
        "macro-F1",
        "Acc total",
        "Acc pos",
        "Acc neg",
        "runtime (s)",
        "reviews/s",
        "to large model",
    ):
        assert expected in headers
    assert [c.header for c in category.columns][3:7] == ["top-1", "top-2", "top-3", "mAP"]
    assert "to large model" not in [c.header for c in category.columns]  # no hybrid there


def test_intervals_are_shown_as_value_plus_minus_half_width():
    cells = table_dict(build_tables(board_rows())[0])
    assert cells["MiniLM"]["macro-F1"] == "0.900 ± 0.010"
    assert cells["MiniLM"]["Acc total"] == "0.920 ± 0.020"  # interval [0.90, 0.94]
    assert cells["MiniLM"]["Acc pos"] == "0.940"  # no interval recorded
    assert cells["Hybrid"]["to large model"] == "12.5%"


def test_the_cost_front_is_its_own_column_when_rows_have_prices():
    rows = board_rows()[:4]
    assert "Pareto ($)" not in [c.header for c in build_tables(rows)[0].columns]  # no prices: no cost front
    # $ per 1,000 reviews: MiniLM now costs more than the better hybrid, SmolLM2 (served) least of all
    for row, usd in zip(rows, (0.04, 0.01, 0.03, 0.005), strict=True):
        row["cost"] = {"usd": usd / 10, "usd_per_1000_reviews": usd}
    cells = table_dict(build_tables(rows)[0])
    assert {label for label, row in cells.items() if row["Pareto ($)"] == "front"} == {
        "SmolLM2",
        "TF-IDF",
        "Hybrid",
    }
    assert cells["MiniLM"]["Pareto ($)"] == "" and cells["MiniLM"]["Pareto"] == "front"  # on runtime it is
    assert cells["SmolLM2"]["Pareto"] == "dominated by Hybrid"  # the runtime front is unchanged


def test_best_value_per_column_is_highlighted_lower_runtime_wins():
    table = build_tables(board_rows())[0]
    best = {c.header: [label for label, cells in zip(table.labels, table.rows, strict=True) if cells[i].best]
            for i, c in enumerate(table.columns)}  # fmt: skip
    assert best["macro-F1"] == ["Hybrid"]
    assert best["runtime (s)"] == ["TF-IDF"]
    assert best["reviews/s"] == ["TF-IDF"]
    assert best["model"] == [] and best["to large model"] == []


def test_pareto_front_is_marked_and_dominated_rows_name_a_dominator():
    cells = table_dict(build_tables(board_rows())[0])
    assert {label for label, row in cells.items() if row["Pareto"] == "front"} == {
        "MiniLM",
        "TF-IDF",
        "Hybrid",
    }
    assert cells["SmolLM2"]["Pareto"] == "dominated by Hybrid"  # the best-quality row that beats it
    assert cells["broken"]["Pareto"] == "" and cells["broken"]["n"] == "error"


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [((0.9, 1.0), (0.8, 2.0), True), ((0.9, 1.0), (0.9, 1.0), False), ((0.9, 3.0), (0.8, 2.0), False),
     ((0.9, 1.0), (0.9, 2.0), True)],
)  # fmt: skip
def test_dominates_needs_one_strict_improvement(a, b, expected):
    assert dominates(a, b) is expected


def test_cpu_and_gpu_runs_of_a_model_share_a_row_with_two_runtime_columns():
    rows = [
        {**polarity_row("minilm", "MiniLM", 0.90, 8.0), "run": "runs/cpu"},
        {**polarity_row("minilm", "MiniLM", 0.90, 0.4, backend=GPU), "run": "runs/gpu"},
        {**polarity_row("tfidf", "TF-IDF", 0.85, 0.5), "run": "runs/cpu"},
    ]
    [table] = build_tables(rows)
    cells = table_dict(table)
    assert "runtime (s)" not in cells["MiniLM"]
    assert (cells["MiniLM"]["CPU runtime (s)"], cells["MiniLM"]["GPU runtime (s)"]) == ("8.00", "0.40")
    assert (cells["TF-IDF"]["CPU runtime (s)"], cells["TF-IDF"]["GPU runtime (s)"]) == ("0.50", "")
    assert len(table.rows) == 2


def test_two_runs_on_the_same_device_are_kept_apart():
    rows = [{**polarity_row("minilm", "MiniLM", 0.9, 2.0), "run": "a"},
            {**polarity_row("minilm", "MiniLM", 0.8, 3.0), "run": "b"}]  # fmt: skip
    [table] = build_tables(rows)
    assert table.labels == ["MiniLM", "MiniLM [b]"]


def test_summary_line_counts_dropped_truncated_and_malformed():
    rows = [polarity_row("a", "A", 0.9, 1.0, truncated=3), polarity_row("b", "B", 0.8, 1.0)]
    [table] = build_tables(rows)
    assert "dropped for length: 0" in table.summary
    assert "truncated: 3 (A 3)" in table.summary
    assert "malformed rows: 2" in table.summary


def test_unknown_task_shows_every_metric_it_reports():
    row = {**polarity_row("m", "M", 0.5, 1.0), "task": "toy", "metrics": {"accuracy": 0.5}, "intervals": {}}
    [table] = build_tables([row])
    assert [c.header for c in table.columns][3] == "accuracy"
    assert table_dict(table)["M"]["Pareto"] == "front"


def test_markdown_has_one_table_per_task_bold_best_and_escaped_labels():
    rows = [*board_rows(), polarity_row("evil", "a|b <img src=x>\nnext", 0.1, 99.0)]
    md = render_markdown(rows)
    assert md.startswith("| task | model | n | macro-F1 |")
    assert len([line for line in md.splitlines() if line.startswith("|---|")]) == 2
    assert "| polarity | Hybrid | 100 | **0.930 ± 0.010** |" in md
    assert "a\\|b &lt;img src=x&gt; next" in md and "<img" not in md
    assert "- error: broken: RuntimeError: no weights" in md
    table_lines = [line for line in md.splitlines() if line.startswith("| polarity")]
    assert all(line.count(" | ") == table_lines[0].count(" | ") for line in table_lines)


def test_csv_neutralises_formulas_and_keeps_numbers():
    rows = [polarity_row("x", "=HYPERLINK(\"http://evil\")", 0.9, 1.0), polarity_row("y", "-negative", 0.8, 2.0),
            polarity_row("z", "@sum", 0.7, 3.0), polarity_row("w", "+1", 0.6, 4.0)]  # fmt: skip
    parsed = list(csv.DictReader(io.StringIO(render_csv(rows))))
    assert [r["model"] for r in parsed] == ['\'=HYPERLINK("http://evil")', "'-negative", "'@sum", "+1"]
    assert parsed[0]["macro-F1"] == "0.900 ± 0.010" and parsed[0]["runtime (s)"] == "1.00"


def test_csv_holds_every_tasks_rows_under_one_header():
    parsed = list(csv.DictReader(io.StringIO(render_csv(board_rows()))))
    assert [r["task"] for r in parsed].count("category") == 2
    assert parsed[-1]["top-1"] == "0.550 ± 0.020" and parsed[-1]["macro-F1"] == ""


def test_json_has_the_rendered_tables_and_the_raw_rows():
    data = json.loads(render_json(board_rows()))
    assert [t["task"] for t in data["tables"]] == ["polarity", "category"]
    polarity = data["tables"][0]
    assert polarity["rows"][2][polarity["columns"].index("macro-F1")] == "0.930 ± 0.010"
    assert "macro-F1" in polarity["best"][2]
    assert data["rows"][0]["metrics"]["macro_f1"] == 0.90


def test_plain_text_has_no_escape_codes_and_coloured_text_does():
    plain = render_plain(board_rows())
    coloured = render(board_rows(), color=True)
    assert "\x1b[" not in plain and "\x1b[" in coloured
    assert "0.930 ± 0.010" in plain and "dominated: SmolLM2 by Hybrid" in plain
    assert "error: broken: RuntimeError: no weights" in plain
    assert all(line == line.rstrip() for line in plain.splitlines())


def test_terminal_shows_labels_with_brackets_literally():
    plain = render_plain([polarity_row("m", "model [bold]x[/bold]", 0.9, 1.0)])
    assert "model [bold]x[/bold]" in plain


def test_html_is_self_contained_escaped_and_marks_best_and_front():
    rows = [*board_rows(), polarity_row("evil", "<script>alert(1)</script>", 0.1, 99.0)]
    page = render_html(rows)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page
    assert 'class="num best" data-value="0.93">0.930 ± 0.010' in page
    assert '<td class="front">front</td>' in page
    assert page.count("<table") == 2 and page.count("<script>") == 1


def test_exporters_register_every_format():
    registered = {}
    register_exporters(lambda name, obj, description="": registered.setdefault(name, obj))
    assert set(registered) == {"terminal", "text", "md", "csv", "json", "html"}
    assert registered["html"].suffix == "html" and registered["md"].suffix == "md"
    assert registered["text"].render(board_rows()) == render_plain(board_rows())


def write_predictions(run_dir, n: int) -> None:
    """Two models' records of `n` reviews: `a` is wrong on every third review, `b` on every fifth."""
    run_dir.mkdir()
    with open(run_dir / "predictions.jsonl", "w", encoding="utf-8") as out:
        for model, every in (("a", 3), ("b", 5)):
            for i in range(n):
                wrong = i % every == 0
                top = 0.5 + (i % 50) / 100
                record = {"task": "polarity", "model": model, "id": f"r{i}", "text": f"review {i} " * 20,
                          "gold": "pos", "pred": "neg" if wrong else "pos", "correct": not wrong,
                          "probs": [top, 1 - top] if wrong else [1 - top, top],
                          "features": {"tokens": 40, "negation": 0.0}, "facets": {"stars": "5"}}  # fmt: skip
                out.write(json.dumps(record) + "\n")


def test_the_reviews_section_streams_the_predictions(tmp_path):
    run_dir = tmp_path / "run"
    write_predictions(run_dir, 3000)
    rows = [{"task": "polarity", "model": m, "label": m.upper()} for m in ("a", "b")]
    tracemalloc.start()
    try:
        section = reviews_section(run_dir, rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "polarity · A: 1000 misclassified of 3000 (showing 25)" in section
    assert "polarity · B: 600 misclassified of 3000 (showing 25)" in section
    # wrong in one of the two: 1000 + 600 less the 200 both get wrong, twice
    assert "polarity · A and B disagree on 1200 (showing 25)" in section
    first = section.index("<td>0.990</td>")  # the most confident mistakes come first: r99, r249, ...
    assert section.index("review 99 ") > first and section.index("<td>0.980</td>") > first
    assert peak < 3_000_000  # every record held at once would take several times as much
