"""A model that fails on some reviews: the row names them, keeps the model's traceback, and an error budget
lets a row lose a few reviews (listed by id) instead of all of them."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner

from harness import RunSettings
from harness import cli as cli_module
from harness.boards import Board, ModelEntry, board_from_dict
from harness.budget import ErrorBudget
from harness.errors import HarnessError
from harness.progress import LogProgress
from harness.run import run_board
from tests.fakes import ProgressRecorder


def board(max_errors: str = "0", fail_on: str = "review 41 ", **options: str) -> Board:
    entry = ModelEntry("words", options={"fail_on": fail_on, "batch_size": "8", **options})
    return Board(name="t", tasks=["toy"], models=[entry], data="toy:60", backend="cpu", bootstrap=20,
                 max_errors=max_errors)  # fmt: skip


def test_without_a_budget_the_row_fails_naming_the_batch_and_keeping_the_models_frames(host, tmp_path):
    recorder = ProgressRecorder()
    [row] = run_board(host, board(), tmp_path, RunSettings(progress=recorder))["rows"]
    assert row["status"] == "error"
    assert "cannot score 'review 41 " in row["error"] and "in a batch of" in row["error"]
    assert "r41" in row["error"].split("review(s): ")[1]
    assert "tests/fakes.py" in row["traceback"] and "in predict" in row["traceback"]  # the plugin's frame
    stored = json.loads((tmp_path / "results.json").read_text())["rows"][0]
    assert stored["traceback"] == row["traceback"]
    assert recorder.events[-1] == ("stop", "failed")


def test_within_the_budget_the_failing_review_is_left_out_by_id_and_the_rest_are_scored(host, tmp_path):
    [clean] = run_board(host, board(fail_on="never"), tmp_path / "clean")["rows"]
    [row] = run_board(host, board(max_errors="1"), tmp_path / "budget")["rows"]
    assert row["status"] == "ok"
    assert row["failed_reviews"] == [{"id": "r41", "error": "RuntimeError: cannot score " + repr(
        next(r["text"] for r in map(json.loads, (tmp_path / "clean/predictions.jsonl").open()) if r["id"] == "r41")
    )}]  # fmt: skip
    assert row["n"] == clean["n"] - 1
    assert any("1 review(s) failed and are left out" in note and "r41" in note for note in row["notes"])
    ids = [json.loads(line)["id"] for line in (tmp_path / "budget/predictions.jsonl").open()]
    assert "r41" not in ids and len(ids) == row["n"]


def test_a_share_budget_counts_against_the_rows_reviews(host, tmp_path):
    [within] = run_board(host, board(max_errors="5%"), tmp_path / "a")["rows"]
    assert within["status"] == "ok" and len(within["failed_reviews"]) == 1
    [beyond] = run_board(host, board(max_errors="1%"), tmp_path / "b")["rows"]  # 1 of about 40 is 2.5%
    assert beyond["status"] == "error"
    assert "1 review(s) failed, more than --max-errors 1% allows: r41" in beyond["error"]


def test_beyond_a_count_budget_the_row_fails_as_before(host, tmp_path):
    [row] = run_board(host, board(max_errors="2", fail_on="great"), tmp_path)["rows"]
    assert row["status"] == "error"
    assert "3 review(s) failed, more than --max-errors 2 allows" in row["error"]
    assert "in predict" in row["traceback"]


@pytest.mark.parametrize("text", ["-1", "five", "120%", "2.5"])
def test_a_bad_budget_is_a_usage_error(text):
    with pytest.raises(HarnessError, match="a number of reviews .* or a share"):
        ErrorBudget.parse(text)
    with pytest.raises(HarnessError, match="b.toml: max_errors"):
        board_from_dict({"tasks": ["toy"], "models": ["words"], "max_errors": text}, "b.toml")


def test_log_progress_never_says_done_for_a_failed_or_interrupted_row():
    stream = io.StringIO()
    progress = LogProgress(stream)
    progress.start("toy · words", 10)
    progress.advance(3)
    progress.stop("failed")
    progress.start("toy · other", 10)
    progress.stop("interrupted")
    lines = stream.getvalue().splitlines()
    assert "toy · words: failed, 3 reviews" in lines[1] and "done" not in lines[1]
    assert "toy · other: interrupted" in lines[3]


def test_the_command_line_takes_max_errors_and_shows_the_models_frames_under_debug(
    host, tmp_path, monkeypatch
):
    from harness import plugin_manager

    monkeypatch.setattr(plugin_manager, "_host", host)
    monkeypatch.delenv("HARNESS_DEBUG", raising=False)
    args = ["run", "--task", "toy", "--data", "toy:100", "--backend", "cpu", "--bootstrap", "10", "--model",
            "words", "--model-option", "fail_on=review 41 "]  # fmt: skip
    failed = CliRunner().invoke(cli_module.cli, ["--debug", *args, "--out", str(tmp_path / "a")])
    assert failed.exit_code == 1
    assert "in predict" in failed.stderr and "cannot score" in failed.stderr
    kept = CliRunner().invoke(cli_module.cli, [*args, "--out", str(tmp_path / "b"), "--max-errors", "1"])
    assert kept.exit_code == 0, kept.output
    assert "1 review(s) failed and are left out" in kept.output
    bad = CliRunner().invoke(cli_module.cli, [*args, "--out", str(tmp_path / "c"), "--max-errors", "lots"])
    assert bad.exit_code == 2 and "--max-errors takes a number" in bad.stderr


def test_an_interrupted_row_ends_its_progress_as_interrupted(host, tmp_path):
    recorder = ProgressRecorder()
    with pytest.raises(KeyboardInterrupt):
        run_board(
            host, board(fail_on="never", interrupt_on="review 41 "), tmp_path, RunSettings(progress=recorder)
        )
    assert recorder.events[-1] == ("stop", "interrupted")
    scoring = recorder.events.index(("start", "toy · words", None))
    assert ("stop",) not in recorder.events[scoring:]  # the fit ended, the scoring never said done
