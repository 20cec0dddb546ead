"""A real run killed with SIGKILL at random points resumes from its prediction cache, losing and repeating nothing.

The scoring model is a real (tiny, random-weight) DistilBERT run through
`harness run` in a subprocess. A pacing plugin, installed the way any
third-party plugin is (an entry point on PYTHONPATH), sleeps after every batch
so that kills land mid-run. A trigger added to the cache before the first run
logs every committed prediction, so a prediction computed twice would show.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cache import SCHEMA
from tests.helpers import cached_rows, install_pacer

pytestmark = pytest.mark.slow

N_REVIEWS = 150
SEED = 8
HEADER = ("marketplace customer_id review_id product_id product_parent product_title product_category "
          "star_rating helpful_votes total_votes vine verified_purchase review_headline review_body review_date")  # fmt: skip
WORDS = ("great", "awful", "fine", "broken", "love", "hate", "perfect", "terrible", "cheap", "late", "fast")


def write_reviews(path: Path) -> None:
    rng = random.Random(SEED)
    lines = [HEADER.replace(" ", "\t")]
    for i in range(N_REVIEWS):
        body = f"review {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40)))
        stars = rng.choice("1245")
        lines.append("\t".join(["US", "1", f"R{i}", "P", "1", "t", "Gift Card", stars, "0", "0", "N", "Y", "h", body, "2015-01-01"]))  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def log_committed_predictions(cache: Path) -> None:
    """Every row the harness commits is logged by a trigger, in the same transaction as the row."""
    cache.parent.mkdir(parents=True)
    with sqlite3.connect(cache) as conn:
        conn.execute(SCHEMA)
        conn.execute("CREATE TABLE scored (text_key TEXT NOT NULL)")
        conn.execute(
            "CREATE TRIGGER log_scored AFTER INSERT ON predictions BEGIN "
            "INSERT INTO scored VALUES (new.text_key); END"
        )
    conn.close()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_encoders import build_distilbert

    return build_distilbert(tmp_path_factory.mktemp("distilbert"))


def command(model_dir: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "harness", "run", "--task", "polarity", "--model", f"hf-classifier:{model_dir}",
            "--data", str(data), "--out", str(out), "--model-option", "batch_size=4", "--model-option",
            "engine=torch", "--task-option",
            "train_size=0", "--backend", "cpu", "--backend-option", "threads=1", "--bootstrap", "50"]  # fmt: skip


def predictions(run_dir: Path) -> dict[str, dict]:
    lines = (run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    by_id = {r["id"]: r for r in records}
    assert len(by_id) == len(records), "an example was written twice"
    return by_id


def test_sigkill_at_random_points_then_resume_matches_an_uninterrupted_run(model_dir, tmp_path):
    data = tmp_path / "reviews.tsv"
    write_reviews(data)
    env = {
        **os.environ,
        "PYTHONPATH": str(install_pacer(tmp_path / "plugins")),
        "HARNESS_LOAD_PLUGINS": "pacer",
    }
    reference = tmp_path / "reference"
    done = subprocess.run(
        command(model_dir, data, reference), env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr

    run_dir = tmp_path / "resumed"
    cache = run_dir / "cache.sqlite"
    log_committed_predictions(cache)
    paced = {**env, "PACER_SECONDS": "0.05"}
    rng = random.Random(SEED)
    first_target = rng.randint(5, 50)
    # One kill after a random delay (start-up, loading or scoring), then two at random points of the scoring.
    kills = [
        ("delay", rng.uniform(0.5, 4.0)),
        ("rows", first_target),
        ("rows", rng.randint(first_target + 10, 130)),
    ]
    for kind, point in kills:
        process = subprocess.Popen(command(model_dir, data, run_dir), env=paced,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        began = time.monotonic()
        while time.monotonic() - began < 120:
            if process.poll() is not None:
                pytest.fail(f"the run ended before its kill point {kind}={point}: {process.stderr.read()!r}")
            if (kind == "delay" and time.monotonic() - began >= point) or (
                kind == "rows" and cached_rows(cache) >= point
            ):
                break
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
        assert not (run_dir / "results.json").exists()  # nothing claims a finished run
        assert not (run_dir / "predictions.jsonl").exists()  # and no half-written predictions file
    committed = cached_rows(cache)
    assert 0 < committed < N_REVIEWS

    final = subprocess.run(
        command(model_dir, data, run_dir), env=paced, capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stderr
    [row] = json.loads((run_dir / "results.json").read_text())["rows"]
    [expected] = json.loads((reference / "results.json").read_text())["rows"]
    assert row["status"] == "ok" and row["n"] == expected["n"] == N_REVIEWS
    assert row["cached"] == committed and row["computed"] == N_REVIEWS - committed
    with sqlite3.connect(cache) as conn:
        logged, distinct = conn.execute("SELECT count(*), count(DISTINCT text_key) FROM scored").fetchone()
    conn.close()
    assert logged == distinct == N_REVIEWS  # every example committed exactly once across all four runs
    assert row["metrics"] == pytest.approx(expected["metrics"], abs=1e-6)
    got, want = predictions(run_dir), predictions(reference)
    assert got.keys() == want.keys() and len(got) == N_REVIEWS
    for key, record in want.items():
        assert got[key]["probs"] == pytest.approx(record["probs"], abs=1e-6)
        assert got[key]["pred"] == record["pred"]
