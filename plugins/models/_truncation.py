"""Fitting a long review into a model's window without dropping it.

The study's code skipped reviews longer than 512 tokens; here every review is
scored under an explicit policy:

- ``head``: the first tokens;
- ``head+tail`` (default): a quarter of the budget from the start and the rest
  from the end, where reviews tend to state their verdict (Sun et al., 2019,
  found head+tail best for long-review classification);
- ``window``: overlapping windows covering the whole text, whose predictions
  the model averages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

POLICIES = ("head", "head+tail", "window")


Token = TypeVar("Token")  # token ids, or characters for a served model


def fit_tokens(
    ids: Sequence[Token], budget: int, policy: str = "head+tail", stride: int | None = None
) -> tuple[list[list[Token]], bool]:
    """Return the token windows to score for one text and whether anything was cut.

    `budget` counts content tokens only (leave room for special tokens). Every
    policy returns at least one window, so no text is ever skipped.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown truncation policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if budget < 1:
        raise ValueError("token budget must be at least 1")
    ids = list(ids)
    if len(ids) <= budget:
        return [ids], False
    if policy == "head":
        return [ids[:budget]], True
    if policy == "head+tail":
        head = budget // 4
        return [ids[:head] + ids[len(ids) - (budget - head) :]], True
    step = stride or max(1, budget // 2)
    windows = []
    start = 0
    while True:
        windows.append(ids[start : start + budget])
        if start + budget >= len(ids):
            break
        start += step
    return windows, False
