"""The errors the harness raises for people to read: one line each, no traceback needed.

Each carries the exit code the command line ends with: 2 when nothing ran
(a usage or preflight problem), 1 when a run started and did not end well.
"""

from __future__ import annotations


class HarnessError(Exception):
    """An error whose message is meant for the user as it is (no traceback needed)."""

    exit_code = 2


class UnknownNameError(HarnessError, KeyError):
    """A name no plugin registered; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CollisionError(HarnessError):
    """Two plugins registered the same name."""


class RunFailed(HarnessError):
    """A run that started did not end well: a row failed, or it stopped on a storage error."""

    exit_code = 1


class DamagedData(HarnessError):
    """A data file that breaks before its end (a cut download, a corrupt archive): the run stops there.

    Scoring the rows before the break would answer for part of the file as if it were all of it.
    """

    exit_code = 3
