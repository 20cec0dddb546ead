"""`harness distill`: a tiny classifier taught by VADER on a pool the scored split never sees, saved and reused."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from harness import RunSettings
from harness.boards import load_board
from harness.errors import HarnessError
from harness.plugin_manager import get_host
from harness.plugins.distill import command as distill
from harness.plugins.distill._distill import draw_pool
from harness.plugins.models import _finetune as finetune
from harness.run import run_board
from harness.split_source import open_reviews
from harness.types import Example, IssueLog
from tests.fakes import ProgressRecorder
from tests.tiny_encoders import FakeTask, build_bert_encoder, polarity_train

WORDS = {1: "awful broken junk", 2: "poor and disappointing", 4: "good and useful", 5: "great, love it"}
# A few epochs at a high rate: enough for the tiny encoder to move, seconds on a CPU.
STUDENT_OPTIONS = ["epochs=3", "learning_rate=3e-3", "train_batch_size=8"]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bert_encoder(tmp_path_factory.mktemp("bert"))


@pytest.fixture
def reviews(tmp_path: Path) -> Path:
    """120 short reviews; every fifth repeats an earlier text, so a pool could meet a scored text twice."""
    rows = []
    for i in range(120):
        stars = (1, 2, 4, 5)[i % 4]
        text = f"review {i // 5 * 5}: {WORDS[stars]}" if i % 5 == 4 else f"review {i}: {WORDS[stars]}"
        rows.append({"review_id": f"r{i}", "stars": str(stars), "review_body": text})
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def cli() -> click.Group:
    group = click.Group()
    distill.register_commands(group)
    return group


def run_distill(encoder: Path, data: Path, out: Path, *extra: str) -> click.testing.Result:
    args = ["distill", "vader", f"hf-classifier:{encoder}", "--task", "polarity", "--data", str(data)]
    args += ["--limit", "30", "--gold-size", "20", "--pool", "40", "--out", str(out), "--bootstrap", "0"]
    for option in STUDENT_OPTIONS:
        args += ["--model-option", option]
    result = CliRunner().invoke(cli(), [*args, *extra])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_pool_never_holds_a_scored_review_and_a_smaller_pool_is_the_head_of_a_larger() -> None:
    candidates = [Example(f"c{i}", f"text {i % 40}", 0) for i in range(80)]
    scored = candidates[:10]
    pool = draw_pool(candidates, scored, 25, seed=3)
    assert len(pool) == 25
    scored_texts = {e.text for e in scored}
    assert not {e.id for e in pool} & {e.id for e in scored}
    assert not {e.text for e in pool} & scored_texts  # "text 0".."text 9" come back at c40..c49
    assert draw_pool(candidates, scored, 10, seed=3) == pool[:10]
    assert draw_pool(candidates, scored, 25, seed=4) != pool


def test_soft_targets_are_learned_as_probabilities_not_as_their_argmax(encoder_dir: Path, tmp_path: Path):
    """Every review taught 70% positive: the student ends near 0.7, where the argmax would push it to 1."""
    from harness.plugins.models.classifiers import Family, HFClassifier
    from tests.tiny_encoders import make_ctx

    train = polarity_train()
    soft = [[0.3, 0.7]] * len(train)
    options = {"epochs": "12", "learning_rate": "5e-3", "train_batch_size": "6"}
    soft_model = HFClassifier(Family("hf-classifier"), str(encoder_dir), make_ctx(tmp_path, options))
    result = soft_model.distil(train, soft, FakeTask())
    hard_model = HFClassifier(Family("hf-classifier"), str(encoder_dir), make_ctx(tmp_path, options))
    hard = hard_model.distil(train, [[0.0, 1.0]] * len(train), FakeTask())
    assert result.fingerprint != hard.fingerprint
    texts = [e.text for e in train]
    taught = soft_model.predict(texts, FakeTask()).probs[:, 1]
    argmaxed = hard_model.predict(texts, FakeTask()).probs[:, 1]
    assert abs(float(taught.mean()) - 0.7) < 0.1
    assert float(argmaxed.mean()) > 0.9
    report = json.loads((result.path / finetune.DONE_FILE).read_text())
    assert report["soft_targets"] is True


def test_distill_teaches_the_student_on_a_pool_outside_the_scored_split_and_reuses_it(
    encoder_dir: Path, reviews: Path, tmp_path: Path
) -> None:
    out = tmp_path / "distil"
    first = run_distill(encoder_dir, reviews, out)
    summary = json.loads((out / "distill.json").read_text())
    assert summary["trained"] and summary["gold"] == 20 and summary["pool"] == 40
    assert f"distilled model: {summary['spec']}" in first.output

    # The pool: reviews outside the train split and outside what a run of the same board scores.
    board = load_board(out / "board.toml")
    task = get_host().registries.tasks.build("polarity", board.task_options["polarity"])
    splits = task.split(open_reviews(get_host().registries, board, IssueLog()), limit=board.limit, seed=0)
    scored = list(splits.test)
    pool = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(scored) == 30 and len(pool) == 40
    assert not {r["id"] for r in pool} & ({e.id for e in scored} | {e.id for e in splits.train})
    assert not {r["text"] for r in pool} & {e.text for e in scored}

    # A second distillation scores nothing and trains nothing: the cache and the saved weights serve it.
    second = run_distill(encoder_dir, reviews, out)
    assert "0 pool reviews scored, 40 from the cache" in second.output
    assert "reused the saved" in second.output
    again = json.loads((out / "distill.json").read_text())
    assert not again["trained"] and again["spec"] == summary["spec"]

    # The comparison board: the distilled student answers otherwise than the one taught on gold alone.
    results = run_board(get_host(), board, tmp_path / "board")
    rows = {row["label"]: row for row in results["rows"]}
    assert all(row["status"] == "ok" for row in rows.values()), [r["error"] for r in rows.values()]
    assert len(rows) == 4 and any(label.startswith("hybrid distilled") for label in rows)
    # The hybrid reads the teacher's answers its own row stored on the same split: none is scored twice.
    [hybrid] = [row for label, row in rows.items() if label.startswith("hybrid distilled")]
    assert hybrid["extra"]["escalated"] > 0
    assert hybrid["extra"]["escalated_stored"] == hybrid["extra"]["escalated"]
    records = [
        json.loads(line) for line in (tmp_path / "board" / "predictions.jsonl").read_text().splitlines()
    ]
    by_model: dict[str, dict[str, list[float]]] = {}
    for record in records:
        by_model.setdefault(record["model"], {})[record["id"]] = record["probs"]
    before = by_model[f"hf-classifier:{encoder_dir}"]
    after = by_model[summary["spec"]]
    assert before.keys() == after.keys() == {e.id for e in scored}
    gap = np.abs(np.array([before[i] for i in before]) - np.array([after[i] for i in before]))
    assert gap.max() > 1e-3


def test_distilling_without_gold_trains_another_model(encoder_dir: Path, reviews: Path, tmp_path: Path):
    run_distill(encoder_dir, reviews, tmp_path / "with")
    run_distill(encoder_dir, reviews, tmp_path / "without", "--no-gold")
    with_gold = json.loads((tmp_path / "with" / "distill.json").read_text())
    without = json.loads((tmp_path / "without" / "distill.json").read_text())
    assert without["gold"] == 0 and without["pool"] == 40
    assert with_gold["fingerprint"] != without["fingerprint"]


def test_a_student_that_cannot_fine_tune_is_refused_before_the_teacher_runs(reviews: Path, tmp_path: Path):
    args = ["distill", "vader", "tfidf-logreg", "--task", "polarity", "--data", str(reviews), "--limit", "30"]
    result = CliRunner().invoke(cli(), [*args, "--out", str(tmp_path / "d")])
    assert isinstance(result.exception, HarnessError)
    assert "the student must be a classifier that fine-tunes" in str(result.exception)
    assert not (tmp_path / "d" / "predictions.jsonl").exists()


def test_no_pool_without_a_limit_and_no_writing_over_another_commands_results(
    encoder_dir: Path, reviews: Path, tmp_path: Path
) -> None:
    args = ["distill", "vader", f"hf-classifier:{encoder_dir}", "--task", "polarity", "--data", str(reviews)]
    unlimited = CliRunner().invoke(cli(), [*args, "--out", str(tmp_path / "d")])
    assert "no reviews are left for a distillation pool" in str(unlimited.exception)
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text(json.dumps({"board": "default", "rows": []}))
    refused = CliRunner().invoke(cli(), [*args, "--limit", "30", "--out", str(other)])
    assert "holds another command's results" in str(refused.exception)
    assert json.loads((other / "results.json").read_text())["board"] == "default"


def test_gold_size_is_the_tasks_train_size_and_is_refused_where_the_task_has_none() -> None:
    from harness.boards import Board

    board = Board(name="distill", tasks=["polarity"], models=[])
    distill.gold_size_option(board, "polarity", 100, get_host())
    assert board.task_options["polarity"]["train_size"] == "100"
    with pytest.raises(HarnessError, match="--gold-size sets the task option train_size"):
        distill.gold_size_option(
            Board(name="distill", tasks=["category"], models=[]), "category", 5, get_host()
        )


def test_the_progress_line_counts_the_pool_the_teacher_scores_not_the_boards_limit(
    reviews: Path, tmp_path: Path
) -> None:
    from harness.boards import Board, ModelEntry
    from harness.plugins.distill._distill import PoolSplits
    from harness.runner import Runner

    recorder = ProgressRecorder()
    events = recorder.events

    board = Board(name=distill.BOARD_NAME, tasks=["polarity"], models=[ModelEntry("vader")], data=str(reviews),
                  backend="cpu", limit=30, bootstrap=0, task_options={"polarity": {"train_size": "20"}})  # fmt: skip
    pools = PoolSplits(get_host().registries, board, 40)
    runner = Runner(get_host(), board, tmp_path / "run", RunSettings(progress=recorder), splits=pools)
    [row] = runner.run()["rows"]
    assert row["status"] == "ok" and row["n"] == 40
    assert [e for e in events if e[0] == "start"] == [("start", "polarity · vader", 40)]
    assert sum(e[1] for e in events if e[0] == "advance") == 40
