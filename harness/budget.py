"""The error budget: how many reviews of a row may fail on their own before the row fails.

A model that raises on one odd review should not lose the other thousands of
answers, and must not hide the failure either. With a budget (`--max-errors 5%`
or `--max-errors 3`), a failing batch is split down to single reviews; those
that still fail are left out of the row's metrics and listed with their ids,
and the row fails as soon as more reviews failed than the budget allows.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError

NO_BUDGET = "0"


@dataclass(frozen=True)
class ErrorBudget:
    """At most `count` failed reviews, or at most `share` (0..1) of a row's reviews; 0 fails on the first."""

    count: int | None = 0
    share: float | None = None
    text: str = NO_BUDGET

    @classmethod
    def parse(cls, text: str, where: str = "--max-errors") -> ErrorBudget:
        """`5%` (a share of the row's reviews) or `3` (a number of reviews)."""
        given = str(text).strip()
        try:
            if given.endswith("%"):
                share = float(given[:-1]) / 100
                if not 0 <= share <= 1:
                    raise ValueError(given)
                return cls(count=None, share=share, text=given)
            count = int(given)
            if count < 0:
                raise ValueError(given)
        except ValueError:
            raise HarnessError(
                f"{where} takes a number of reviews (e.g. 3) or a share of a row's reviews (e.g. 5%), "
                f"not {text!r}"
            ) from None
        return cls(count=count, share=None, text=given)

    @property
    def allows_any(self) -> bool:
        return bool(self.count) or bool(self.share)

    def exceeded(self, failed: int, total: int | None) -> bool:
        """Whether `failed` reviews of a row of `total` (None: not known yet) are more than allowed."""
        if self.count is not None:
            return failed > self.count
        if total is None or self.share is None:
            return False
        return failed > self.share * total
