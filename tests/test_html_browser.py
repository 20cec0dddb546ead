"""The HTML leaderboard in a real headless browser (Debian chromium): it sorts, and labels never execute.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
JSON messages separated by NUL bytes on file descriptors 3 and 4), so the test
needs no network port and no Python package beyond the standard library.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness.leaderboard._html import render_html
from tests.test_leaderboard_support import polarity_row

INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"
SCRIPT_LABEL = "<script>document.title='pwned'</script>"
IMG_LABEL = "<img src=x onerror=\"document.title='pwned'\">"


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail(f"chromium is not installed; the HTML browser test needs it. Install it with: {INSTALL}")


class DevTools:
    """A minimal DevTools client over chromium's debugging pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        # chromium reads commands on fd 3 and answers on fd 4. The child's ends are first moved
        # above 9 so that placing them on 3 and 4 cannot overwrite one with the other.
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def place_pipes() -> None:
            os.dup2(child_r, 3)  # os.dup2 makes 3 and 4 inheritable; everything else is close-on-exec
            os.dup2(child_w, 4)

        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 "--remote-debugging-pipe", "about:blank"]  # fmt: skip
        self.process = subprocess.Popen(
            [binary, *flags],
            preexec_fn=place_pipes,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(child_r)
        os.close(child_w)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session is not None and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 65536)
            if not chunk:
                raise RuntimeError("chromium closed the debugging pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.navigate", url=url)
        loaded = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        deadline = time.monotonic() + 20
        while not self.evaluate(loaded):
            assert time.monotonic() < deadline, f"{url} did not finish loading"
            time.sleep(0.05)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the centre of the element."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.process.wait(timeout=10)
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self._to_browser)
            os.close(self._from_browser)


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
    from tests.test_slices import write_reviews

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
