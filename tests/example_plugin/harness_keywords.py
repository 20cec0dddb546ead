"""A complete harness model plugin: counts positive and negative words."""

import hashlib

import numpy as np

from harness.hookspecs import hookimpl

POSITIVE = {"great", "love", "excellent", "perfect", "happy", "recommend", "best", "works", "good"}
NEGATIVE = {"broke", "terrible", "waste", "refund", "worst", "poor", "disappointed", "bad", "returned"}


class KeywordModel:
    name = "keywords"

    def predict(self, texts, task):
        if list(task.labels) != ["negative", "positive"]:
            raise ValueError("keywords only knows the polarity task")
        rows = []
        for text in texts:
            words = [w.strip(".,!?") for w in text.lower().split()]
            pos = sum(w in POSITIVE for w in words) + 1
            neg = sum(w in NEGATIVE for w in words) + 1
            rows.append([neg / (pos + neg), pos / (pos + neg)])
        return np.array(rows)

    def fingerprint(self):
        words = ",".join(sorted(POSITIVE)) + "|" + ",".join(sorted(NEGATIVE))
        return "keywords-" + hashlib.sha256(words.encode()).hexdigest()[:12]


@hookimpl
def register_models(register):
    register("keywords", lambda arg, ctx: KeywordModel(), description="counts sentiment keywords")
