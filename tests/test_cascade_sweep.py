"""Three-model sweeps: replayed pairs of thresholds match a nested hybrid, and no model runs."""

from __future__ import annotations

import csv
import io
import json

import click
import numpy as np
import pytest
from click.testing import CliRunner

from harness import plugin_manager
from harness.boards import Board, ModelEntry
from harness.plugins.routing import _cascade as cascade
from harness.plugins.routing import sweep
from harness.plugins.routing.routers import max_probability
from harness.run import run_board
from tests.toy_pair_models import PairPlugin, records

MODELS = ["cheap", "boastful", "sharp"]


@pytest.fixture
def pair_plugin(host) -> PairPlugin:
    plugin = PairPlugin()
    host.register(plugin, "pair-plugin")
    return plugin


def test_a_replayed_pair_equals_the_nested_hybrid_the_runner_builds(host, pair_plugin, tmp_path):
    nested = "hybrid:cheap>boastful>sharp@confidence:0.95"
    board = Board(name="t", tasks=["toy"], data="toy:300", backend="cpu", bootstrap=0,
                  models=[ModelEntry(spec) for spec in [*MODELS, nested]])  # fmt: skip
    run_board(host, board, tmp_path)
    task = host.registries.tasks.get("toy").obj({})
    three = cascade.read_cascade(tmp_path / "predictions.jsonl", "toy", task.labels, MODELS)
    scores = [max_probability(probs) for probs in three.probs[:2]]
    point = cascade.cascade_point(three, scores, 0.95, 0.95, task.metrics)
    hybrid = np.array([r["probs"] for r in records(tmp_path, nested)])
    assert 0 < point.share_third < point.share_second < 1
    assert point.metrics == pytest.approx(task.metrics(three.gold, hybrid))


def test_three_model_sweep_from_a_finished_run_calls_no_model_and_writes_its_frontier(host, pair_plugin, tmp_path,
                                                                                      monkeypatch):  # fmt: skip
    run_board(host, Board(name="t", tasks=["toy"], data="toy:300", backend="cpu", bootstrap=0,
                          models=[ModelEntry(spec) for spec in MODELS]), tmp_path)  # fmt: skip
    made = len(pair_plugin.made)
    monkeypatch.setattr(plugin_manager, "_host", host)

    @click.group()
    def cli():
        pass

    sweep.register_commands(cli)
    out = tmp_path / "cascade"
    args = [
        "sweep",
        *MODELS,
        "--task",
        "toy",
        "--from-run",
        str(tmp_path),
        "--shares",
        "0:1:0.1",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert len(pair_plugin.made) == made  # not one model built, so none called
    assert "frontier" in result.output and "of the gap" in result.output
    shown = result.output[: result.output.index("wrote ")]
    assert max(len(line) for line in shown.splitlines()) <= 80 and "…" not in shown  # fits, nothing cut
    rows = list(csv.DictReader(io.StringIO((out / "cascade.csv").read_text())))
    assert len(rows) > 50  # up to 11 x 11 pairs, fewer where ties merge thresholds
    frontier = sorted((r for r in rows if r["frontier"] == "1"), key=lambda r: float(r["runtime_s"]))
    quality = [float(r["accuracy"]) for r in frontier]
    assert len(frontier) >= 2 and quality == sorted(quality)
    assert json.loads((out / "cascade.json").read_text())["models"] == MODELS
    assert (out / "cascade.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    refused = CliRunner().invoke(cli, [*args, "--guarantee", "accuracy>=0.9"])
    assert refused.exit_code != 0 and "need two models" in str(refused.exception)


def test_the_written_board_runs_each_picked_cascade_as_the_sweep_replayed_it(host, pair_plugin, tmp_path,
                                                                              monkeypatch):  # fmt: skip
    from harness.boards import load_board

    run_board(host, Board(name="t", tasks=["toy"], data="toy:300", backend="cpu", bootstrap=0, limit=150,
                          models=[ModelEntry(spec) for spec in MODELS]), tmp_path)  # fmt: skip
    monkeypatch.setattr(plugin_manager, "_host", host)

    @click.group()
    def cli():
        pass

    sweep.register_commands(cli)
    out = tmp_path / "cascade"
    args = ["sweep", *MODELS, "--task", "toy", "--from-run", str(tmp_path), "--shares", "0:1:0.1", "--out", str(out),
            "--write-board"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    board = load_board(out / "cascade-board.toml")
    assert (board.data, board.limit, board.tasks) == ("toy:300", 150, ["toy"])
    picked = json.loads((out / "cascade.json").read_text())["best_for"]
    hybrids = [entry for entry in board.models if entry.spec.startswith("hybrid:")]
    assert [entry.spec for entry in board.models[:3]] == MODELS and hybrids
    results = run_board(host, board, tmp_path / "board")
    rows = {row["model"]: row for row in results["rows"]}
    for entry in hybrids:
        fraction = entry.label.split(" for ")[1].split(" of")[0]
        best = picked[fraction]
        row = rows[entry.spec]
        assert row["metrics"]["accuracy"] == pytest.approx(best["metrics"]["accuracy"])
        answered = row["extra"]["stage_answered"]
        assert answered[1] + answered[2] == round(best["share_second"] * row["n"])
        assert answered[2] == round(best["share_third"] * row["n"])
    refused = CliRunner().invoke(cli, ["sweep", "cheap", "sharp", "--task", "toy", "--from-run", str(tmp_path),
                                       "--write-board"])  # fmt: skip
    assert refused.exit_code != 0 and "three models" in str(refused.exception)
