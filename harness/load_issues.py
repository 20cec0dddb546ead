"""The data's malformed rows: every one listed in a file of the run, the first few shown on the terminal.

results.json keeps the first 20 of each row's load issues; a file with
thousands of broken rows needs its whole list somewhere a person can read
and grep, so the run writes it to RUN_DIR/malformed_rows.txt, one
`file:line: reason` a line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from harness.types import IssueLog, LoadIssue

ISSUES_FILE = "malformed_rows.txt"
SHOWN = 3  # reasons on the terminal; the file has them all


class IssueFile:
    """Writes the load issues of a run's data to RUN_DIR/malformed_rows.txt.

    Every row reads the data again and meets the same issues, so the list
    kept is the longest one a row read (a row that failed half way read
    fewer); a run whose data has none removes an earlier run's file.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ISSUES_FILE
        self.partial = run_dir / f".{ISSUES_FILE}.partial"
        self.kept = 0
        self._out: IO[str] | None = None

    def log(self) -> IssueLog:
        """An issue log for one row, whose every issue goes to the partial list."""
        issues = IssueLog()
        self.partial.unlink(missing_ok=True)
        issues.on_issue = self._write
        return issues

    def _write(self, issue: LoadIssue) -> None:
        if self._out is None:
            self._out = open(self.partial, "w", encoding="utf-8")  # noqa: SIM115 - closed by keep()
        self._out.write(" ".join(str(issue).split()) + "\n")

    def keep(self, issues: IssueLog) -> None:
        """The row's list replaces the file when it is the longest yet."""
        issues.on_issue = None
        if self._out is not None:
            self._out.close()
            self._out = None
        if issues.total > self.kept and self.partial.exists():
            self.partial.replace(self.path)
            self.kept = issues.total
        self.partial.unlink(missing_ok=True)

    def finish(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        self.partial.unlink(missing_ok=True)
        if not self.kept:
            self.path.unlink(missing_ok=True)


def malformed_summary(run_dir: Path, rows: Sequence[Mapping[str, Any]]) -> str:
    """The count of malformed rows, the first few with their line numbers, and where the rest are."""
    worst = max(rows, key=lambda row: int((row.get("load_issues") or {}).get("total") or 0), default=None)
    issues = (worst or {}).get("load_issues") or {}
    total = int(issues.get("total") or 0)
    if not total:
        return ""
    found = sorted(run_dir.glob(f"seed-*/{ISSUES_FILE}")) if not (run_dir / ISSUES_FILE).exists() else []
    where = run_dir / ISSUES_FILE if not found else found[0]
    # the path on a line of its own: a long run directory must not push the count past the terminal's edge
    lines = [f"malformed rows: {total}, skipped; all of them are listed in", f"  {where}", "the first:"]
    from harness.leaderboard._terminal import printable

    lines += [f"  {' '.join(printable(str(issue)).split())}" for issue in issues.get("first", [])[:SHOWN]]
    if total > SHOWN:
        lines.append(f"  ... and {total - SHOWN} more")
    return "\n".join(lines) + "\n"
