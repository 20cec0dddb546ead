"""The ray backend: the same board over two Ray actors predicts what the cpu backend predicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.boards import Board, ModelEntry
from harness.errors import HarnessError
from harness.plugin_manager import PluginHost
from harness.plugins.backends import ray_actors as ray_backend
from harness.run import run_board
from tests.tiny_encoders import build_distilbert

PLUGIN = "harness.plugins.backends.ray_actors"


def host_with_ray() -> PluginHost:
    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    if PLUGIN not in host.plugins:
        host.register(ray_backend, PLUGIN)
    return host


def predictions(run_dir: Path) -> dict[str, list[float]]:
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    return {record["id"]: record["probs"] for record in map(json.loads, lines)}


def test_options_are_checked_and_described() -> None:
    backend = ray_backend.make_ray({"actors": "3", "threads_per_actor": "2"})
    described = backend.describe()
    assert (described["backend"], described["actors"], described["threads"]) == ("ray", 3, 2)
    assert described["address"] == "local" and described["dtype"] == "float32"
    with pytest.raises(HarnessError, match="actors"):
        ray_backend.make_ray({"actors": "0"})
    with pytest.raises(HarnessError, match="dtype"):
        ray_backend.make_ray({"dtype": "int4"})


@pytest.mark.slow
def test_two_actors_predict_what_the_cpu_backend_predicts(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import ray

    checkpoint = build_distilbert(tmp_path / "distilbert")
    host = host_with_ray()
    runs = {}
    for backend in ("cpu", "ray"):
        board = Board(
            name=backend,
            tasks=["polarity"],
            models=[
                ModelEntry(f"hf-classifier:{checkpoint}", options={"batch_size": "4", "engine": "torch"})
            ],
            data="demo",
            backend=backend,
            backend_options={"actors": "2"} if backend == "ray" else {},
            limit=24,
            bootstrap=10,
        )
        try:
            results = run_board(host, board, tmp_path / backend)
        finally:
            if backend == "ray":
                ray.shutdown()
        [row] = results["rows"]
        assert row["status"] == "ok", row["error"]
        runs[backend] = (row, predictions(tmp_path / backend))
    cpu, (ray_row, distributed) = runs["cpu"][1], runs["ray"]
    assert ray_row["backend"]["backend"] == "ray" and ray_row["backend"]["actors"] == 2
    assert len(cpu) == 24 and cpu.keys() == distributed.keys()
    ids = sorted(cpu)
    expected = np.array([cpu[i] for i in ids])
    assert np.abs(expected - expected.mean(axis=0)).max() > 1e-3  # the model tells the reviews apart
    np.testing.assert_allclose(np.array([distributed[i] for i in ids]), expected, atol=1e-5)
