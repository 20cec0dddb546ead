"""The served model against vLLM's CPU server, beside the in-process SmolLM2 on the same weights, on 200
marc_en_dev polarity reviews.

Left out of the default run (marked `served`): the server takes minutes to
start on a CPU. `make .venv-vllm/.installed` builds its environment, then
`pytest -m served tests/test_served_vllm.py`. One board runs every row
once (both protocols in-process and served, each served mode); the tests
read its rows and predictions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.boards import Board, ModelEntry
from harness.plugin_manager import PluginHost
from harness.run import run_board
from tests.openai_servers import SERVED_NAME, Server, vllm  # noqa: F401  (the session's server fixture)

MARC = Path(__file__).resolve().parents[2] / "shared" / "data" / "marc_en_dev.jsonl"
# the first test's setup scores every row of the board, beside the server's start: longer than one test
pytestmark = [
    pytest.mark.served,
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(not MARC.is_file(), reason=f"{MARC} is not here (the shared review data)"),
]
SPEC = f"openai:{SERVED_NAME}"
REVIEWS = 200
FEW_SHOT = {"shots": "4", "calibrate": "train"}
ZERO_SHOT = {"shots": "0", "calibrate": "none"}
SERVED = {"base_url": "", "tokenizer": "smollm2"}  # base_url: the server's, once it is up
# name -> (spec, options): every row the tests read, scored in one run
ROWS: dict[str, tuple[str, dict[str, str]]] = {
    "local-4-shot": ("smollm2", {"engine": "transformers", **FEW_SHOT}),
    "served-4-shot": (SPEC, {"mode": "logprobs", **FEW_SHOT}),
    "local-0-shot": ("smollm2", {"engine": "transformers", **ZERO_SHOT}),
    "served-0-shot": (SPEC, {"mode": "logprobs", **ZERO_SHOT}),
    "served-top-logprobs": (SPEC, {"mode": "completion_top_logprobs", **ZERO_SHOT}),
    "served-generate": (SPEC, {"mode": "generate", "max_new_tokens": "8", "shots": "4"}),
}


@pytest.fixture(scope="module")
def scored(vllm: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:  # noqa: F811
    """Every row of ROWS on the same 200 reviews: the rows by name, and each row's predictions by review."""
    served = {**SERVED, "base_url": vllm.base_url}
    models = [
        ModelEntry(spec, name=name, options={**options, **(served if spec == SPEC else {})})
        for name, (spec, options) in ROWS.items()
    ]
    board = Board(
        name="vllm",
        tasks=["polarity"],
        models=models,
        data=str(MARC),
        backend="cpu",
        limit=REVIEWS,
        bootstrap=0,
    )
    run_dir = tmp_path_factory.mktemp("vllm-board")
    rows = run_board(PluginHost(env={"HARNESS_LOAD_PLUGINS": ""}), board, run_dir)["rows"]
    by_model: dict[str, dict[str, dict]] = {}
    for line in (run_dir / "predictions.jsonl").read_text().splitlines():
        record = json.loads(line)
        by_model.setdefault(record["model"], {})[record["id"]] = record
    yield {"rows": {row["model"]: row for row in rows}, "predictions": by_model}


def row(scored: dict[str, Any], name: str) -> dict[str, Any]:
    found = scored["rows"][name]
    assert found["status"] == "ok", found["error"]
    assert found["n"] == REVIEWS
    return found


def agreement(scored: dict[str, Any], a: str, b: str) -> float:
    first, second = scored["predictions"][a], scored["predictions"][b]
    assert first.keys() == second.keys() and len(first) == REVIEWS
    return sum(first[review]["pred"] == second[review]["pred"] for review in first) / len(first)


@pytest.mark.parametrize(
    ("local", "served", "protocol"),
    [("local-4-shot", "served-4-shot", FEW_SHOT), ("local-0-shot", "served-0-shot", ZERO_SHOT)],
    ids=["4-shot-calibrated", "0-shot-uncalibrated"],
)
def test_the_served_model_runs_the_in_process_experiment(scored, local, served, protocol):
    row(scored, local)
    remote = row(scored, served)["extra"]
    assert remote["shots"] == int(protocol["shots"])
    assert remote["calibration"].startswith(protocol["calibrate"])
    assert agreement(scored, local, served) >= 0.99


def test_completion_top_logprobs_at_the_default_cap_agrees_with_logprobs(scored):
    listed = row(scored, "served-top-logprobs")["extra"]
    assert listed["scoring_mode"] == ["completion_top_logprobs"]
    assert listed["unparseable"] == 0 and "reviews_labels_not_listed" not in listed
    raw = [json.loads(record["raw_text"]) for record in scored["predictions"]["served-top-logprobs"].values()]
    assert all(r.get("top_logprobs", 20) <= 20 for r in raw)  # only what was sent is recorded
    assert listed["reviews_labels_scored_exactly"] == sum(1 for r in raw if r.get("labels_scored_exactly"))
    assert agreement(scored, "served-top-logprobs", "served-0-shot") >= 0.99


def test_generate_parses_the_answers(scored):
    generated = row(scored, "served-generate")["extra"]
    assert generated["scoring_mode"] == ["generate"] and generated["shots"] == 4
    assert generated["unparseable"] <= 0.1 * REVIEWS
    assert generated["prompt_format"] == "text" and "parsed_leniently_share" in generated
