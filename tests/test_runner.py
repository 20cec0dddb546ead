"""The runner end to end with toy plugins: results, predictions, cache, resume, isolation, hooks."""

from __future__ import annotations

import json
import threading
import tracemalloc

import pytest

from harness import RunSettings
from harness.boards import Board, ModelEntry
from harness.errors import HarnessError
from harness.run import run_board
from harness.runner import Runner
from harness.types import ModelOutput
from tests.fakes import ProgressRecorder
from tests.helpers import write_reviews


def toy_board(**overrides) -> Board:
    fields = dict(
        name="t", tasks=["toy"], models=[ModelEntry("words")], data="toy:60", backend="cpu", bootstrap=50
    )
    fields.update(overrides)
    return Board(**fields)


def read_predictions(run_dir):
    return [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]


def test_run_writes_results_and_one_prediction_per_example(host, toy_plugin, tmp_path):
    results = run_board(host, toy_board(), tmp_path)
    [row] = results["rows"]
    # 60 lines: 12 malformed, 6 train ids ending in 't' (multiples of 7 not of 5: 7,14,21,28,42,49,56 -> 7)
    train = [n for n in range(1, 61) if n % 7 == 0 and n % 5 != 0]
    expected_test = 60 - 12 - len(train)
    assert row["status"] == "ok"
    assert row["n"] == expected_test == len(read_predictions(tmp_path))
    assert row["load_issues"]["total"] == 12
    assert row["load_issues"]["first"][0] == "toy:60:5: malformed: test row"
    assert row["counts"]["train"] == len(train)
    assert len(toy_plugin.models[0].fitted) == len(train)
    assert 0.0 <= row["metrics"]["accuracy"] <= 1.0
    low, high = row["intervals"]["accuracy"]
    assert low <= row["metrics"]["accuracy"] <= high
    assert row["runtime_s"] > 0 and row["reviews_per_s"] > 0
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["rows"] == results["rows"]
    assert on_disk["provenance"]["versions"]["numpy"]
    assert on_disk["backend"]["device"] == "cpu"


def test_accuracy_matches_predictions_file(host, tmp_path):
    results = run_board(host, toy_board(), tmp_path)
    predictions = read_predictions(tmp_path)
    accuracy = sum(p["correct"] for p in predictions) / len(predictions)
    assert results["rows"][0]["metrics"]["accuracy"] == pytest.approx(accuracy)
    assert all(abs(sum(p["probs"]) - 1) < 1e-5 for p in predictions)


def test_limit_caps_scored_examples(host, tmp_path):
    results = run_board(host, toy_board(limit=10), tmp_path)
    assert results["rows"][0]["n"] == 10


def test_second_run_reuses_the_cache_and_gives_identical_results(host, toy_plugin, tmp_path):
    first = run_board(host, toy_board(), tmp_path)
    computed_first = toy_plugin.models[0].predicted
    second = run_board(host, toy_board(), tmp_path)
    scoring_model = toy_plugin.models[1]
    assert computed_first > 0
    assert scoring_model.predicted == 0  # everything came from the cache, warm-up included
    assert second["rows"][0]["cached"] == second["rows"][0]["n"]
    assert second["rows"][0]["metrics"] == first["rows"][0]["metrics"]


def test_interrupted_run_resumes_without_rescoring(host, toy_plugin, tmp_path):
    board = toy_board(models=[ModelEntry("words", options={"fail_on": "review 41 "})])
    failed = run_board(host, board, tmp_path)
    assert failed["rows"][0]["status"] == "error"
    done_before = toy_plugin.models[0].predicted
    resumed = run_board(host, toy_board(), tmp_path)
    row = resumed["rows"][0]
    assert row["status"] == "ok"
    assert row["cached"] > 0 and row["cached"] + row["computed"] == row["n"]
    assert done_before > 0


def test_a_failing_model_gets_an_error_row_and_others_still_run(host, tmp_path):
    board = toy_board(models=[ModelEntry("words:bad", options={"fail_on": "review 1 "}), ModelEntry("words")])
    bad, good = run_board(host, board, tmp_path)["rows"]
    assert bad["status"] == "error" and "cannot score" in bad["error"]
    assert good["status"] == "ok" and good["n"] > 0


def test_unknown_model_is_an_error_row_with_a_suggestion(host, tmp_path):
    [row] = run_board(host, toy_board(models=[ModelEntry("wrods")]), tmp_path)["rows"]
    assert row["status"] == "error"
    assert "did you mean 'words'" in row["error"]


def test_lifecycle_hooks_are_called(host, toy_plugin, tmp_path):
    results = run_board(host, toy_board(), tmp_path)
    kinds = [kind for kind, _ in toy_plugin.events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    batches = [payload for kind, payload in toy_plugin.events if kind == "batch"]
    assert sum(b.size for b in batches) == results["rows"][0]["n"]
    assert toy_plugin.events[-1][1] is results


def test_a_second_run_in_the_same_directory_is_refused(host, tmp_path):
    from harness.files import RunDirLock

    with RunDirLock(tmp_path), pytest.raises(HarnessError, match="another harness run"):
        run_board(host, toy_board(), tmp_path)


def test_concurrent_runs_in_different_directories_both_finish(host, tmp_path):
    errors = []

    def go(name):
        try:
            run_board(host, toy_board(), tmp_path / name)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert (tmp_path / "a" / "results.json").exists() and (tmp_path / "b" / "results.json").exists()


def test_unreadable_source_location_is_a_clear_error(host, tmp_path):
    unknown = tmp_path / "reviews.xyz"
    unknown.write_text("not a format any source reads\n")
    [row] = run_board(host, toy_board(data=str(unknown)), tmp_path / "a")["rows"]
    assert f"no source can read '{unknown}'" in row["error"]
    [row] = run_board(host, toy_board(data="nowhere.xyz"), tmp_path / "b")["rows"]
    assert "the data path 'nowhere.xyz' does not exist" in row["error"]


def test_corrupted_cache_is_rebuilt_not_trusted(host, tmp_path):
    (tmp_path / "cache.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.warns(UserWarning, match="unreadable"):
        results = run_board(host, toy_board(), tmp_path)
    assert results["rows"][0]["status"] == "ok"
    assert (tmp_path / "cache.sqlite.corrupt").exists()


def test_malformed_model_output_is_refused(host, tmp_path, monkeypatch):
    import numpy as np

    from tests.fakes import WordModel

    monkeypatch.setattr(WordModel, "predict", lambda self, texts, task: np.full((len(texts), 2), 0.7))
    [row] = run_board(host, toy_board(), tmp_path)["rows"]
    assert row["status"] == "error" and "do not sum to 1" in row["error"]


def test_an_answer_that_names_no_label_is_counted_wrong_never_as_the_first_label(host, tmp_path, monkeypatch):
    import numpy as np

    from tests.fakes import WordModel

    def no_label_for_fine(self, texts, task):  # what a generate-and-parse model returns for "no idea"
        probs = np.array([[0.1, 0.9]] * len(texts))
        probs[["fine" in text for text in texts]] = 0.0
        return ModelOutput(probs, raw_text=["no idea" if "fine" in t else "positive" for t in texts])

    monkeypatch.setattr(WordModel, "predict", no_label_for_fine)
    [row] = run_board(host, toy_board(), tmp_path)["rows"]
    records = read_predictions(tmp_path)
    unanswered = [r for r in records if r["raw_text"] == "no idea"]
    assert row["status"] == "ok" and unanswered and any(r["gold"] == "negative" for r in unanswered)
    assert all(r["pred"] is None and r["correct"] is False for r in unanswered)
    assert row["extra"]["unparseable"] == len(unanswered)
    assert row["metrics"]["accuracy"] == pytest.approx(sum(r["correct"] for r in records) / len(records))


def test_out_of_memory_halves_the_batch_and_records_it(host, tmp_path):
    board = toy_board(models=[ModelEntry("words", options={"max_batch": "5", "batch_size": "32"})])
    [row] = run_board(host, board, tmp_path)["rows"]
    assert row["status"] == "ok" and row["n"] > 5
    assert row["extra"]["batch_size"] == 4  # 32 -> 16 -> 8 -> 4
    assert any("batch size halved" in note for note in row["notes"])


def test_a_hanging_model_is_bounded_by_its_timeout(host, tmp_path):
    board = toy_board(
        models=[
            ModelEntry("words:slow", options={"hang_on": "review 3 ", "timeout": "0.3"}),
            ModelEntry("words"),
        ]
    )
    slow, fast = run_board(host, board, tmp_path)["rows"]
    assert slow["status"] == "error" and "timeout of 0.3 s" in slow["error"]
    assert fast["status"] == "ok"


def test_progress_shows_fitting_before_scoring(host, tmp_path):
    recorder = ProgressRecorder()
    events = recorder.events

    board = Board(name="t", tasks=["polarity"], models=[ModelEntry("tfidf-logreg")], data="demo", backend="cpu",
                  limit=20, bootstrap=10)  # fmt: skip
    [row] = run_board(host, board, tmp_path, RunSettings(progress=recorder))["rows"]
    assert row["status"] == "ok"
    starts = [e for e in events if e[0] == "start"]
    assert starts[0][1].startswith("polarity · tfidf-logreg · fitting on ") and starts[0][2] is None
    assert events[1] == ("stop",)
    assert starts[1] == ("start", "polarity · tfidf-logreg", 20)
    assert sum(e[1] for e in events if e[0] == "advance") == 20


def test_the_runner_sends_the_batch_the_model_asks_for_over_the_option(
    host, toy_plugin, tmp_path, monkeypatch
):
    from tests.fakes import WordModel

    monkeypatch.setattr(WordModel, "batch_size", 7, raising=False)  # e.g. 1 per stream x 7 streams
    [row] = run_board(host, toy_board(models=[ModelEntry("words", options={"batch_size": "1"})]), tmp_path)[
        "rows"
    ]
    assert toy_plugin.models[-1].calls == 1 + -(-row["n"] // 7)  # one untimed warm-up call first


def test_a_row_keeps_little_per_review_while_it_scores(host, tmp_path, monkeypatch):
    """A run streams its reviews: what a row holds grows by well under 500 bytes a review while it scores
    (ids, labels, probabilities, latencies and slice codes), never by a record per review."""
    held: list[tuple[int, int]] = []  # (reviews scored, bytes traced) after each chunk
    record_chunk = Runner.record_chunk

    def recorded(self, job, chunk, found, collected, out):
        record_chunk(self, job, chunk, found, collected, out)
        held.append((len(collected.gold), tracemalloc.get_traced_memory()[0]))

    monkeypatch.setattr(Runner, "record_chunk", recorded)
    data = write_reviews(tmp_path / "reviews.jsonl", 4000)
    board = Board(name="held", tasks=["polarity"], models=[ModelEntry("words")], data=str(data), backend="cpu",
                  bootstrap=0, task_options={"polarity": {"slice_col": "shop", "train_size": "0"}})  # fmt: skip
    tracemalloc.start()
    try:
        [row] = run_board(host, board, tmp_path / "run")["rows"]
    finally:
        tracemalloc.stop()
    assert row["status"] == "ok", row["error"]
    assert list(row["slices"]) == ["length", "negation", "category", "stars", "shop"]
    (early, before), (late, after) = held[1], held[-1]  # from the second chunk on: the run is under way
    assert late - early >= 2000
    assert (after - before) / (late - early) < 500
