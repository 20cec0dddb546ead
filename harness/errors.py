"""The errors the harness raises for people to read: one line each, no traceback needed."""

from __future__ import annotations


class HarnessError(Exception):
    """An error whose message is meant for the user as it is (no traceback needed)."""


class UnknownNameError(HarnessError, KeyError):
    """A name no plugin registered; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CollisionError(HarnessError):
    """Two plugins registered the same name."""
