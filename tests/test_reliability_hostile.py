"""Review text is data everywhere: no export lets it break a table, run as a formula, script or escape code.

Review text reaches the leaderboard through error messages (a model that
fails quotes the review it failed on) and labels; these tests put hostile text
in both and check every format, and the HTML page in a real browser.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from harness.leaderboard._html import render_html
from harness.leaderboard._terminal import render_plain
from harness.leaderboard.exporters import csv_cell, render_csv, render_json, render_markdown
from tests.leaderboard_runs import polarity_row

SCRIPT = "<script>document.title='pwned'</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"
REVIEW = f'Terrible | would not buy\n| --- |\n{SCRIPT}{IMG} &amp; =HYPERLINK("http://x")'
FORMULAS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\t=1+1", "\r=1+1", '=HYPERLINK("http://evil","x")']


def hostile_rows() -> list[dict]:
    failed = polarity_row("words:bad", "=cmd|' /C calc'!A0", 0.5, 1.0)
    failed.update(status="error", error=f"RuntimeError: cannot score {REVIEW}", metrics={}, intervals={})
    return [
        polarity_row("a", f"label | with pipe {SCRIPT}", 0.8, 2.0),
        polarity_row("b", "@SUM(1+1)*cmd", 0.7, 1.0),
        failed,
    ]


def test_markdown_tables_keep_their_shape_and_show_no_markup():
    text = render_markdown(hostile_rows())
    table = [line for line in text.splitlines() if line.startswith("|")]
    cells = {line.replace("\\|", "").count("|") for line in table}
    assert len(cells) == 1  # every line of the table has the same number of cells
    assert "<script" not in text and "<img" not in text
    assert "&lt;script&gt;" in text
    assert all(line.startswith(("|", "- error:", "")) for line in text.splitlines())


@pytest.mark.parametrize("value", FORMULAS)
def test_csv_cells_starting_a_formula_are_neutralised(value):
    assert csv_cell(value).startswith("'")


@pytest.mark.parametrize("value", ["-0.25", "+3", "12.5", "plain", "", "0.81 ± 0.01"])
def test_csv_numbers_and_plain_text_are_left_alone(value):
    assert csv_cell(value) == value


def test_csv_export_has_no_live_formula_and_one_record_per_row():
    rows = hostile_rows()
    records = list(csv.reader(io.StringIO(render_csv(rows))))
    header, body = records[0], records[1:]
    assert len(body) == len(rows) and all(len(r) == len(header) for r in body)
    for record in body:
        for cell in record:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")) and not (
                cell.startswith("-") and "+" in cell
            )


def test_json_export_round_trips_the_text_exactly():
    rows = hostile_rows()
    parsed = json.loads(render_json(rows))
    assert parsed["rows"][2]["error"] == rows[2]["error"]


def test_terminal_text_carries_no_escape_sequences():
    rows = hostile_rows()
    rows[2]["error"] = "cannot score '\x1b[2J\x1b]0;pwned\x07 review'"
    text = render_plain(rows)
    assert "\x1b" not in text and "\x07" not in text


def test_html_export_escapes_review_text_in_errors_and_labels():
    page = render_html(hostile_rows())
    assert SCRIPT not in page and IMG not in page and "<img" not in page
    assert "&lt;script&gt;" in page


def test_html_page_in_a_browser_shows_a_hostile_review_as_text(tmp_path):
    from tests.chromium import DevTools, chromium_binary

    rows = [{**row, "board": "mine"} for row in hostile_rows()]
    page = tmp_path / "leaderboard.html"
    page.write_text(render_html(rows), encoding="utf-8")
    browser = DevTools(chromium_binary(), tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        errors = browser.evaluate("[...document.querySelectorAll('p.error')].map(p => p.textContent)")
        assert any(SCRIPT in e and IMG in e for e in errors)
        assert browser.evaluate("document.querySelectorAll('img').length") == 0
        assert browser.evaluate("document.querySelectorAll('body script').length") <= 1  # only the page's own
        assert browser.evaluate("document.title") == "Leaderboard: mine"
    finally:
        browser.close()


def test_errors_command_shows_a_hostile_review_on_one_clean_line():
    from harness.leaderboard._misclassified import display_text

    shown = display_text({"text": "bad\x1b[2J\r\nreview\x00\u202etxt.exe\u2066", "id": "r1"})
    assert (
        shown == "bad [2J review txt.exe"
    )  # no escape codes, line breaks or bidi overrides reach the terminal
