"""What the polarity and category tasks share: option parsing, model input, seeded hashing.

Task options arrive as strings (from `--task-option key=value` or a board
file); every one is checked here, so a typo or a bad value fails before any
model runs instead of silently falling back to a default.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.types import Review

INPUTS = ("body", "title+body")
MARKUP = ("clean", "keep")
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def check_option_names(options: Mapping[str, str], known: Sequence[str], task: str) -> None:
    """Reject option names the task does not know, suggesting the closest known one."""
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"task {task!r} has no option {key!r}{hint} (options: {', '.join(known)})")


def bool_option(options: Mapping[str, str], key: str, default: bool) -> bool:
    raw = options.get(key)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"option {key} must be true or false, got {raw!r}")


def input_option(options: Mapping[str, str]) -> str:
    """Which review fields the model reads: `body` (the study's choice) or `title+body`."""
    value = options.get("input", "body")
    if value not in INPUTS:
        raise ValueError(f"option input must be one of {', '.join(INPUTS)}, got {value!r}")
    return value


def markup_option(options: Mapping[str, str]) -> str:
    """What to do with HTML in review text: `clean` (default) or `keep` it as the release has it."""
    value = options.get("markup", "clean")
    if value not in MARKUP:
        raise ValueError(f"option markup must be one of {', '.join(MARKUP)}, got {value!r}")
    return value


def clean_markup(text: str) -> str:
    """Review text as a reader sees it: `<br />` as a line break and HTML entities (`&#34;`) decoded.

    The release files store reviews as HTML fragments; a model reading
    `&#34;` sees five tokens of noise where a reader sees a quote mark.
    """
    return html.unescape(_LINE_BREAK.sub("\n", text))


def review_input(review: Review, mode: str, markup: str = "clean") -> str:
    """The text a model sees for a review: the title on its own first line under `title+body`, and
    markup cleaned unless the task keeps it. Sources never rewrite text; this is the one place that does."""
    text = review.text
    if mode == "title+body" and review.title.strip():
        text = f"{review.title.strip()}\n{text}"
    return clean_markup(text) if markup == "clean" else text


def label_words_option(options: Mapping[str, str], default: Sequence[str]) -> tuple[str, ...]:
    """Comma-separated label words, one per label in label order."""
    raw = options.get("label_words")
    if raw is None:
        return tuple(default)
    words = tuple(w.strip() for w in raw.split(","))
    if len(words) != len(default) or not all(words):
        raise ValueError(
            f"option label_words needs {len(default)} non-empty comma-separated words "
            f"(for {', '.join(default)}), got {raw!r}"
        )
    return words


def prompt_option(options: Mapping[str, str], default: str) -> str:
    """The instruction prompt: a template with `{text}` and optionally `{options}` (the label words)."""
    prompt = options.get("prompt", default)
    try:
        first = prompt.format(text="\x00", options="")
        second = prompt.format(text="\x01", options="")
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"option prompt must be a template with only {{text}} and {{options}} placeholders "
            f"(double other braces): {error!r}"
        ) from None
    if first == second:
        raise ValueError("option prompt must contain the {text} placeholder")
    return prompt


def unit_hash(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by the seed and the key: a seeded draw that needs no order or state."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def fingerprint(parts: Mapping[str, Any]) -> str:
    """A short stable hash of a task's definition."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
