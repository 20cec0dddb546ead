"""`harness new-plugin NAME`: a model plugin package whose tests pass as generated.

The files are written from the templates below; docs/plugins.md shows the
same files (a test keeps the two identical), so the guide never drifts from
what the command makes.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.errors import HarnessError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "harness-{name}"
version = "0.1.0"
description = "A keyword polarity model for review-harness."
requires-python = ">=3.11"
dependencies = ["review-harness"]

[project.entry-points.harness]
{name} = "{module}"

[tool.setuptools]
py-modules = ["{module}"]
"""

MODULE = '''\
"""A review-harness model plugin: polarity from counts of positive and negative words."""

import hashlib
import json

import numpy as np

from harness import ModelFactory, Option, OptionSet, Register, hookimpl

POSITIVE = ["great", "love", "excellent", "perfect", "happy", "recommend", "best", "works", "good"]
NEGATIVE = ["broke", "terrible", "waste", "refund", "worst", "poor", "disappointed", "bad", "returned"]

OPTIONS = OptionSet(
    Option("smoothing", float, 1.0, "added to both counts: no keyword at all is 50/50", minimum=0.01),
)


class KeywordModel:
    """Counts keywords; the harness calls predict() with batches of review texts."""

    def __init__(self, smoothing: float) -> None:
        self.name = "{name}"
        self.smoothing = smoothing

    def predict(self, texts, task):
        """Probabilities [len(texts), 2] in the task's label order: negative, positive."""
        rows = []
        for text in texts:
            words = [word.strip(".,!?") for word in text.lower().split()]
            positive = sum(word in POSITIVE for word in words) + self.smoothing
            negative = sum(word in NEGATIVE for word in words) + self.smoothing
            rows.append([negative / (positive + negative), positive / (positive + negative)])
        return np.array(rows)

    def fingerprint(self):
        """Everything that changes predictions, each word list under its own key: the cache keys on it."""
        settings = {{"positive": POSITIVE, "negative": NEGATIVE, "smoothing": self.smoothing}}
        return "{name}-" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def make_model(arg, ctx):
    """The factory: `arg` is the text after "{name}:" in the spec, `ctx.options` the user's options."""
    values = OPTIONS.parse(ctx.options)
    return KeywordModel(values["smoothing"])


@hookimpl
def register_models(register: Register[ModelFactory]) -> None:
    register(
        "{name}",
        make_model,
        description="counts positive and negative keywords",
        options=OPTIONS,
        tasks=["polarity"],
    )
'''

TEST = '''\
"""The plugin's own tests: the harness' conformance checks, then a real run on the demo reviews."""

from harness.testing import check_model_plugin, run_model_plugin

import {module}


def test_the_model_keeps_the_plugin_contract(tmp_path):
    check_model_plugin({module}, "{name}", workdir=tmp_path)


def test_the_model_scores_the_demo_reviews(tmp_path):
    row = run_model_plugin({module}, "{name}", task="polarity", limit=50, workdir=tmp_path)
    assert row["status"] == "ok" and row["n"] == 50
    assert row["metrics"]["accuracy"] > 0.5
'''

README = """\
# harness-{name}

A model plugin for review-harness: `--model {name}` scores review polarity by
counting positive and negative keywords.

Install it into the harness' environment (the Python that runs `harness`):

```console
python -m pip install -e .
harness plugins --hook register_models
harness run --task polarity --model {name} --limit 200
```

Test it with the harness' conformance checks:

```console
python -m pytest
```
"""


def module_name(name: str) -> str:
    return "harness_" + name.replace("-", "_")


def plugin_files(name: str) -> dict[str, str]:
    """The package's files, by path relative to its folder."""
    if not NAME_PATTERN.match(name):
        raise HarnessError(
            f"plugin name {name!r} must be lower-case letters and digits, words joined by '-' (e.g. keywords)"
        )
    module = module_name(name)
    fill = {"name": name, "module": module}
    return {
        "pyproject.toml": PYPROJECT.format(**fill),
        f"{module}.py": MODULE.format(**fill),
        f"tests/test_{module}.py": TEST.format(**fill),
        "README.md": README.format(**fill),
    }


def write_plugin(name: str, parent: Path) -> Path:
    """Write the package into `parent/harness-NAME`; never over an existing folder."""
    files = plugin_files(name)
    folder = parent / f"harness-{name}"
    if folder.exists():
        raise HarnessError(f"{folder} already exists; choose another name or folder (--dir)")
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return folder
