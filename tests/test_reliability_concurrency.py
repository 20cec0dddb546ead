"""Two runs in one output directory, and writes cut short: no file is ever half-written or mixed.

A second `harness run` in a directory in use is refused (the run-directory
lock) while the first finishes intact; outputs are written to a temporary file
and renamed, so a crash or a kill mid-write leaves the old file or the new one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from harness.files import atomic_write, write_json
from tests.helpers import cached_rows, install_pacer

WRITER = """
import json
import sys
from pathlib import Path

from harness.files import atomic_write

target = Path(sys.argv[1])
rounds = [json.dumps({"round": i, "rows": ["x" * 200] * 100_000}) for i in range(2)]
for i in range(100_000):
    atomic_write(target, rounds[i % 2])
"""


def test_a_second_run_in_the_same_directory_is_refused_and_the_first_finishes_intact(tmp_path):
    out = tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": str(install_pacer(tmp_path / "plugins")),
        "HARNESS_LOAD_PLUGINS": "pacer",
    }
    command = [sys.executable, "-m", "harness", "run", "--task", "polarity", "--model", "vader", "--limit", "40",
               "--out", str(out), "--model-option", "batch_size=1", "--bootstrap", "10", "--backend", "cpu"]  # fmt: skip
    first = subprocess.Popen(command, env={**env, "PACER_SECONDS": "0.5"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while cached_rows(out / "cache.sqlite") < 2:  # the first run holds the lock and is scoring
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.poll() is None  # the refusal came while the first run was still going
    assert second.returncode == 2  # nothing ran
    assert "another harness run is using" in second.stderr and "--out" in second.stderr
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    [row] = json.loads((out / "results.json").read_text())["rows"]
    assert row["status"] == "ok" and row["n"] == 40 and row["computed"] == 40
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 40 and len({json.loads(line)["id"] for line in lines}) == 40


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_debris(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    write_json(target, {"rows": ["old"]})
    real_fsync = os.fsync

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_json(target, {"rows": ["new"] * 10_000})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert json.loads(target.read_text()) == {"rows": ["old"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_sigkill_during_writes_never_leaves_a_half_written_file(tmp_path):
    target = tmp_path / "results.json"
    rng = random.Random(3)
    for _ in range(10):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)])
        deadline = time.monotonic() + 60
        while not target.exists():
            assert writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(rng.uniform(0.02, 0.3))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        content = json.loads(target.read_text())  # whole, whichever round it is
        assert len(content["rows"]) == 100_000
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "results.json"]
    assert all(name.startswith(".results.json.") for name in leftovers)  # hidden temporaries at most


def test_atomic_write_replaces_bytes_and_text_whole(tmp_path):
    target = tmp_path / "board.png"
    atomic_write(target, b"\x89PNG" + bytes(1000))
    atomic_write(target, "text")
    assert target.read_text() == "text"
    assert [p.name for p in tmp_path.iterdir()] == ["board.png"]


def test_ctrl_c_exits_130_with_one_line_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": str(install_pacer(tmp_path / "plugins")),
        "HARNESS_LOAD_PLUGINS": "pacer",
    }
    command = [sys.executable, "-m", "harness", "run", "--task", "polarity", "--model", "vader", "--limit", "40",
               "--out", str(out), "--model-option", "batch_size=1", "--bootstrap", "10", "--backend", "cpu"]  # fmt: skip
    # A shell starts a background job with Ctrl-C ignored, and a child inherits that; the run under test
    # gets Ctrl-C's usual handling whichever way the suite itself was started.
    first = subprocess.Popen(command, env={**env, "PACER_SECONDS": "0.5"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 120
    while cached_rows(out / "cache.sqlite") < 3:
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    first.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("Error: interrupted; run the same command again")
    assert "Traceback" not in stderr and not (out / "results.json").exists()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [row] = json.loads((out / "results.json").read_text())["rows"]
    assert row["cached"] >= 3 and row["cached"] + row["computed"] == row["n"] == 40
