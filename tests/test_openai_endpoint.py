"""The `openai:` model family against real OpenAI-compatible servers started here, on free local ports.

`transformers serve` ignores `logprobs`, so `auto` settles on
generate-and-parse there; llama-cpp-python's server, serving the packaged
SmolLM2 GGUF behind an API key, answers both log-probability modes
(tests/openai_servers.py). The response readers are also checked on answers
shaped as the OpenAI API documents them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness import RunSettings
from harness.boards import Board, ModelEntry
from harness.cache import SCHEMA
from harness.hookspecs import hookimpl
from harness.options import OptionError
from harness.plugins.clients.openai import EndpointClient, EndpointError, RateLimiter, retry_after
from harness.plugins.models.openai_endpoint import (
    endpoint_stats,
    first_label_word,
    label_logprob,
    make_endpoint,
    scores_from_top_logprobs,
)
from harness.run import run_board
from tests.openai_servers import (
    SERVED_NAME,
    Server,
    free_port,
    llama_cpp_server,
    packaged_smollm2_folder,
    transformers_server,
)
from tests.tiny_t5 import make_context

SECRET = "sk-test-d0-not-write-me-3f9a1c"


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


def test_label_logprob_finds_the_label_when_the_generated_stop_token_is_not_listed():
    answer = {
        "choices": [
            {"logprobs": {"tokens": ["Answer", ":", " positive"], "token_logprobs": [None, -0.5, -1.5]}}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},  # the stop token it generated is left out
    }
    assert label_logprob(answer, " positive") == pytest.approx(-1.5)
    del answer["usage"]["prompt_tokens"]
    assert label_logprob(answer, " positive") == pytest.approx(-1.5)


def test_label_logprob_is_the_prompts_label_not_a_generated_repeat_of_it():
    answer = {
        "choices": [
            {"logprobs": {"tokens": [":", " positive", " positive"], "token_logprobs": [-0.5, -1.5, -0.1]}}
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1},
    }
    assert label_logprob(answer, " positive") == pytest.approx(-1.5)


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


def test_after_the_raw_prompt_a_label_that_is_one_listed_token_scores_that_token():
    top = [("\n", -1.2), (" Positive", -2.5), (" positive", -2.77), (" negative", -3.04)]
    assert scores_from_top_logprobs(top, ("negative", "positive")).tolist() == [-3.04, -2.5]  # any case
    assert scores_from_top_logprobs(top, ("negative", "positive"), exact=True).tolist() == [-3.04, -2.77]


def test_logit_bias_is_a_json_object_of_token_ids(tmp_path):
    assert make_endpoint("m", make_context(tmp_path, logit_bias='{"2": -100}')).logit_bias == {"2": -100.0}
    with pytest.raises(OptionError, match="logit_bias"):
        make_endpoint("m", make_context(tmp_path, logit_bias="[2]"))


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


def test_latency_is_per_request_apart_from_per_review_and_overhead_tokens_are_charged():
    records = [
        {"mode": "logprobs", "parsed": True, "prompt_tokens": 10, "completion_tokens": 2, "seconds": 3.0,
         "request_seconds": [1.0, 2.0]},
        {"mode": "logprobs", "parsed": True, "prompt_tokens": 10, "completion_tokens": 2, "seconds": 5.0,
         "request_seconds": [2.0, 3.0]},
    ]  # fmt: skip
    overhead = {"probe_prompt_tokens": 30, "calibration_completion_tokens": 4}
    stats = endpoint_stats([json.dumps(r) for r in records], 1.0, 10.0, overhead=overhead)
    assert stats["requests"] == 4 and stats["request_latency_p50_s"] == pytest.approx(2.0)
    assert stats["review_seconds_p50"] == pytest.approx(4.0)
    assert stats["probe_prompt_tokens"] == 30 and stats["prompt_tokens"] == 20
    assert stats["token_cost_usd"] == pytest.approx(((20 + 30) * 1.0 + (4 + 4) * 10.0) / 1e6)
    assert "parsed_leniently" not in stats  # scored label likelihoods parse nothing


@pytest.mark.parametrize(
    ("answer", "label"),
    [("Negative\n\nSentence: good", 1), ("The sentiment of the sentence is negative.", 1),
     ("positive, not negative", 0), ("POSITIVE!", 0), ("positively unclear", None), ("", None)],
)  # fmt: skip
def test_a_generated_answer_names_the_first_label_word_in_it(answer, label):
    assert first_label_word(answer, ["positive", "negative"]) == label


def test_served_demonstrations_are_the_in_process_ones(tmp_path):
    """Drawn by the same function with the same seed and tokenizer, from the same train reviews."""
    from harness.plugins.models.causal_lm import make_smollm2
    from harness.types import Example

    train = [Example(id=f"r{i}", text=f"Review number {i} says " + "good " * (i % 30), label=i % 2)
             for i in range(60)]  # fmt: skip
    served = make_endpoint("smollm2", make_context(tmp_path, shots="4", tokenizer="smollm2", mode="generate"))
    in_process = make_smollm2(None, make_context(tmp_path, shots="4"))
    in_process._load_tokenizer()
    task = SimpleNamespace(fingerprint=lambda: "t")
    served.fit(train, task)
    demos = served._demos["t"]
    assert len(demos) == 4 and demos == in_process.choose_demonstrations(train, task)
    with pytest.raises(OptionError, match="shots=4 needs tokenizer="):
        make_endpoint("smollm2", make_context(tmp_path, shots="4"))


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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("smollm2")
    server = transformers_server(packaged_smollm2_folder(folder))
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
def test_a_served_model_runs_the_in_process_protocol_with_demonstrations(host, server, tmp_path):
    """`openai:NAME.shots=4` reaches the served row (its fingerprint changes, nothing comes from the cache);
    the answers are generated after the in-process prompt text on /completions and parsed."""
    spec = f"openai:{server.model}"
    board = served_board(server, 6)
    board.task_options = {"polarity": {"train_size": "40"}}
    cache = tmp_path / "cache.sqlite"
    [plain] = run_board(host, board, tmp_path / "plain", RunSettings(cache_path=cache))["rows"]
    board.model_options = {**board.model_options, f"{spec}.shots": "4", f"{spec}.tokenizer": "smollm2"}
    [shown] = run_board(host, board, tmp_path / "shots", RunSettings(cache_path=cache))["rows"]
    assert plain["status"] == shown["status"] == "ok", (plain["error"], shown["error"])
    assert shown["cached"] == 0 and shown["computed"] == 6
    assert (plain["extra"]["shots"], shown["extra"]["shots"]) == (0, 4)
    assert shown["extra"]["prompt_format"] == "text" and shown["extra"]["scoring_mode"] == ["generate"]
    raw = [json.loads(r["raw_text"]) for r in predictions_by_model(tmp_path / "shots")[spec].values()]
    assert shown["extra"]["unparseable"] == sum(1 for r in raw if not r["parsed"])
    assert shown["extra"]["parsed_leniently"] == sum(1 for r in raw if r.get("lenient"))
    assert shown["extra"]["requests"] == 6 and all(len(r["request_seconds"]) == 1 for r in raw)
    assert shown["extra"]["unparseable"] < 6  # the demonstrations show the answer's form
    [again] = run_board(host, board, tmp_path / "again", RunSettings(cache_path=cache))["rows"]
    assert again["cached"] == 6 and again["extra"]["shots"] == 4


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
    [first] = run_board(host, board, tmp_path / "first", RunSettings(cache_path=cache))["rows"]
    assert first["status"] == "error" and "cannot reach" in first["error"]
    server.start()
    [second] = run_board(host, board, tmp_path / "second", RunSettings(cache_path=cache))["rows"]
    assert second["status"] == "ok", second["error"]
    assert second["n"] == 8 and second["cached"] == 2 and second["computed"] == 6
    with sqlite3.connect(cache) as conn:
        logged, distinct = conn.execute("SELECT count(*), count(DISTINCT text_key) FROM scored").fetchone()
    assert logged == distinct == 8
    assert np.isclose(sum(1 for _ in (tmp_path / "second" / "predictions.jsonl").open()), 8)


# --- against llama-cpp-python's server: the two log-probability modes ---------------------------


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = llama_cpp_server(tmp_path_factory.mktemp("llama-server"), api_key=SECRET)
    server.start()
    yield server
    server.stop()


def keyed_board(server: Server, limit: int, models: list[ModelEntry], **options: str) -> Board:
    return Board(
        name="served",
        tasks=["polarity"],
        models=models,
        data="demo",
        backend="cpu",
        limit=limit,
        bootstrap=0,
        task_options={"polarity": {"train_size": "0"}},
        model_options={"openai.base_url": server.base_url, "openai.api_key_env": "HARNESS_TEST_KEY",
                       **{f"openai.{key}": value for key, value in options.items()}},
    )  # fmt: skip


def smollm2_end_token() -> int:
    import gguf

    from harness.plugins.models.causal_lm import packaged_smollm2

    field = gguf.GGUFReader(str(packaged_smollm2())).fields["tokenizer.ggml.eos_token_id"]
    return int(field.parts[field.data[0]][0])


def predictions_by_model(run_dir: Path) -> dict[str, dict[str, dict]]:
    records = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    by_model: dict[str, dict[str, dict]] = {}
    for record in records:
        by_model.setdefault(record["model"], {})[record["id"]] = record
    return by_model


@pytest.mark.slow
def test_a_served_gguf_scores_labels_as_the_in_process_engine_does(host, llama_server, tmp_path, monkeypatch):
    """Same weights (the float32 copy of the packaged GGUF), same prompt, no demonstrations or calibration:
    the served label probabilities are the in-process llama.cpp engine's. Two alternatives leave a label
    out; those reviews are asked again with more, until both labels are listed."""
    monkeypatch.setenv("HARNESS_TEST_KEY", SECRET)
    in_process = ModelEntry("smollm2", options={"engine": "llama.cpp", "shots": "0", "calibrate": "none"})
    # this server lists no alternatives when the first token is the end token: biased away, it answers
    board = keyed_board(llama_server, 4, [ModelEntry(f"openai:{SERVED_NAME}"), in_process],
                        logit_bias=json.dumps({smollm2_end_token(): -100}), top_logprobs="2")  # fmt: skip
    run_dir = tmp_path / "run"
    served, local = run_board(host, board, run_dir)["rows"]
    assert served["status"] == local["status"] == "ok", (served["error"], local["error"])
    # what `auto` found: this server's echo scores each token by the distribution after it, so it is
    # refused, and the next token's alternatives after the same prompt score the one-token labels
    assert served["extra"]["scoring_mode"] == ["completion_top_logprobs"]
    by_model = predictions_by_model(run_dir)
    remote, here = by_model[f"openai:{SERVED_NAME}"], by_model["smollm2"]
    assert remote.keys() == here.keys() and len(remote) == 4
    for review, record in remote.items():  # measured on 200 marc reviews: at most 0.001 apart
        assert np.allclose(record["probs"], here[review]["probs"], atol=0.005), review
        if abs(np.diff(here[review]["probs"])[0]) > 0.01:  # a near tie may fall either way
            assert record["pred"] == here[review]["pred"], review
    raw = [json.loads(record["raw_text"]) for record in remote.values()]
    assert all(r["prompt_tokens"] > 0 and r["parsed"] for r in raw)
    assert any(r.get("top_logprobs", 2) > 2 for r in raw), "a review was asked again with more alternatives"
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_first_answer_token_top_logprobs_on_the_chat_endpoint(host, llama_server, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_KEY", SECRET)
    board = keyed_board(llama_server, 6, [ModelEntry(f"openai:{SERVED_NAME}")], mode="top_logprobs")
    run_dir = tmp_path / "run"
    [row] = run_board(host, board, run_dir)["rows"]
    assert row["status"] == "ok", row["error"]
    assert row["extra"]["scoring_mode"] == ["top_logprobs"]
    records = list(predictions_by_model(run_dir)[f"openai:{SERVED_NAME}"].values())
    raw = [json.loads(record["raw_text"]) for record in records]
    assert row["extra"]["unparseable"] == sum(1 for r in raw if not r["parsed"])
    for record, answer in zip(records, raw, strict=True):
        if answer["parsed"]:  # a distribution over the labels from the listed tokens
            assert sum(record["probs"]) == pytest.approx(1.0) and record["pred"] is not None
        else:  # no listed token starts a label: no label, scored wrong
            assert record["probs"] == [0.0, 0.0] and record["pred"] is None and not record["correct"]


@pytest.mark.slow
def test_a_wrong_key_is_one_line_naming_the_option(host, llama_server, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_KEY", "sk-not-the-servers-key")
    [row] = run_board(host, keyed_board(llama_server, 2, [ModelEntry(f"openai:{SERVED_NAME}")]), tmp_path)[
        "rows"
    ]
    assert row["status"] == "error" and "\n" not in row["error"]
    assert "HTTP 401" in row["error"] and "api_key_env" in row["error"]


@pytest.mark.slow
def test_minilm_a_served_smollm2_and_their_hybrid_print_cost_and_latency(
    host, llama_server, tmp_path, monkeypatch
):
    from click.testing import CliRunner

    from harness import cli as cli_module
    from harness import plugin_manager

    monkeypatch.setattr(plugin_manager, "_host", host)
    monkeypatch.setenv("HARNESS_TEST_KEY", SECRET)
    served = f"openai:{SERVED_NAME}"
    args = ["run", "--backend", "cpu", "--task", "polarity", "--data", "demo", "--limit", "12",
            "--task-option", "train_size=32", "--model-option", "minilm.epochs=1",
            "--model", "minilm", "--model", served, "--model", f"hybrid:minilm>{served}@confidence:0.9",
            "--model-option", f"openai.base_url={llama_server.base_url}",
            "--model-option", "openai.api_key_env=HARNESS_TEST_KEY", "--price-per-hour", "0.40",
            # a server that answers the end token lists no alternatives; biased away, every answer parses
            "--model-option", f"openai.logit_bias={json.dumps({smollm2_end_token(): -100})}",
            "--model-option", "openai.price_in=0.10", "--model-option", "openai.price_out=0.40",
            "--out", str(tmp_path / "run")]  # fmt: skip
    result = CliRunner().invoke(cli_module.cli, [*args, "--wide"])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "macro-F1" in line)
    assert "cost ($)" in header and "$ per 1,000 reviews" in header and "latency p50/p95" in header
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert [row["status"] for row in rows] == ["ok", "ok", "ok"]
    minilm, large, hybrid = rows
    assert large["extra"]["token_cost_usd"] > 0 and large["cost"]["usd"] == large["extra"]["token_cost_usd"]
    assert hybrid["extra"]["escalated"] > 0  # some reviews went to the served model


@pytest.mark.slow
def test_the_bench_part_compares_the_served_model_with_both_in_process_engines(
    llama_server, tmp_path, monkeypatch
):
    from harness.plugins.bench._served import served

    assert "--served-url" in served(["x"], tmp_path, None, SERVED_NAME, {})["skipped"]
    monkeypatch.setenv("HARNESS_TEST_KEY", SECRET)
    texts = ["Great blender, works perfectly.", "Broke after two days. Do not buy.", "Not bad at all."]
    options = {"api_key_env": "HARNESS_TEST_KEY", "logit_bias": json.dumps({smollm2_end_token(): -100})}
    report = served(texts, tmp_path, llama_server.base_url, SERVED_NAME, options)
    assert report["scoring_mode"] == "completion_top_logprobs" and report["reviews"] == 3
    assert set(report["reviews_per_s"]) == {"served", "llama.cpp", "transformers"}
    for figures in report["against"].values():
        assert 0.0 <= figures["argmax_agreement"] <= 1.0 and figures["max_abs_prob_diff"] >= 0.0
    assert report["against"]["llama.cpp"]["max_abs_prob_diff"] <= 0.005  # the same float32 weights


def board_problems(host, models: list[str], **options: str) -> list[str]:
    from harness.board_checks import board_problems

    board = Board(name="t", tasks=["polarity"], models=[ModelEntry(m) for m in models], data="demo",
                  model_options=options)  # fmt: skip
    return board_problems(board, host.registries)


def test_a_served_model_named_like_a_family_is_planned_with_its_own_options(host):
    """`openai:smollm2` serves a model called smollm2: its options are the openai family's."""
    models = ["smollm2", "openai:smollm2"]
    [problem] = board_problems(host, models, **{"openai:smollm2.gguf_file": "x.gguf"})
    assert "model 'openai:smollm2' has no option 'gguf_file'" in problem and "base_url" in problem
    for name in ("smollm2", "gpt-4.1", "llama3:8b"):
        [problem] = board_problems(host, [f"openai:{name}"], foo="1")
        assert "read no option 'foo'" in problem and "base_url" in problem and "gguf_file" not in problem
    assert (
        board_problems(host, models, **{"openai.top_logprobs": "5", "smollm2.engine": "transformers"}) == []
    )


def test_an_unscoped_option_two_families_read_differently_must_name_its_model(host):
    [problem] = board_problems(host, ["smollm2", "openai:smollm2"], mode="generate")
    assert "'mode' means different things" in problem
    assert "openai.mode=generate" in problem and "smollm2.mode=generate" in problem
    assert board_problems(host, ["openai:smollm2"], mode="generate") == []
    assert board_problems(host, ["smollm2", "openai:smollm2"], **{"openai.mode": "generate"}) == []
    # an option that cannot change predictions may mean different things (an engine's name)
    assert board_problems(host, ["smollm2", "minilm"], engine="auto") == []
