"""A server or gateway that echoes the request's `Authorization` header back: the key reaches no file and
no terminal, and the control bytes it sends reach no report.

The server is a real HTTP server on 127.0.0.1, written here to misbehave: for
the model `echo` it answers every review with the header inside the answer;
for `refuse` it answers HTTP 400 with the header and an ESC sequence in the
error message; for `locked` HTTP 401 with the same body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import JsonHandler, run_toy, serving

SECRET = "sk-leak-7c1e55b0a9d4f3"
ESC = "\x1b"


class EchoingHandler(JsonHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        header = self.headers.get("Authorization", "")
        probe = "Review: Great." in json.dumps(body)  # the preflight's request, answered for every model
        if body["model"] == "echo" or (probe and body["model"] == "refuse"):
            said = f"positive; you sent {header}"
            choice = {"message": {"content": said}} if "chat" in self.path else {"text": said}
            answer = {"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
            self.answer(200, answer)
            return
        message = f"{ESC}[31mbad request; headers: Authorization: {header}; key {SECRET}{ESC}]0;owned{ESC}\\"
        self.answer(401 if body["model"] == "locked" else 400, {"error": {"message": message}})

    def do_GET(self) -> None:
        self.answer(
            404, {"error": {"message": f"no such route (Authorization: {self.headers['Authorization']})"}}
        )


@pytest.fixture
def echoing_server() -> Iterator[str]:
    with serving(EchoingHandler) as base_url:
        yield base_url


def run_against(host, monkeypatch, base_url: str, out: Path, *models: str):
    monkeypatch.setenv("HARNESS_TEST_LEAKED_KEY", SECRET)
    options = ["--model-option", f"base_url={base_url}", "--model-option", "api_key_env=HARNESS_TEST_LEAKED_KEY",
               "--model-option", "mode=generate", "--model-option", "max_retries=0"]  # fmt: skip
    return run_toy(host, monkeypatch, out, *options, *(arg for model in models for arg in ("--model", model)))


def assert_nothing_leaked(out: Path, *texts: str) -> None:
    files = [path for path in out.rglob("*") if path.is_file()]
    for path in files:
        data = path.read_bytes()
        assert SECRET.encode() not in data, path
        if path.suffix in (".md", ".html", ".json"):
            assert ESC.encode() not in data and b"\\u001b" not in data, path
    for text in texts:
        assert SECRET not in text and ESC not in text


def test_a_key_echoed_in_answers_and_errors_reaches_no_file_and_no_terminal(
    host, monkeypatch, tmp_path, echoing_server
):
    out = tmp_path / "run"
    result = run_against(host, monkeypatch, echoing_server, out, "openai:echo", "openai:refuse")
    assert result.exit_code == 1, result.output
    results = json.loads((out / "results.json").read_text())
    echo, refuse = results["rows"]
    assert echo["status"] == "ok" and echo["n"] > 0
    assert refuse["status"] == "error" and "HTTP 400" in refuse["error"] and "[redacted]" in refuse["error"]
    predictions = (out / "predictions.jsonl").read_text()
    assert "Bearer [redacted]" in predictions  # the echoed answer is kept, without the key
    assert {"results.json", "predictions.jsonl", "leaderboard.md", "leaderboard.html", "cache.sqlite"} <= {
        p.name for p in out.iterdir()
    }
    assert_nothing_leaked(out, result.stdout, result.stderr)


def test_a_refused_key_echoed_in_a_401_reaches_no_file_and_no_terminal(
    host, monkeypatch, tmp_path, echoing_server
):
    out = tmp_path / "run"
    result = run_against(host, monkeypatch, echoing_server, out, "openai:locked", "words")
    assert result.exit_code != 0 and "HTTP 401" in result.output
    assert_nothing_leaked(out, result.stdout, result.stderr)
