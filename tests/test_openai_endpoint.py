"""The `openai:` model family against real OpenAI-compatible servers started here, on free local ports.

The server is `transformers serve` (installed by `make setup` through
transformers[serving]) serving the packaged SmolLM2 GGUF's weights. It answers
/v1/completions and /v1/chat/completions but ignores `logprobs`, so `auto`
settles on generate-and-parse there. The response readers for the
log-probability modes are checked on answers shaped as the OpenAI API
documents them.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.boards import Board, ModelEntry
from harness.cache import SCHEMA
from harness.hookspecs import hookimpl
from harness.options import OptionError
from harness.plugins.models._endpoint_client import EndpointClient, EndpointError, RateLimiter, retry_after
from harness.plugins.models.openai_endpoint import (
    endpoint_stats,
    label_logprob,
    make_endpoint,
    scores_from_top_logprobs,
)
from harness.runner import run_board
from tests.tiny_t5 import make_context

SECRET = "sk-test-d0-not-write-me-3f9a1c"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- without a server --------------------------------------------------------------------------


def test_label_logprob_sums_the_label_tokens_before_the_generated_one():
    answer = {
        "choices": [
            {
                "logprobs": {
                    "tokens": ["Answer", ":", " pos", "itive", " The"],
                    "token_logprobs": [None, -0.5, -1.0, -0.25, -3.0],
                }
            }
        ],  # fmt: skip
        "usage": {"prompt_tokens": 4, "completion_tokens": 1},
    }
    assert label_logprob(answer, " positive") == pytest.approx(-1.25)


def test_label_logprob_refuses_an_answer_without_echoed_logprobs():
    with pytest.raises(EndpointError, match="no echoed prompt log-probabilities"):
        label_logprob({"choices": [{"text": " yes", "logprobs": None}]}, " positive")


def test_top_logprobs_score_the_best_token_that_starts_one_label_only():
    top = [(" Positive", -0.2), ("pos", -0.9), (" Neg", -2.0), ("The", -4.0)]
    scores = scores_from_top_logprobs(top, ("negative", "positive"))
    assert scores.tolist() == [-2.0, -0.2]
    # a label no shown token starts gets the lowest shown log-probability
    assert scores_from_top_logprobs(
        [(" positive", -0.1), ("I", -5.0)], ("negative", "positive")
    ).tolist() == [
        -5.0,
        -0.1,
    ]
    # a token that starts two labels says nothing; none naming a label at all gives no scores
    assert scores_from_top_logprobs([("b", -0.1)], ("books", "beauty")) is None


def test_stats_count_unparseable_answers_tokens_latency_and_token_cost():
    records = [
        {"mode": "generate", "answer": "positive", "parsed": True, "prompt_tokens": 100,
         "completion_tokens": 2, "seconds": 0.5},
        {"mode": "generate", "answer": "I think so", "parsed": False, "prompt_tokens": 300,
         "completion_tokens": 4, "seconds": 1.5},
    ]  # fmt: skip
    stats = endpoint_stats([json.dumps(r) for r in records] + [None], price_in=1.0, price_out=10.0)
    assert stats["unparseable"] == 1 and stats["scoring_mode"] == ["generate"]
    assert stats["prompt_tokens"] == 400 and stats["completion_tokens"] == 6
    assert stats["token_cost_usd"] == pytest.approx((400 * 1.0 + 6 * 10.0) / 1e6)
    assert stats["request_latency_p50_s"] == pytest.approx(1.0)


def test_retry_after_header_wins_over_the_backoff():
    assert retry_after("3", 0.5) == 3.0
    assert retry_after(None, 0.5) == retry_after("soon", 0.5) == 0.5


def test_rate_limiter_spaces_request_starts():
    limiter = RateLimiter(requests_per_minute=600)  # one every 0.1 s
    limiter.wait()
    assert limiter._next - time.monotonic() > 0.05


def test_a_401_names_the_option_to_check():
    error = EndpointClient("http://h/v1", None, timeout=1, max_retries=0, requests_per_minute=0).refusal(
        401, b'{"error": {"message": "bad key"}}', "/chat/completions"
    )
    assert "HTTP 401" in str(error) and "api_key_env" in str(error)


def test_an_unreachable_server_is_one_line_and_the_other_models_still_run(host, tmp_path):
    port = free_port()  # nothing listens there
    board = Board(name="e", tasks=["toy"], models=[ModelEntry("openai:m"), ModelEntry("words")], data="toy:10",
                  backend="cpu", bootstrap=0, model_options={"base_url": f"http://127.0.0.1:{port}/v1",
                                                             "max_retries": "0"})  # fmt: skip
    served, words = run_board(host, board, tmp_path / "run")["rows"]
    assert served["status"] == "error" and "\n" not in served["error"]
    assert (
        f"cannot reach http://127.0.0.1:{port}/v1" in served["error"]
        and "is the server running?" in served["error"]
    )
    assert words["status"] == "ok"


def test_the_preflight_finds_an_unreachable_server_before_any_model_runs(
    host, toy_plugin, tmp_path, monkeypatch
):
    from click.testing import CliRunner

    from harness import cli as cli_module
    from harness import plugin_manager

    monkeypatch.setattr(plugin_manager, "_host", host)
    port = free_port()
    args = ["run", "--backend", "cpu", "--task", "toy", "--data", "toy:10", "--model", "words", "--model", "openai:m",
            "--model-option", f"base_url=http://127.0.0.1:{port}/v1", "--out", str(tmp_path / "run")]  # fmt: skip
    result = CliRunner().invoke(cli_module.cli, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"cannot reach http://127.0.0.1:{port}/v1" in result.stderr
    assert all(model.predicted == 0 for model in toy_plugin.models)


def test_naming_an_unset_key_variable_is_an_option_error(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(OptionError, match="HARNESS_TEST_NO_SUCH_KEY is not set"):
        make_endpoint("m", make_context(tmp_path, api_key_env="HARNESS_TEST_NO_SUCH_KEY"))


def test_the_model_name_is_required(tmp_path):
    with pytest.raises(Exception, match="openai:MODEL_NAME"):
        make_endpoint(None, make_context(tmp_path))


# --- against `transformers serve` -------------------------------------------------------------


def packaged_smollm2_folder(target: Path) -> Path:
    """The packaged SmolLM2 GGUF dequantized into a plain folder, as the in-process path loads it.

    `transformers serve` loads a model by its config's architecture, which
    a GGUF does not name, so the test server gets the same weights saved
    as safetensors.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.plugins.models.causal_lm import packaged_smollm2

    gguf = packaged_smollm2()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = model.config
    del config.quantization_config
    config.architectures = [type(model).__name__]
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(target)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(target)
    return target


class Server:
    """`transformers serve` pinned to one model folder on a free port, restartable on the same port."""

    def __init__(self, model: Path, log: Path) -> None:
        self.model = str(model)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "transformers.cli.transformers", "serve", self.model,
                   "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu"]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("transformers serve did not start within 180 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("smollm2")
    server = Server(packaged_smollm2_folder(folder), folder / "serve.log")
    server.start()
    yield server
    server.stop()


def served_board(server: Server, limit: int, **options: str) -> Board:
    return Board(
        name="served",
        tasks=["polarity"],
        models=[ModelEntry(f"openai:{server.model}")],
        data="demo",
        backend="cpu",
        limit=limit,
        bootstrap=0,
        task_options={"polarity": {"train_size": "0"}},
        model_options={"base_url": server.base_url, "max_new_tokens": "4", "concurrency": "2", **options},
    )


@pytest.mark.slow
def test_generate_and_parse_through_a_server_without_logprobs(host, server, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_KEY", SECRET)
    run_dir = tmp_path / "run"
    [row] = run_board(host, served_board(server, 6, api_key_env="HARNESS_TEST_KEY"), run_dir)["rows"]
    assert row["status"] == "ok", row["error"]
    assert row["n"] == 6 and row["extra"]["scoring_mode"] == ["generate"]
    records = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len({r["id"] for r in records}) == len(records) == 6
    raw = [json.loads(r["raw_text"]) for r in records]
    assert all(r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 for r in raw)
    assert row["extra"]["prompt_tokens"] == sum(r["prompt_tokens"] for r in raw)
    unparseable = [r for r in raw if not r["parsed"]]
    assert row["extra"]["unparseable"] == len(unparseable)
    for record, parsed in zip(
        records, raw, strict=True
    ):  # an unparseable answer names no label and is scored wrong
        if not parsed["parsed"]:
            assert record["probs"] == [0.0, 0.0] and record["pred"] is None and not record["correct"]
    # the key is read from the environment and written nowhere
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_a_model_the_server_does_not_serve_is_one_line(host, server, tmp_path):
    board = served_board(server, 2)
    board.models = [ModelEntry("openai:no-such-model")]
    [row] = run_board(host, board, tmp_path / "run")["rows"]
    assert row["status"] == "error" and "\n" not in row["error"]
    assert "HTTP 400" in row["error"] and "no-such-model" in row["error"]


class KillAfterFirstBatch:
    """Kills the server once, when the first batch's answers have reached the cache."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.done = False

    @hookimpl
    def on_batch_end(self, run, task, model, batch):
        if not self.done:
            self.done = True
            self.server.stop()


@pytest.mark.slow
def test_a_server_killed_mid_run_resumes_with_every_review_scored_once(host, server, tmp_path):
    cache = tmp_path / "cache.sqlite"
    with sqlite3.connect(cache) as conn:  # every committed prediction is logged, so a repeat would show
        conn.execute(SCHEMA)
        conn.execute("CREATE TABLE scored (text_key TEXT NOT NULL)")
        conn.execute("CREATE TRIGGER log_scored AFTER INSERT ON predictions BEGIN "
                     "INSERT INTO scored VALUES (new.text_key); END")  # fmt: skip
    conn.close()
    board = served_board(server, 8, max_retries="1")
    host.register(KillAfterFirstBatch(server), "killer")
    [first] = run_board(host, board, tmp_path / "first", cache_path=cache)["rows"]
    assert first["status"] == "error" and "cannot reach" in first["error"]
    server.start()
    [second] = run_board(host, board, tmp_path / "second", cache_path=cache)["rows"]
    assert second["status"] == "ok", second["error"]
    assert second["n"] == 8 and second["cached"] == 2 and second["computed"] == 6
    with sqlite3.connect(cache) as conn:
        logged, distinct = conn.execute("SELECT count(*), count(DISTINCT text_key) FROM scored").fetchone()
    assert logged == distinct == 8
    assert np.isclose(sum(1 for _ in (tmp_path / "second" / "predictions.jsonl").open()), 8)
