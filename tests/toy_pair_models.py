"""Toy `cheap`, `sharp` and `boastful` models on the toy task, registered by one plugin, for the sweep tests."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from harness.hookspecs import hookimpl


class CountingModel:
    """Toy polarity from the toy source's words; counts every text it is asked to score."""

    def __init__(self, name: str, sharp: bool, boastful: bool = False) -> None:
        self.name, self.sharp, self.boastful, self.predicted = name, sharp, boastful, 0

    def predict(self, texts, task):
        self.predicted += len(texts)
        rows = []
        for text in texts:
            u = unit(self.name + text)
            if self.sharp:  # right on every review, never fully sure
                p = 0.9 if "great" in text else 0.1
            elif self.boastful:  # over 0.99 sure on most reviews, fully sure on some, right or wrong
                sure = 1.0 if u < 0.2 else 1.0 - 0.3 * (u - 0.2) ** 5
                p = sure if ("great" in text) == (u < 0.85) else 1.0 - sure
            elif "great" in text:
                p = 0.5 + 0.49 * u
            elif "awful" in text:
                p = 0.5 - 0.49 * u
            else:  # 'fine' reviews are negative; the cheap model guesses
                p = 0.25 + 0.5 * u
            rows.append([1 - p, p])
        return np.array(rows)

    def fingerprint(self) -> str:
        return f"counting-{self.name}"


class PairPlugin:
    """Registers `cheap` (unsure, often wrong on 'fine') and `sharp` (always right) models."""

    def __init__(self) -> None:
        self.made: list[CountingModel] = []

    def _factory(self, name: str, sharp: bool, boastful: bool = False):
        def make(arg, ctx):
            self.made.append(CountingModel(name, sharp, boastful))
            return self.made[-1]

        return make

    @hookimpl
    def register_models(self, register):
        register("cheap", self._factory("cheap", False), description="toy small model")
        register("sharp", self._factory("sharp", True), description="toy large model")
        register("boastful", self._factory("boastful", False, True), description="over-confident toy model")


def records(run_dir, model):
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["model"] == model]


def unit(text: str) -> float:
    """A stable pseudo-random number in [0, 1) per text."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 2**32
