"""Metrics added to a run: `--metric NAME`, a board's `metrics`, and Hugging Face `evaluate` modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn import metrics as skm

from harness import cli as cli_module
from harness.boards import Board, ModelEntry
from harness.errors import HarnessError
from harness.metrics import defaults, resolve
from harness.run import run_board
from harness.tasks.category import CategoryTask

# A metric in the form the `evaluate` library loads from a local script: no hub needed.
SHARE_RIGHT = '''
import datasets
import evaluate


class ShareRight(evaluate.Metric):
    """Share of predictions equal to their reference."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Share of predictions equal to their reference.",
            citation="",
            inputs_description="predictions and references as label indices",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        return {"share_right": sum(p == r for p, r in zip(predictions, references)) / len(references)}
'''


def stored(run_dir: Path, task: str, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Gold label indices and probabilities as predictions.jsonl holds them."""
    records = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    records = [r for r in records if r["task"] == task]
    return np.array([labels.index(r["gold"]) for r in records]), np.array([r["probs"] for r in records])


def test_list_metrics_shows_the_built_in_ones():
    result = CliRunner().invoke(cli_module.cli, ["list", "metrics"])
    assert result.exit_code == 0
    listed = {line.split()[0]: line for line in result.output.splitlines()}
    for name in ("macro_f1", "accuracy", "accuracy_pos", "accuracy_neg", "top1", "top2", "top3", "map"):
        assert listed[name].endswith("[harness.tasks.builtin_metrics]")
    assert listed["ece"].endswith("[harness.tasks.builtin_metrics]")


def test_metrics_from_the_command_line_and_the_board_reach_every_export(tmp_path):
    board = tmp_path / "board.toml"
    board.write_text('tasks = ["category"]\nmodels = ["tfidf-logreg"]\nlimit = 40\nmetrics = ["accuracy"]\n')
    run_dir = tmp_path / "run"
    args = ["run", "--board", str(board), "--bootstrap", "30", "--out", str(run_dir)]
    result = CliRunner().invoke(cli_module.cli, [*args, "--metric", "ece", "--metric", "accuracy_pos"])
    assert result.exit_code == 0, result.output
    [row] = json.loads((run_dir / "results.json").read_text())["rows"]
    gold, probs = stored(run_dir, "category", CategoryTask({}).labels)
    assert row["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(gold, probs.argmax(axis=1)))
    low, high = row["intervals"]["accuracy"]
    assert low <= row["metrics"]["accuracy"] <= high
    assert row["added_metrics"] == [
        {"name": "accuracy", "higher_is_better": True},
        {"name": "ece", "higher_is_better": False},
    ]
    assert any("metric 'accuracy_pos' not computed: it needs exactly 2 labels" in n for n in row["notes"])
    views = {"text": ["--columns", "quality"]}  # the terminal's default view keeps the main metric only
    for fmt in ("text", "md", "csv", "json", "html"):
        args = ["leaderboard", str(run_dir), "--format", fmt, *views.get(fmt, [])]
        out = CliRunner().invoke(cli_module.cli, args)
        assert "accuracy" in out.output and "ece" in out.output, fmt
    csv_lines = CliRunner().invoke(cli_module.cli, ["leaderboard", str(run_dir), "--format", "csv"]).output
    header, line = csv_lines.splitlines()[:2]
    value = line.split(",")[header.split(",").index("accuracy")]
    assert value.startswith(f"{row['metrics']['accuracy']:.3f} ± ")


def test_unknown_metric_is_a_one_line_error_before_anything_runs(tmp_path):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli_module.cli, ["run", "--metric", "macro_f2", "--out", str(run_dir)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "unknown metric 'macro_f2'; did you mean 'macro_f1'?" in result.output
    assert not run_dir.exists()


def test_evaluate_module_from_a_local_script_is_computed_from_the_predictions(host, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    script = tmp_path / "share_right.py"
    script.write_text(SHARE_RIGHT)
    board = Board(name="h", tasks=["toy"], models=[ModelEntry("words")], data="toy:40", backend="cpu",
                  bootstrap=20, metrics=[f"evaluate:{script}"])  # fmt: skip
    [row] = run_board(host, board, tmp_path / "run")["rows"]
    gold, probs = stored(tmp_path / "run", "toy", ("negative", "positive"))
    assert row["metrics"]["evaluate:share_right"] == pytest.approx(np.mean(probs.argmax(axis=1) == gold))
    assert row["metrics"]["evaluate:share_right"] == pytest.approx(row["metrics"]["accuracy"])
    low, high = row["intervals"]["evaluate:share_right"]
    assert low <= row["metrics"]["evaluate:share_right"] <= high
    assert row["added_metrics"] == [{"name": "evaluate:share_right", "higher_is_better": True}]
    module_dir = tmp_path / "share_right"  # a directory holding <name>.py loads too
    module_dir.mkdir()
    (module_dir / "share_right.py").write_text(SHARE_RIGHT)
    [metric] = resolve([f"evaluate:{module_dir}"], host.registries.metrics)
    assert metric.name == "evaluate:share_right" and metric.description.startswith("Share of predictions")


def test_evaluate_module_that_cannot_load_is_a_one_line_error(host, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import evaluate\nraise RuntimeError('half-written metric')\n")
    with pytest.raises(HarnessError, match="cannot be loaded") as raised:
        resolve([f"evaluate:{broken}"], host.registries.metrics)
    assert "\n" not in str(raised.value)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--metric", "evaluate:accuracy", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    assert "metric 'evaluate:accuracy' cannot be loaded" in line and "local evaluate module" in line
    assert not (tmp_path / "r").exists()


def test_a_metric_registered_as_something_else_is_refused_with_the_plugin_named(host):
    from harness import Metric
    from harness.hookspecs import hookimpl

    class SloppyPlugin:
        @hookimpl
        def register_metrics(self, register):
            register("half", lambda gold, probs, labels: 0.5)
            register("renamed", Metric("other", lambda gold, probs, labels: 0.5))

    host.register(SloppyPlugin(), "sloppy")
    for name in ("half", "renamed"):
        with pytest.raises(HarnessError, match=f"plugin 'sloppy' registered metric '{name}' as "):
            resolve([name], host.registries.metrics)
    assert [m.name for m in defaults(host.registries.metrics, "polarity", 2)][:2] == [
        "accuracy",
        "accuracy_neg",
    ]


def test_a_row_reads_every_metric_from_its_runs_registry_never_the_process_wide_one(
    host, tmp_path, monkeypatch
):
    from harness import plugin_manager
    from harness.hookspecs import hookimpl
    from harness.metrics import Metric, RegisteredMetrics
    from harness.plugin_manager import PluginHost
    from tests.fakes import ToyTask

    class RegisteredToy(RegisteredMetrics, ToyTask):
        name = "toy-registered"

    def share_positive(gold, probs, labels):
        return float(np.mean(probs.argmax(axis=1) == 1))

    class Metrics:
        def __init__(self, metric: str) -> None:
            self.metric = metric

        @hookimpl
        def register_tasks(self, register):
            register(
                "toy-registered", lambda options: RegisteredToy(), description="toy task, registered metrics"
            )

        @hookimpl
        def register_metrics(self, register):
            register(self.metric, Metric(self.metric, share_positive, tasks=("toy-registered",)))

    host.register(Metrics("hits"), "run-metrics")
    elsewhere = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    elsewhere.register(Metrics("stray"), "process-metrics")
    monkeypatch.setattr(plugin_manager, "_host", elsewhere)
    board = Board(name="h", tasks=["toy-registered"], models=[ModelEntry("words")], data="toy:40",
                  backend="cpu", bootstrap=20)  # fmt: skip
    [row] = run_board(host, board, tmp_path / "run")["rows"]
    assert row["status"] == "ok", row["error"]
    assert set(row["metrics"]) == set(row["intervals"]) == {"hits"}
    gold, probs = stored(tmp_path / "run", "toy-registered", ("negative", "positive"))
    assert row["metrics"]["hits"] == pytest.approx(share_positive(gold, probs, ()))
