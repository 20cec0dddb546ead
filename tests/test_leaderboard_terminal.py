"""`harness leaderboard` as a person sees it: in pseudo-terminals 80, 100 and 120 columns wide, and in a pipe."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.leaderboard_runs import HYBRID, LARGE, SMALL, board

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LABELS = {
    SMALL: "MiniLM-L6 (fine-tuned)",
    LARGE: "SmolLM2-135M (label scoring)",
    HYBRID: "Hybrid MiniLM>SmolLM2 @0.9",
    "vader": "VADER",
    "tfidf-logreg": "TF-IDF + logistic regression",
}

USD_PER_1000 = {SMALL: 0.05, LARGE: 1.2, HYBRID: 0.3, "vader": 0.1, "tfidf-logreg": 0.02}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """The default board's rows (same labels, a hybrid, prices), from known predictions."""
    wrong = {SMALL: set(range(0, 60, 2)), LARGE: set(range(7)), HYBRID: set(range(0, 12, 2)),
             "vader": set(range(0, 100, 3)), "tfidf-logreg": set(range(1, 50, 2))}  # fmt: skip
    runtime = {SMALL: 1.0, LARGE: 30.0, HYBRID: 7.0, "vader": 2.0, "tfidf-logreg": 0.5}
    tmp = tmp_path_factory.mktemp("board")
    board(tmp, {spec: (LABELS[spec], wrong[spec], runtime[spec], USD_PER_1000[spec]) for spec in LABELS})
    return tmp / "run"


def in_terminal(columns: int, *args: str) -> list[str]:
    """`harness leaderboard ARGS` on a pseudo-terminal `columns` wide; the screen's lines, colours removed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "leaderboard", *args],
        stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed when the command exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0, b"".join(chunks).decode("utf-8", "replace")
    text = ANSI.sub("", b"".join(chunks).decode("utf-8"))
    return text.replace("\r\n", "\n").splitlines()


def table_rows(lines: list[str]) -> list[str]:
    """The table's body: the lines after the header rule, up to the first line that is not a row."""
    start = next(i for i, line in enumerate(lines) if line.startswith("──")) + 1
    rows = []
    for line in lines[start:]:
        if not re.search(r"\d\.\d{3} ± \d\.\d{3}", line):
            break
        rows.append(line)
    return rows


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_the_board_fits_the_terminal_and_shows_every_rows_label_main_metric_and_dollars(run_dir, columns):
    lines = in_terminal(columns, str(run_dir))
    assert max(len(line) for line in lines) <= columns
    rows = table_rows(lines)
    assert len(rows) == len(LABELS)
    legend = {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in lines if re.match(r"\(\d+\) ", line)}
    for spec, label in LABELS.items():
        shown = label if label not in legend else f"… {legend[label]}"
        [row] = [row for row in rows if shown in row]
        assert re.search(rf"(?<![\d.]){re.escape(f'{USD_PER_1000[spec]:.3g}')}(?![\d])", row), (spec, row)
    headers = " ".join(lines[: lines.index(next(line for line in lines if line.startswith("──")))])
    for word in ("model", "macro-F1", "1,000", "reviews/s", "large", "Pareto"):
        assert word in headers
    assert all(re.search(r"0\.\d{3} ± 0\.\d{3}", row) and re.search(r"front|dominated", row) for row in rows)
    assert any(line.startswith("Best on macro-F1: ") for line in lines)


def test_rows_are_sorted_by_the_main_metric(run_dir):
    rows = table_rows(in_terminal(120, str(run_dir)))
    values = [float(re.search(r"(\d\.\d{3}) ±", row).group(1)) for row in rows]
    assert values == sorted(values, reverse=True)


def test_columns_all_fits_by_stacking_and_shows_every_column(run_dir):
    lines = in_terminal(100, str(run_dir), "--columns", "all")
    assert max(len(line) for line in lines) <= 100
    text = " ".join(lines)
    for header in (
        "Acc total",
        "Acc pos",
        "Acc neg",
        "runtime (s)",
        "cost ($)",
        "Pareto ($)",
        "dominated by",
    ):
        assert all(word in text for word in header.split()), header


def test_wide_prints_every_column_unfolded(run_dir):
    lines = in_terminal(80, str(run_dir), "--wide")
    header = next(line for line in lines if "Acc total" in line)
    assert "runtime (s)" in header and "$ per 1,000 reviews" in header and len(header) > 80


def test_without_a_terminal_the_board_is_100_columns(run_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    out = subprocess.run([sys.executable, "-m", "harness", "leaderboard", str(run_dir)], capture_output=True,
                         text=True, env=env, check=True).stdout  # fmt: skip
    assert "\x1b" not in out and max(len(line) for line in out.splitlines()) <= 100


def test_columns_shape_only_the_terminal_formats(run_dir):
    wrong = subprocess.run([sys.executable, "-m", "harness", "leaderboard", str(run_dir), "--columns", "speed"],
                           capture_output=True, text=True)  # fmt: skip
    assert wrong.returncode == 2 and "unknown column set speed" in wrong.stderr
    md = subprocess.run([sys.executable, "-m", "harness", "leaderboard", str(run_dir), "--format", "md",
                         "--columns", "cost"], capture_output=True, text=True)  # fmt: skip
    assert md.returncode != 0 and "keeps every column" in md.stderr


def test_the_end_of_a_run_prints_the_same_view_and_stores_the_findings(host, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from harness import cli as cli_module
    from harness import plugin_manager

    monkeypatch.setattr(plugin_manager, "_host", host)
    monkeypatch.delenv("COLUMNS", raising=False)

    def run(out: Path, *extra: str) -> str:
        args = ["run", "--task", "toy", "--data", "toy:100", "--model", "words", "--backend", "cpu",
                "--bootstrap", "10", "--out", str(out), *extra]  # fmt: skip
        result = CliRunner().invoke(cli_module.cli, args)
        assert result.exit_code == 0, result.output
        return result.output

    default, cost = run(tmp_path / "a"), run(tmp_path / "b", "--columns", "cost")
    assert "latency" not in default and "latency" in cost
    board = default[: default.index("\nfiles:")]
    assert max(len(line) for line in board.splitlines()) <= 100, [
        wide for wide in board.splitlines() if len(wide) > 100
    ]
    (found,) = json.loads((tmp_path / "a" / "results.json").read_text(encoding="utf-8"))["findings"]
    assert found["task"] == "toy" and found["sentences"][0] in " ".join(board.split("\n"))


def test_abbreviated_labels_are_numbered_in_order_and_keep_the_in_training_mark():
    from harness.leaderboard._terminal import abbreviations

    short = abbreviations(["Flan-UL2 (20B), label scoring †", "VADER", "SmolLM2-135M (label scoring)"], 16)
    assert short == {
        "Flan-UL2 (20B), label scoring †": "Flan-UL2… (1) †",
        "SmolLM2-135M (label scoring)": "SmolLM2-135… (2)",
    }
    assert all(len(text) <= 16 for text in short.values())
