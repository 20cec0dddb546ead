"""The stage marker a hybrid writes as each prediction's raw text, read back by whoever needs it.

A hybrid's prediction carries `{"stage": 0, "seconds": [0.0012]}`: the stage
that answered (0 = the small model) and the seconds spent in each stage. The
runner caches raw text with the probabilities, so escalations can be counted
from the cache or predictions.jsonl (per run by the hybrid, per slice by the
core) even when a resumed run computes nothing.
"""

from __future__ import annotations

import json
from typing import Any


def parse_stage_marker(raw: str | None) -> dict[str, Any] | None:
    """The stage marker in a hybrid prediction's raw text, or None when the text is not one."""
    if not raw or not raw.startswith("{"):
        return None
    try:
        marker = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("stage"), int):
        return None
    return marker
