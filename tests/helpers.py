"""What several test modules share: `harness run` on the toy task through a test's plugin host, and tiny
HTTP servers on 127.0.0.1 that answer as a test tells them to (a server that misbehaves on purpose)."""

from __future__ import annotations

import json
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
