"""The served model against vLLM's CPU server, beside the in-process SmolLM2 on the same weights.

Left out of the default run (marked `served`): the server takes minutes to
start on a CPU. `make .venv-vllm/.installed` builds its environment, then
`pytest -m served tests/test_served_vllm.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.boards import Board, ModelEntry
from harness.run import run_board
from tests.openai_servers import SERVED_NAME, Server, vllm  # noqa: F401  (the session's server fixture)

pytestmark = [pytest.mark.served, pytest.mark.slow]
SPEC = f"openai:{SERVED_NAME}"
REVIEWS = 100


def board(server: Server, models: list[ModelEntry], **options: str) -> Board:
    return Board(
        name="vllm",
        tasks=["polarity"],
        models=models,
        data="demo",
        backend="cpu",
        limit=REVIEWS,
        bootstrap=0,
        task_options={"polarity": {"train_size": "200"}},
        model_options={"openai.base_url": server.base_url, "openai.tokenizer": "smollm2", **options},
    )


def predictions(run_dir: Path) -> dict[str, dict[str, dict]]:
    by_model: dict[str, dict[str, dict]] = {}
    for line in (run_dir / "predictions.jsonl").read_text().splitlines():
        record = json.loads(line)
        by_model.setdefault(record["model"], {})[record["id"]] = record
    return by_model


def agreement(a: dict[str, dict], b: dict[str, dict]) -> float:
    assert a.keys() == b.keys() and len(a) == REVIEWS
    return sum(a[review]["pred"] == b[review]["pred"] for review in a) / len(a)


@pytest.mark.parametrize(
    "protocol", [{"shots": "4", "calibrate": "train"}, {"shots": "0", "calibrate": "none"}]
)
def test_the_served_model_runs_the_in_process_experiment(host, vllm, tmp_path, protocol):  # noqa: F811
    in_process = ModelEntry("smollm2", options={"engine": "transformers"})
    served = ModelEntry(SPEC, options={"mode": "logprobs"})
    run_dir = tmp_path / "run"
    local, remote = run_board(host, board(vllm, [in_process, served], **protocol), run_dir)["rows"]
    assert local["status"] == remote["status"] == "ok", (local["error"], remote["error"])
    assert remote["extra"]["shots"] == int(protocol["shots"])
    assert remote["extra"]["calibration"].startswith(protocol["calibrate"])
    by_model = predictions(run_dir)
    assert agreement(by_model["smollm2"], by_model[SPEC]) >= 0.99


def test_completion_top_logprobs_at_the_default_cap_agrees_with_logprobs(host, vllm, tmp_path):  # noqa: F811
    rows = {}
    for mode in ("logprobs", "completion_top_logprobs"):
        entry = ModelEntry(SPEC, options={"mode": mode})
        [rows[mode]] = run_board(host, board(vllm, [entry], shots="0"), tmp_path / mode)["rows"]
        assert rows[mode]["status"] == "ok", rows[mode]["error"]
    listed = rows["completion_top_logprobs"]["extra"]
    assert listed["unparseable"] == 0 and "reviews_labels_not_listed" not in listed
    records = predictions(tmp_path / "completion_top_logprobs")[SPEC]
    raw = [json.loads(record["raw_text"]) for record in records.values()]
    assert all(r.get("top_logprobs", 20) <= 20 for r in raw)  # only what was sent is recorded
    assert listed["reviews_labels_scored_exactly"] == sum(1 for r in raw if r.get("labels_scored_exactly"))
    assert agreement(records, predictions(tmp_path / "logprobs")[SPEC]) >= 0.99


def test_generate_parses_the_answers(host, vllm, tmp_path):  # noqa: F811
    entry = ModelEntry(SPEC, options={"mode": "generate", "max_new_tokens": "8"})
    [row] = run_board(host, board(vllm, [entry], shots="4"), tmp_path / "run")["rows"]
    assert row["status"] == "ok", row["error"]
    assert row["extra"]["unparseable"] <= 0.1 * row["n"]
    assert row["extra"]["prompt_format"] == "text" and "parsed_leniently_share" in row["extra"]
