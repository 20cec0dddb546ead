"""Parsing the KEY=VALUE options that users give to models, tasks and backends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harness.errors import HarnessError


class OptionError(HarnessError, ValueError):
    """A bad option value; a ValueError too, so option checks read like argument checks."""


def choice_option(options: Mapping[str, str], key: str, choices: Sequence[str]) -> str:
    """One of `choices`; absent or empty means the first, which is the default."""
    value = options.get(key) or choices[0]
    if value not in choices:
        raise OptionError(f"{key}={value!r}: choose one of {', '.join(choices)}")
    return value


def int_option(options: Mapping[str, str], key: str, default: int, *, minimum: int) -> int:
    """A whole-number option of at least `minimum`; absent or empty means `default`."""
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise OptionError(f"option {key}={raw!r} must be a whole number") from None
    if value < minimum:
        raise OptionError(f"option {key}={raw!r} must be at least {minimum}")
    return value
