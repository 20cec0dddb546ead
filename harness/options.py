"""Parsing the KEY=VALUE options that users give to models, tasks and backends."""

from __future__ import annotations

from collections.abc import Mapping

from harness.registry import HarnessError


class OptionError(HarnessError, ValueError):
    """A bad option value; a ValueError too, so option checks read like argument checks."""


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
