"""Cache integrity: a cache written for another model, task or label set is never reused; damage is rebuilt."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from harness.boards import Board, ModelEntry
from harness.cache import PredictionCache, text_key
from harness.run import run_board
from tests.fakes import ToyTask

KEYS = [text_key(f"review {i}") for i in range(40)]
PROBS = np.array([0.25, 0.75], dtype=np.float32)


def filled_cache(path: Path, model_fp: str = "model-1", task_fp: str = "task-1") -> PredictionCache:
    cache = PredictionCache(path)
    cache.put_many(model_fp, task_fp, [(key, PROBS, 0.01, False, None) for key in KEYS])
    return cache


def test_cache_hits_only_under_the_same_model_task_and_label_count(tmp_path):
    cache = filled_cache(tmp_path / "cache.sqlite")
    assert len(cache.get_many("model-1", "task-1", KEYS, 2)) == len(KEYS)
    assert cache.get_many("model-2", "task-1", KEYS, 2) == {}  # another model version
    assert cache.get_many("model-1", "task-2", KEYS, 2) == {}  # another task definition
    assert cache.get_many("model-1", "task-1", KEYS, 3) == {}  # another label set under a reused task id
    cache.close()


def test_damaged_rows_are_recomputed_not_trusted(tmp_path):
    cache = filled_cache(tmp_path / "cache.sqlite")
    with cache._conn:
        cache._conn.execute(
            "UPDATE predictions SET probs = ? WHERE text_key = ?",
            (np.array([np.nan, 1.0], dtype=np.float32).tobytes(), KEYS[0]),
        )
        cache._conn.execute("UPDATE predictions SET probs = ? WHERE text_key = ?", (b"\x00\x01", KEYS[1]))
    found = cache.get_many("model-1", "task-1", KEYS, 2)
    assert set(found) == set(KEYS[2:])
    cache.close()


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.25, 0.5, 0.75])
def test_truncated_cache_file_is_reported_moved_aside_and_rebuilt(tmp_path, fraction):
    path = tmp_path / "cache.sqlite"
    cache = PredictionCache(path)
    cache.put_many("m", "t", [(f"k{i}", PROBS, 0.1, False, "x" * 300) for i in range(2000)])
    cache.close()
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(int(size * fraction))
    if fraction == 0.0:  # an empty file is a valid empty database: nothing to trust, nothing to report
        rebuilt = PredictionCache(path)
    else:
        with pytest.warns(UserWarning, match="unreadable.*moved to .*cache.sqlite.corrupt and rebuilt"):
            rebuilt = PredictionCache(path)
        assert (tmp_path / "cache.sqlite.corrupt").stat().st_size == int(size * fraction)
    assert rebuilt.get_many("m", "t", [f"k{i}" for i in range(2000)], 2) == {}
    rebuilt.put_many("m", "t", [("new", PROBS, 0.1, False, None)])
    assert set(rebuilt.get_many("m", "t", ["new"], 2)) == {"new"}
    rebuilt.close()


def test_a_cache_file_damaged_in_the_middle_is_not_trusted(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = PredictionCache(path)
    cache.put_many("m", "t", [(f"k{i}", PROBS, 0.1, False, "y" * 300) for i in range(2000)])
    cache.close()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="unreadable"):
        PredictionCache(path).close()


# the runner: a changed model, task or label set recomputes everything --------------------------------------


def toy_board(spec: str = "words", **overrides) -> Board:
    fields = dict(
        name="t", tasks=["toy"], models=[ModelEntry(spec)], data="toy:40", backend="cpu", bootstrap=20
    )
    fields.update(overrides)
    return Board(**fields)


def test_runner_reuses_the_cache_only_for_the_same_model(host, tmp_path):
    first = run_board(host, toy_board("words"), tmp_path)["rows"][0]
    same = run_board(host, toy_board("words"), tmp_path)["rows"][0]
    other = run_board(host, toy_board("words:v2"), tmp_path)["rows"][0]  # another fingerprint
    assert first["computed"] == first["n"] > 0
    assert same["cached"] == same["n"] and same["computed"] == 0
    assert other["cached"] == 0 and other["computed"] == other["n"]


def test_runner_reuses_the_cache_only_for_the_same_task_definition(host, tmp_path, monkeypatch):
    run_board(host, toy_board(), tmp_path)
    monkeypatch.setattr(ToyTask, "fingerprint", lambda self: "toy-task-2")
    changed = run_board(host, toy_board(), tmp_path)["rows"][0]
    assert changed["cached"] == 0 and changed["computed"] == changed["n"] > 0


def test_runner_never_reuses_predictions_of_another_label_set(host, tmp_path, monkeypatch):
    """Even under the same task fingerprint, rows with the wrong number of labels are recomputed."""
    import tests.fakes as fakes

    run_board(host, toy_board(), tmp_path)
    three = ("negative", "neutral", "positive")

    def predict3(self, texts, task):
        self.predicted += len(texts)
        return np.full((len(texts), 3), 1 / 3)

    monkeypatch.setattr(ToyTask, "labels", three)
    monkeypatch.setattr(ToyTask, "label_words", three)
    monkeypatch.setattr(fakes.WordModel, "predict", predict3)
    row = run_board(host, toy_board(), tmp_path)["rows"][0]
    assert row["status"] == "ok", row["error"]
    assert row["cached"] == 0 and row["computed"] == row["n"] > 0


def test_polarity_fingerprint_follows_labels_prompt_and_input():
    from harness.tasks.polarity import PolarityTask

    base = PolarityTask().fingerprint()
    assert PolarityTask().fingerprint() == base
    for options in (
        {"label_words": "bad,good"},
        {"prompt": "Review: {text}\nSentiment:"},
        {"input": "title+body"},
    ):
        assert PolarityTask(options).fingerprint() != base, options


def test_category_fingerprint_follows_the_label_set():
    from harness.tasks.category import CategoryTask

    assert (
        CategoryTask({"categories": "Books,Toys"}).fingerprint()
        != CategoryTask({"categories": "Books,Toys,Shoes"}).fingerprint()
    )


def test_classifier_fingerprint_follows_weights_replaced_in_place(tmp_path):
    from harness.plugins.models.classifiers import make_hf_classifier
    from tests.tiny_encoders import build_distilbert, make_ctx

    directory = build_distilbert(tmp_path / "model", seed=0)
    before = make_hf_classifier(str(directory), make_ctx(tmp_path / "work")).fingerprint()
    time.sleep(1.1)  # a later save; the file sizes are identical
    build_distilbert(directory, seed=1)
    after = make_hf_classifier(str(directory), make_ctx(tmp_path / "work")).fingerprint()
    assert before != after


def test_classifier_fingerprint_follows_weights_copied_in_with_the_old_timestamps(tmp_path):
    from harness.plugins.models.classifiers import make_hf_classifier
    from tests.tiny_encoders import build_distilbert, make_ctx

    directory = build_distilbert(tmp_path / "model", seed=0)
    stamps = {p.name: (p.stat().st_atime_ns, p.stat().st_mtime_ns) for p in directory.iterdir()}
    before = make_hf_classifier(str(directory), make_ctx(tmp_path / "work")).fingerprint()
    build_distilbert(directory, seed=1)  # as `cp -p` or `rsync -t` of retrained weights would leave it
    for p in directory.iterdir():
        os.utime(p, ns=stamps[p.name])
    after = make_hf_classifier(str(directory), make_ctx(tmp_path / "work")).fingerprint()
    assert before != after


def test_cache_is_shared_safely_by_two_connections(tmp_path):
    """Two runs sharing one --cache file: WAL mode lets both write without losing rows."""
    path = tmp_path / "cache.sqlite"
    a, b = PredictionCache(path), PredictionCache(path)
    a.put_many("m", "t", [(f"a{i}", PROBS, 0.1, False, None) for i in range(100)])
    b.put_many("m", "t", [(f"b{i}", PROBS, 0.1, False, None) for i in range(100)])
    a.close()
    b.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM predictions").fetchone()[0] == 200
    conn.close()
