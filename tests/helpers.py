"""What several test modules share: `harness run` on the toy task through a test's plugin host, a pacing
plugin and the cache's row count for resumed runs, reviews with every slice's features, and tiny HTTP
servers on 127.0.0.1 that answer as a test tells them to (a server that misbehaves on purpose)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from harness.plugin_manager import PluginHost


def run_toy(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch, out: Path, *args: str, data: str = "toy:40"
) -> Result:
    """`harness run` of the toy task on the cpu without bootstrap into `out`, with `host`'s plugins; `args` add
    the models and anything else."""
    from harness import cli, plugin_manager

    monkeypatch.setattr(plugin_manager, "_host", host)
    base = ["run", "--backend", "cpu", "--task", "toy", "--data", data, "--bootstrap", "0", "--out", str(out)]
    return CliRunner().invoke(cli.cli, [*base, *args])


class JsonHandler(BaseHTTPRequestHandler):
    """Answers with JSON and keeps quiet; a test's subclass says what it answers to each request."""

    def answer(self, status: int, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        """Quiet: the test reads the harness' output, not the server's."""


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 with `handler` while the block runs; yields its OpenAI-style base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def install_pacer(target: Path) -> Path:
    target.mkdir()
    (target / "harness_pacer.py").write_text(PACER)
    info = target / "harness_pacer-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-pacer\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[harness]\npacer = harness_pacer\n")
    return target


def cached_rows(cache: Path) -> int:
    try:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM predictions").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


PACER = """
import os, time
from harness.hookspecs import hookimpl

@hookimpl
def on_batch_end(run, task, model, batch):
    time.sleep(float(os.environ.get("PACER_SECONDS", "0")))
"""


POSITIVE = ("great product, works well and I love it", "excellent value, would buy again", "very happy")


NEGATIVE = ("terrible, it broke after a day", "do not buy this, it doesn't work", "awful waste of money")


def write_reviews(path: Path, n: int = 80) -> Path:
    """Reviews of two categories and four star ratings, short and long, with a `shop` column; every fifth one
    says the opposite of its stars, so that every model gets some wrong."""
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            stars = (1, 2, 4, 5)[i % 4]
            pool = (
                NEGATIVE if (stars <= 2) != (i % 5 == 0) else POSITIVE
            )  # every fifth text contradicts its stars
            words = " ".join(pool[(i // 4) % 3] for _ in range(1 + (i % 7) * 12))
            row = {
                "review_id": f"r{i}",
                "review_body": words,
                "star_rating": stars,
                "product_category": ("books", "kitchen")[i % 2],
                "shop": f"shop{i % 3}",
            }
            out.write(json.dumps(row) + "\n")
    return path
