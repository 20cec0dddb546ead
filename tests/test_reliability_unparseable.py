"""Scores that say nothing about the model never pass as results: a forced log-probability mode the server
cannot serve stops in the preflight, and a row whose answers mostly name no label is flagged, exit 1.

The server is a real HTTP server on 127.0.0.1 written here: it answers
/completions and /chat/completions as a server without log-probabilities does
(`transformers serve` ignores `logprobs` the same way), always naming
"positive".
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harness.boards import Board, ModelEntry
from harness.metrics import UNPARSEABLE_LIMIT
from harness.run import run_board
from tests.helpers import JsonHandler, run_toy, serving


class NoLogprobsHandler(JsonHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        usage = {"prompt_tokens": 5, "completion_tokens": 1}
        if self.path.endswith("/chat/completions"):
            self.answer(
                200, {"choices": [{"message": {"role": "assistant", "content": "positive"}}], "usage": usage}
            )
        else:
            self.answer(200, {"choices": [{"text": " positive", "logprobs": None}], "usage": usage})


@pytest.fixture
def plain_server() -> Iterator[str]:
    with serving(NoLogprobsHandler) as base_url:
        yield base_url


def harness_run(host, monkeypatch, out, *args: str):
    """On toy:20, whose 14 scored reviews the counts below assume."""
    return run_toy(host, monkeypatch, out, *args, data="toy:20")


@pytest.mark.parametrize("mode", ["logprobs", "completion_top_logprobs", "top_logprobs"])
def test_a_forced_logprob_mode_against_a_server_without_them_stops_in_the_preflight(
    host, toy_plugin, monkeypatch, tmp_path, plain_server, mode
):
    result = harness_run(host, monkeypatch, tmp_path / "run", "--model", "openai:m", "--model", "words",
                         "--model-option", f"base_url={plain_server}", "--model-option", f"mode={mode}")  # fmt: skip
    assert result.exit_code == 2 and "nothing ran" in result.stderr
    [line] = [line for line in result.stderr.splitlines() if f"mode={mode}" in line]
    assert f"mode={mode}: {plain_server} answers without" in line and "mode=auto" in line
    assert all(model.predicted == 0 for model in toy_plugin.models)
    assert not (tmp_path / "run" / "results.json").exists()


def test_a_forced_mode_is_tried_before_scoring_outside_the_preflight_too(host, tmp_path, plain_server):
    board = Board(name="b", tasks=["toy"], models=[ModelEntry("openai:m")], data="toy:20", backend="cpu",
                  bootstrap=0, model_options={"base_url": plain_server, "mode": "top_logprobs"})  # fmt: skip
    [row] = run_board(host, board, tmp_path / "run")["rows"]
    assert row["status"] == "error" and "mode=top_logprobs" in row["error"] and row["n"] == 0


def test_auto_and_generate_against_the_same_server_score_every_review(
    host, monkeypatch, tmp_path, plain_server
):
    for mode in ("auto", "generate"):
        out = tmp_path / mode
        result = harness_run(host, monkeypatch, out, "--model", "openai:m",
                             "--model-option", f"base_url={plain_server}", "--model-option", f"mode={mode}")  # fmt: skip
        assert result.exit_code == 0, result.output
        [row] = json.loads((out / "results.json").read_text())["rows"]
        assert row["n"] == 14 and row["extra"]["scoring_mode"] == ["generate"]
        assert "unparseable_share" not in row["extra"] and "flagged" not in result.stderr


def test_a_row_whose_answers_mostly_name_no_label_is_flagged_and_the_run_exits_1(host, monkeypatch, tmp_path):
    out = tmp_path / "run"
    # 8 of the 14 scored toy reviews contain "review 1": their answers name no label
    result = harness_run(host, monkeypatch, out, "--model", "words", "--model-option", "silent_on=review 1")
    assert result.exit_code == 1, result.output
    assert (
        "flagged: toy · words: 57% of the answers name no label, more than the 50% allowed" in result.stderr
    )
    assert "1 row(s) flagged for unparseable answers" in result.stderr
    [row] = json.loads((out / "results.json").read_text())["rows"]
    assert row["status"] == "ok" and row["extra"]["unparseable"] == 8
    assert row["extra"]["unparseable_share"] == pytest.approx(8 / 14, abs=1e-4)
    assert row["extra"]["unparseable_over_limit"] is True
    assert any("name no label" in note for note in row["notes"])


def test_a_row_at_the_limit_is_not_flagged(host, monkeypatch, tmp_path):
    out = tmp_path / "run"
    result = harness_run(host, monkeypatch, out, "--model", "words", "--model-option", "silent_on=fine")
    assert result.exit_code == 0, result.output
    [row] = json.loads((out / "results.json").read_text())["rows"]
    assert row["extra"]["unparseable_share"] == UNPARSEABLE_LIMIT == 0.5
    assert "unparseable_over_limit" not in row["extra"] and "flagged" not in result.stderr
