"""The HTML leaderboard in a real headless browser (Debian chromium): it sorts, and labels never execute.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
JSON messages separated by NUL bytes on file descriptors 3 and 4), so the test
needs no network port and no Python package beyond the standard library.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.leaderboard._html import render_html
from tests.chromium import DevTools, chromium_binary
from tests.leaderboard_runs import polarity_row

SCRIPT_LABEL = "<script>document.title='pwned'</script>"
IMG_LABEL = "<img src=x onerror=\"document.title='pwned'\">"


@pytest.fixture
def browser(tmp_path):
    client = DevTools(chromium_binary(), tmp_path / "profile")
    yield client
    client.close()


def test_html_page_sorts_in_a_browser_and_shows_hostile_labels_as_text(browser, tmp_path):
    rows = [
        {**polarity_row("a", SCRIPT_LABEL, 0.81, 2.0), "board": "mine"},
        {**polarity_row("b", "Winner", 0.95, 3.0), "board": "mine"},
        {**polarity_row("c", IMG_LABEL, 0.70, 1.0), "board": "mine"},
    ]
    page = tmp_path / "leaderboard.html"
    page.write_text(render_html(rows), encoding="utf-8")
    browser.open(page.as_uri())

    first_model = "document.querySelector('table.board tbody tr td:nth-child(2)').textContent"
    assert browser.evaluate(first_model) == SCRIPT_LABEL  # the file's order
    column = browser.evaluate("[...document.querySelectorAll('table.board th')].map(h => h.textContent)")
    macro_f1 = column.index("macro-F1") + 1
    browser.click(f"table.board th:nth-child({macro_f1})")
    assert browser.evaluate(first_model) == "Winner"  # highest macro-F1 first after one click
    browser.click(f"table.board th:nth-child({macro_f1})")
    assert browser.evaluate(first_model) == IMG_LABEL  # ascending on the second click

    labels = browser.evaluate(
        "[...document.querySelectorAll('tbody td:nth-child(2)')].map(td => td.textContent)"
    )
    assert set(labels) == {SCRIPT_LABEL, "Winner", IMG_LABEL}
    assert browser.evaluate("document.querySelectorAll('tbody script, tbody img').length") == 0
    assert browser.evaluate("document.title") == "Leaderboard: mine"  # no injected script ran


def report_run(host, tmp_path: Path) -> Path:
    """A finished run of two tiny models and their hybrid, on reviews the test writes, with its outputs."""
    from harness.boards import Board, ModelEntry
    from harness.run import run_board
    from tests.helpers import write_reviews

    data = write_reviews(tmp_path / "reviews.jsonl")
    models = ["tfidf-logreg", "vader", "hybrid:tfidf-logreg>vader@confidence:0.9"]
    board = Board(name="report", tasks=["polarity"], models=[ModelEntry(m) for m in models], data=str(data),
                  backend="cpu", bootstrap=50)  # fmt: skip
    run_board(host, board, tmp_path / "run")
    return tmp_path / "run"


def set_width(browser: DevTools, width: int) -> None:
    browser.send(
        "Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False
    )


def screenshot(browser: DevTools, path: Path) -> None:
    import base64

    shot = browser.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def test_report_fits_the_screen_embeds_its_plots_and_filters_reviews_by_slice(browser, host, tmp_path):
    run_dir = report_run(host, tmp_path)
    browser.open((run_dir / "leaderboard.html").as_uri())
    for width in (1280, 1920):
        set_width(browser, width)
        time.sleep(0.2)
        assert browser.evaluate("document.documentElement.scrollWidth") <= width  # no column cut off
        rights = browser.evaluate(
            "[...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().right)"
        )
        assert rights and max(rights) <= width
        screenshot(browser, tmp_path / "screenshots" / f"report-{width}px.png")
        assert (tmp_path / "screenshots" / f"report-{width}px.png").stat().st_size > 10_000

    images = browser.evaluate("[...document.images].map(i => [i.alt, i.src.slice(0, 22), i.naturalWidth])")
    assert {alt for alt, _, _ in images} >= {"pareto_polarity", "slices_length_polarity"}
    assert all(src == "data:image/png;base64," and width > 0 for _, src, width in images)  # embedded, decoded
    text = browser.evaluate("document.body.innerText")
    assert "Quality by slice" in text and "macro_f1 by length" in text
    summaries = browser.evaluate("[...document.querySelectorAll('summary')].map(s => s.textContent)")
    n = json.loads((run_dir / "results.json").read_text())["rows"][0]["n"]
    assert any(s.startswith("polarity · tfidf-logreg: ") and f"misclassified of {n}" in s for s in summaries)
    assert any("tfidf-logreg and vader disagree on" in s for s in summaries)

    browser.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    shown = "[...document.querySelectorAll('tr.review')].filter(tr => !tr.hidden)"
    total = browser.evaluate(f"{shown}.length")
    browser.evaluate(
        "(() => { const s = document.getElementById('slice-filter'); s.value = 'stars=1';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    stars = browser.evaluate(f"{shown}.map(tr => JSON.parse(tr.getAttribute('data-slices')).stars)")
    assert stars and set(stars) == {"1"} and len(stars) < total
    screenshot(browser, tmp_path / "screenshots" / "report-filtered-1920px.png")
