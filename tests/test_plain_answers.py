"""Small things a user meets on the way: what a missing --data path says, what a dry run promises, the
modes of written files, what `leaderboard --help` offers."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

from harness import RunSettings, plugin_manager
from harness import cli as cli_module
from harness.boards import Board, ModelEntry
from harness.files import atomic_write
from harness.preflight_checks import MIN_FREE_BYTES, preflight
from harness.run import run_board


@pytest.fixture
def toy_cli(host, monkeypatch):
    monkeypatch.setattr(plugin_manager, "_host", host)

    def invoke(*args: str):
        base = ["run", "--task", "toy", "--model", "words", "--backend", "cpu", "--bootstrap", "10"]
        return CliRunner().invoke(cli_module.cli, [*base, *args])

    return invoke


def test_a_missing_data_path_says_it_does_not_exist(toy_cli, tmp_path):
    missing = tmp_path / "reviews.tsv"
    result = toy_cli("--data", str(missing), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert f"the data path '{missing}' does not exist" in result.stderr
    assert "no source can read" not in result.stderr


def test_a_directory_as_data_says_it_is_a_directory(toy_cli, tmp_path):
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "notes.txt").write_text("not reviews\n")
    result = toy_cli("--data", str(folder), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert f"the data path '{folder}' is a directory but not a saved dataset" in result.stderr


def test_a_dry_run_shows_the_free_space_the_run_then_asks_for(host, tmp_path):
    board = Board(
        name="t", tasks=["toy"], models=[ModelEntry("words")], data="toy:60", backend="cpu", limit=20
    )
    plan = preflight(host, board, tmp_path / "run", dry_run=True)
    assert plan.disk_bytes is not None and plan.disk_bytes < MIN_FREE_BYTES
    assert "the run needs about 100.0 MiB free" in plan.render()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_file_of_a_run_follows_the_umask(host, tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write(tmp_path / "alone.txt", "x")
        run_board(host, Board(name="t", tasks=["toy"], models=[ModelEntry("words")], data="toy:30",
                              backend="cpu", bootstrap=10), tmp_path / "run")  # fmt: skip
        CliRunner().invoke(cli_module.cli, ["leaderboard", str(tmp_path / "run"), "--format", "html", "-o",
                                            str(tmp_path / "run" / "board.html")])  # fmt: skip
    finally:
        os.umask(previous)
    written = [tmp_path / "alone.txt", *(p for p in (tmp_path / "run").iterdir() if p.is_file())]
    expected = 0o666 & ~umask
    names = {p.name for p in written}
    assert {"results.json", "predictions.jsonl", "cache.sqlite", "board.html"} <= names
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in written if not p.name.startswith(".")}
    assert set(modes.values()) == {expected}, modes


def test_leaderboard_help_names_every_registered_format(host):
    shown = CliRunner().invoke(cli_module.cli, ["leaderboard", "--help"]).output
    for entry in host.registries.exporters:
        assert entry.name in shown, entry.name


def write_reviews(path, stars: list[int]) -> str:
    lines = ["id\ttext\tstars", *(f"{i}\treview number {i} says {s} stars\t{s}" for i, s in enumerate(stars))]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def polarity_board(data: str, *models: str) -> Board:
    return Board(
        name="t", tasks=["polarity"], models=[ModelEntry(m) for m in models], data=data, backend="cpu"
    )


@pytest.mark.parametrize(
    "rows", [120, 500]
)  # read whole by the preflight's first rows, and read on to the end
def test_a_one_label_train_split_is_refused_by_the_preflight_for_a_model_that_learns(host, tmp_path, rows):
    data = write_reviews(tmp_path / "positive.tsv", [5] * rows)
    plan = preflight(host, polarity_board(data, "tfidf-logreg", "vader"), tmp_path / "run")
    [problem] = plan.problems
    assert "task 'polarity': all" in problem and "labelled 'positive'" in problem
    assert "tfidf-logreg learn(s) from it" in problem and "vader" not in problem
    assert not preflight(host, polarity_board(data, "vader"), tmp_path / "run").problems


def test_a_train_split_whose_first_rows_hold_one_label_passes_when_the_rest_holds_another(host, tmp_path):
    data = write_reviews(
        tmp_path / "sorted.tsv", [5] * 300 + [1] * 300
    )  # sorted by stars, as files often are
    assert not preflight(host, polarity_board(data, "tfidf-logreg"), tmp_path / "run").problems


def test_a_model_on_a_task_it_does_not_support_is_one_problem_not_two(host, tmp_path):
    board = Board(name="t", tasks=["category"], models=[ModelEntry("vader")], data="demo", backend="cpu")
    problems = preflight(host, board, tmp_path / "run").problems
    assert len(problems) == 1 and "supports the polarity task(s) only" in problems[0]


def test_compare_of_runs_on_different_data_says_so_and_what_it_paired(host, tmp_path):
    from harness.leaderboard._compare import compare_runs
    from harness.leaderboard.commands import format_comparisons

    for name, data in (("a", "toy:60"), ("b", "toy:40")):
        board = Board(
            name="t", tasks=["toy"], models=[ModelEntry("words")], data=data, backend="cpu", bootstrap=10
        )
        run_board(host, board, tmp_path / name)
    shown = format_comparisons(compare_runs(tmp_path / "a", tmp_path / "b", resamples=20))
    assert "note: the runs differ in data: A 'toy:60', B 'toy:40'" in shown
    assert "scored by A only, 0 by B only" in shown
    assert "note:" not in format_comparisons(compare_runs(tmp_path / "a", tmp_path / "a", resamples=20))


def test_compare_notes_shared_ids_that_hold_other_texts(tmp_path):
    from harness.leaderboard._compare import compare_records

    a = [{"id": str(i), "gold": "positive", "pred": "positive", "text": f"review {i}"} for i in range(5)]
    b = [{**r, "text": "another shop's review"} if r["id"] == "3" else r for r in a]
    [note] = compare_records("polarity", "m", a, b, resamples=0).notes
    assert note.startswith("1 of the paired ids hold different texts")


def test_plots_with_labels_the_font_lacks_and_all_nan_draws_raise_no_warning():
    import warnings

    import numpy as np

    from harness.intervals import percentile_interval
    from harness.leaderboard._plots import new_figure, png_bytes
    from harness.plugins.routing._calibration import pick_for_metric

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning here would reach the user's stderr
        figure = new_figure(3, 2)
        figure.add_subplot().set_title("评论 模型")
        assert png_bytes(figure).startswith(b"\x89PNG")
        low, high = percentile_interval(np.full(20, np.nan))
        assert np.isnan(low) and np.isnan(high)
        assert percentile_interval(np.array([np.nan, 1.0, 2.0, 3.0])) == pytest.approx((1.05, 2.95))
        assert pick_for_metric(np.array([0.2, 0.1]), np.array([np.nan, np.nan]), 0.9) == (1, False)


def tfidf_board(limit: int) -> Board:
    return Board(name="t", tasks=["polarity"], models=[ModelEntry("tfidf-logreg")], data="demo", backend="cpu",
                 limit=limit, bootstrap=10)  # fmt: skip


def fitted(events) -> bool:
    return any(e[0] == "start" and "fitting on" in e[1] for e in events)


def test_a_model_whose_every_prediction_is_cached_is_not_fitted_again(host, tmp_path):
    from tests.fakes import ProgressRecorder

    first, again, more = ProgressRecorder(), ProgressRecorder(), ProgressRecorder()
    [row] = run_board(host, tfidf_board(20), tmp_path, RunSettings(progress=first))["rows"]
    assert fitted(first.events) and row["computed"] == 20
    [cached] = run_board(host, tfidf_board(20), tmp_path, RunSettings(progress=again))["rows"]
    assert not fitted(again.events) and cached["fit_s"] == 0
    assert cached["cached"] == 20 and cached["metrics"] == row["metrics"]
    assert any("the model was not fitted" in note for note in cached["notes"])
    [grown] = run_board(host, tfidf_board(30), tmp_path, RunSettings(progress=more))[
        "rows"
    ]  # 10 new reviews: fitted
    assert fitted(more.events) and grown["cached"] == 20 and grown["computed"] == 10


def test_a_prediction_missing_after_the_cache_was_checked_is_made_by_a_fitted_model(
    host, tmp_path, monkeypatch
):
    from harness.runner import Runner

    run_board(host, tfidf_board(20), tmp_path)
    monkeypatch.setattr(Runner, "all_cached", lambda self, task, model_fp, cache: True)  # as if another run
    [row] = run_board(host, tfidf_board(30), tmp_path)["rows"]  # had emptied part of the cache since
    assert row["status"] == "ok" and row["computed"] == 10 and row["fit_s"] > 0
