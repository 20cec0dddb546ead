"""What the polarity and category tasks share: option parsing, model input, seeded hashing.

Task options arrive as strings (from `--task-option key=value` or a board
file) and are parsed strictly by the task's declaration, so a typo or a bad
value fails before any model runs instead of silently falling back to a default.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness import Option, OptionError, OptionSet, Review

INPUTS = ("body", "title+body")
MARKUP = ("clean", "keep")
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


SHARED_OPTIONS = OptionSet(
    Option("input", str, "body", "what a model reads: body (the study's) or title+body", choices=INPUTS),
    Option(
        "markup", str, "clean", "clean: <br /> and HTML entities as a reader sees them; keep", choices=MARKUP
    ),
    Option("prompt", str, None, "instruction template with {text}, {options} and {k} for LLMs"),
    Option("label_words", str, None, "comma-separated words LLMs answer with, one per label"),
    Option("slice_col", str, None, "a data column to report quality by (beside length, stars, category...)"),
)


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


def facets(review: Review, slice_col: str | None) -> dict[str, str]:
    """What slicing reads of a review besides its text: stars, category and the user's column if any."""
    found: dict[str, str] = {}
    if review.stars is not None:
        found["stars"] = str(review.stars)
    if review.category:
        found["category"] = review.category
    if slice_col and review.extra.get(slice_col) not in (None, ""):
        found[slice_col] = review.extra[slice_col]
    return found


def label_words_option(raw: str | None, default: Sequence[str]) -> tuple[str, ...]:
    """Comma-separated label words, one per label in label order."""
    if raw is None:
        return tuple(default)
    words = tuple(w.strip() for w in raw.split(","))
    if len(words) != len(default) or not all(words):
        raise OptionError(
            f"option label_words needs {len(default)} non-empty comma-separated words "
            f"(for {', '.join(default)}), got {raw!r}"
        )
    return words


def prompt_option(prompt: str | None, default: str) -> str:
    """The instruction prompt: a template with `{text}` and optionally `{options}` (the label words)
    and `{k}` (how many labels an LM is asked for: 1, or 1..K with its `topk_prompts=K`)."""
    prompt = default if prompt is None else prompt
    try:
        first = prompt.format(text="\x00", options="", k=1)
        second = prompt.format(text="\x01", options="", k=1)
    except (KeyError, IndexError, ValueError) as error:
        raise OptionError(
            f"option prompt must be a template with only {{text}}, {{options}} and {{k}} placeholders "
            f"(double other braces): {error!r}"
        ) from None
    if first == second:
        raise OptionError("option prompt must contain the {text} placeholder")
    return prompt


def unit_hash(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by the seed and the key: a seeded draw that needs no order or state."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def fingerprint(parts: Mapping[str, Any]) -> str:
    """A short stable hash of a task's definition."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
