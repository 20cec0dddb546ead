"""Engine-choosing runs twice over, and the check that the second read the first's measured choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.plugins.engines import choice as engine_choice


def run_twice_rows(spec: str, tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Two runs of one engine-choosing model (fp32): the second must read the first's cached choice."""
    from harness import RunSettings
    from harness.boards import Board, ModelEntry
    from harness.plugin_manager import PluginHost
    from harness.run import run_board

    board = Board(
        name="engines",
        tasks=["polarity"],
        models=[ModelEntry(spec, options={"precision": "fp32", "measure": "always"})],
        data="demo",
        backend="cpu",
        limit=40,
        bootstrap=20,
        task_options={"polarity": {"train_size": "0"}},
    )
    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    first = run_board(host, board, tmp_path / "first", RunSettings(model_dir=model_dir))["rows"][0]

    def no_timing(*args: object, **kwargs: object) -> None:
        raise AssertionError("the second run timed the engines again")

    monkeypatch.setattr(engine_choice, "measure", no_timing)
    second = run_board(host, board, tmp_path / "second", RunSettings(model_dir=model_dir))["rows"][0]
    return [first, second]


def assert_measured_once_then_cached(first: dict, second: dict, model_dir: Path) -> str:
    """The first run's row measured every fp32 engine and chose the fastest; the second read that choice
    back; the decision file names it and the machine. Returns the chosen engine."""
    assert first["status"] == second["status"] == "ok", (first["error"], second["error"])
    timings = first["extra"]["engine_timings"]
    assert first["extra"]["engine_choice"] == "measured"
    assert set(timings) == {"torch-fp32", "openvino-fp32", "onnxruntime-fp32"}
    assert all(row["reviews_per_s"] > 0 and row["argmax_agreement"] >= 0.995 for row in timings.values())
    chosen = first["extra"]["engine"]
    assert timings[chosen]["reviews_per_s"] == max(row["reviews_per_s"] for row in timings.values())
    assert second["extra"]["engine_choice"] == "cached"
    assert (second["extra"]["engine"], second["extra"]["engine_timings"]) == (chosen, timings)
    recorded = json.loads(next((model_dir / "engines").glob("choice-*.json")).read_text())
    assert recorded["choice"] == chosen and recorded["machine"] == engine_choice.machine()
    return chosen
