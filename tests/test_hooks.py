"""One test per hook spec (test_plugins.py checks that none is missing)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from harness import Metric
from harness.boards import Board, ModelEntry
from harness.hookspecs import hookimpl
from harness.run import run_board
from harness.types import Exporter


def board(**overrides) -> Board:
    fields = dict(
        name="h", tasks=["toy"], models=[ModelEntry("words")], data="toy:20", backend="cpu", bootstrap=0
    )
    fields.update(overrides)
    return Board(**fields)


def test_hook_register_models(host):
    entry = host.registries.models.get("words")
    assert entry.plugin == "toy-plugin" and entry.description == "toy word model"


def test_hook_register_tasks(host):
    task = host.registries.tasks.get("toy").obj({})
    assert task.labels == ("negative", "positive")


def test_hook_register_sources(host, tmp_path):
    results = run_board(host, board(), tmp_path)
    assert results["rows"][0]["n"] > 0


def test_hook_register_routers(host):
    class Always:
        name = "always"

        def escalate(self, probs):
            return np.ones(len(probs), dtype=bool)

    class RouterPlugin:
        @hookimpl
        def register_routers(self, register):
            register("always", lambda param: Always())

    host.register(RouterPlugin(), "router-plugin")
    router = host.registries.routers.get("always").obj(None)
    assert router.escalate(np.array([[0.99, 0.01]])).tolist() == [True]


def test_hook_register_backends(host, tmp_path):
    class Recorder:
        name, device, dtype = "recorder", "cpu", "float32"
        synced = 0

        def setup(self):
            pass

        def synchronize(self):
            Recorder.synced += 1

        def describe(self):
            return {"backend": "recorder", "device": "cpu"}

    class BackendPlugin:
        @hookimpl
        def register_backends(self, register):
            register("recorder", lambda options: Recorder())

    host.register(BackendPlugin(), "backend-plugin")
    results = run_board(host, board(backend="recorder"), tmp_path)
    assert results["backend"] == {"backend": "recorder", "device": "cpu"}
    assert Recorder.synced >= 2  # before and after every timed batch


def test_hook_register_exporters(host, tmp_path):
    class ExporterPlugin:
        @hookimpl
        def register_exporters(self, register):
            register("count", Exporter("txt", lambda rows: f"{len(rows)} rows"))

    host.register(ExporterPlugin(), "exporter-plugin")
    run_board(host, board(), tmp_path)
    from harness.results import leaderboard_rows

    assert host.registries.exporters.get("count").obj.render(leaderboard_rows([tmp_path])) == "1 rows"


def test_hook_register_boards(host, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('tasks = ["toy"]\nmodels = ["words"]\ndata = "toy:10"\n')

    class BoardPlugin:
        @hookimpl
        def register_boards(self, register):
            register("mine", path, description="a plugin's board")

    host.register(BoardPlugin(), "board-plugin")
    assert host.registries.boards.get("mine").obj == path
    assert "default" in host.registries.boards


def test_hook_register_metrics(host, tmp_path):
    def brier(gold, probs, labels):
        return float(np.mean(np.sum((probs - np.eye(len(labels))[gold]) ** 2, axis=1)))

    class MetricPlugin:
        @hookimpl
        def register_metrics(self, register):
            metric = Metric("brier", brier, higher_is_better=False, tasks=("toy",))
            register("brier", metric, description="mean squared error of the probabilities")

    host.register(MetricPlugin(), "metric-plugin")
    assert host.registries.metrics.get("brier").plugin == "metric-plugin"
    [row] = run_board(host, board(bootstrap=50), tmp_path)["rows"]  # not asked for: the metric names the task
    stored = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    labels = ("negative", "positive")
    gold = np.array([labels.index(p["gold"]) for p in stored])
    probs = np.array([p["probs"] for p in stored])
    assert row["metrics"]["brier"] == pytest.approx(brier(gold, probs, labels))
    low, high = row["intervals"]["brier"]
    assert low <= row["metrics"]["brier"] <= high
    assert row["added_metrics"] == [{"name": "brier", "higher_is_better": False}]
    assert "accuracy" in row["metrics"]  # the task's own metrics stay


def test_hook_register_commands(host, monkeypatch):
    import click

    from harness import cli as cli_module

    class CommandPlugin:
        @hookimpl
        def register_commands(self, cli):
            @cli.command(name="hello-hook")
            def hello():
                click.echo("hello from a plugin")

    host.register(CommandPlugin(), "command-plugin")
    group = click.Group(commands=dict(cli_module.cli.commands))
    host.add_commands(group)
    result = CliRunner().invoke(group, ["hello-hook"])
    assert result.output == "hello from a plugin\n"


def test_hook_on_run_start(host, toy_plugin, tmp_path):
    run_board(host, board(), tmp_path)
    kind, run = toy_plugin.events[0]
    assert kind == "start" and run.run_dir == tmp_path and run.board.name == "h"


def test_hook_on_batch_end(host, toy_plugin, tmp_path):
    results = run_board(host, board(), tmp_path)
    batches = [payload for kind, payload in toy_plugin.events if kind == "batch"]
    assert batches and batches[-1].done == results["rows"][0]["n"]
    assert all(b.seconds >= 0 and b.size > 0 for b in batches)


def test_hook_on_run_end(host, toy_plugin, tmp_path):
    results = run_board(host, board(), tmp_path)
    kind, payload = toy_plugin.events[-1]
    assert kind == "end" and payload["rows"] == results["rows"]
    assert (tmp_path / "results.json").exists()  # written before the hook runs
