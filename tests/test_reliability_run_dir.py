"""`harness run --out DIR` into a directory that already holds something: its own board's run resumes,
another board's run is refused unless replaced (and then no file of it is left), a user's directory is
never written into."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_toy


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def first_run(host, monkeypatch, out: Path) -> None:
    result = run_toy(host, monkeypatch, out, "--model", "words:a", "--model", "words:b")
    assert result.exit_code == 0, result.output
    # what the earlier run drew: a plot named after a task the next board does not run, from a sweep say
    (out / "pareto_other-task.png").write_bytes((out / "pareto_toy.png").read_bytes())


def test_a_different_board_into_a_run_directory_is_refused_and_changes_nothing(host, monkeypatch, tmp_path):
    out = tmp_path / "run"
    first_run(host, monkeypatch, out)
    before = snapshot(out)
    result = run_toy(host, monkeypatch, out, "--model", "words:c")
    assert result.exit_code == 2 and "nothing ran" in result.stderr
    assert (
        f"{out} holds the run of another board (board adhoc: toy x words:a, words:b on toy:40)"
        in result.stderr
    )
    assert "--replace" in result.stderr
    assert snapshot(out) == before


def test_replace_leaves_no_file_of_the_earlier_run(host, monkeypatch, tmp_path):
    out = tmp_path / "run"
    first_run(host, monkeypatch, out)
    (out / "sweep.png").write_bytes(b"a sweep of words:a and words:b")
    result = run_toy(host, monkeypatch, out, "--model", "words:c", "--replace")
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["words:c"]
    assert {json.loads(line)["model"] for line in (out / "predictions.jsonl").read_text().splitlines()} == {
        "words:c"
    }
    assert not (out / "pareto_other-task.png").exists() and not (out / "sweep.png").exists()
    page = (out / "leaderboard.html").read_text()
    assert "pareto_other-task" not in page and "words:a" not in page and "words:b" not in page
    assert "words:a" not in (out / "leaderboard.md").read_text()


def test_the_same_board_resumes_from_its_cache_and_drops_stale_plots(host, monkeypatch, tmp_path, toy_plugin):
    out = tmp_path / "run"
    first_run(host, monkeypatch, out)
    result = run_toy(host, monkeypatch, out, "--model", "words:a", "--model", "words:b", "--limit", "5")
    assert result.exit_code == 0, result.output
    assert toy_plugin.models[-1].predicted == 0  # every answer came from the cache
    assert not (out / "pareto_other-task.png").exists() and (out / "pareto_toy.png").exists()
    assert "pareto_other-task" not in (out / "leaderboard.html").read_text()


@pytest.mark.parametrize("own", ["results.json", "predictions.jsonl", "notes.txt"])
def test_a_directory_that_is_not_a_run_is_never_written_into(host, monkeypatch, tmp_path, own):
    out = tmp_path / "mine"
    out.mkdir()
    (out / own).write_text('{"my": "own results"}\n')
    before = snapshot(out)
    for extra in ([], ["--replace"]):
        result = run_toy(host, monkeypatch, out, "--model", "words", *extra)
        assert (
            result.exit_code == 2
            and f"{out} is not a harness run directory (it holds {own})" in result.stderr
        )
        assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == [own]


def test_an_interrupted_run_resumes(host, monkeypatch, tmp_path):
    out = tmp_path / "run"
    result = run_toy(host, monkeypatch, out, "--model", "words", "--model-option", "interrupt_on=review 9")
    assert result.exit_code == 130 and not (out / "results.json").exists()
    result = run_toy(host, monkeypatch, out, "--model", "words")
    assert result.exit_code == 0, result.output
