"""The hand-built leaderboard rows (tests/leaderboard_runs.py) checked against the runner's schema."""

from __future__ import annotations

from dataclasses import fields

from harness.runner import Row
from tests.leaderboard_runs import category_row, error_row, polarity_row


def test_fixture_rows_have_exactly_the_runners_fields():
    expected = {f.name for f in fields(Row)}
    for row in (polarity_row("m", "M", 0.9, 1.0), category_row("m", "M", 0.5, 1.0), error_row("m", "boom")):
        assert set(row) == expected
