"""Small, fully controlled plugins for testing the core without real models or data."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterable, Iterator

import numpy as np

from harness.hookspecs import hookimpl
from harness.metrics import predictions
from harness.options import Option, OptionSet
from harness.types import Example, IssueLog, Review, SourceOptions, Splits

WORDS = ("awful", "fine", "great")


class ToyTask:
    """Polarity by stars; reviews whose id ends in 't' form the train split."""

    name = "toy"
    labels = ("negative", "positive")
    label_words = ("negative", "positive")
    prompt = "{text} Options: {options}"

    def split(self, reviews: Iterable[Review], *, limit: int | None, seed: int) -> Splits:
        counts: Counter[str] = Counter()
        train: list[Example] = []
        pending: list[Review] = []
        for review in reviews:
            if review.id.endswith("t"):
                train.append(Example(review.id, review.text, int((review.stars or 0) >= 4)))
            else:
                pending.append(review)
        counts["train"] = len(train)

        def test() -> Iterator[Example]:
            for review in pending[:limit]:
                counts["kept"] += 1
                yield Example(review.id, review.text, int((review.stars or 0) >= 4))

        return Splits(test=test(), train=train, counts=counts)

    def metrics(self, gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
        return {"accuracy": float(np.mean(predictions(probs) == gold))}

    def fingerprint(self) -> str:
        return "toy-task-1"


class ToySource:
    """`toy:N` yields N reviews; every fifth line is malformed and reported."""

    description = "generated reviews"

    def sniff(self, location: str) -> bool:
        return location.startswith("toy:")

    def read(self, location: str, options: SourceOptions, issues: IssueLog) -> Iterator[Review]:
        for line in range(1, int(location.split(":")[1]) + 1):
            if line % 5 == 0:
                issues.add(location, line, "malformed: test row")
                continue
            stars = 1 + line % 5
            suffix = "t" if line % 7 == 0 else ""
            yield Review(
                f"r{line}{suffix}",
                f"review {line} is {WORDS[min(stars // 2, 2)]}" * (line % 3 + 1),
                stars=stars,
            )


class WordModel:
    """Probability of 'positive' from the words; counts calls so tests can see what ran."""

    def __init__(
        self,
        name: str = "words",
        fail_on: str | None = None,
        max_batch: int = 0,
        hang_on: str | None = None,
        interrupt_on: str | None = None,
        silent_on: str | None = None,
    ) -> None:
        self.name = name
        self.fail_on = fail_on
        self.max_batch = max_batch
        self.hang_on = hang_on
        self.interrupt_on = interrupt_on
        self.silent_on = silent_on
        self.calls = 0
        self.predicted = 0
        self.fitted: list[Example] = []

    def fit(self, train, task) -> None:
        self.fitted = list(train)

    def predict(self, texts, task):
        self.calls += 1
        if self.max_batch and len(texts) > self.max_batch:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if self.hang_on and any(self.hang_on in t for t in texts):
            time.sleep(5)
        if self.interrupt_on and any(self.interrupt_on in t for t in texts):
            raise KeyboardInterrupt  # what Ctrl-C raises in the middle of a run
        self.predicted += len(texts)
        rows = []
        for text in texts:
            if self.fail_on and self.fail_on in text:
                raise RuntimeError(f"cannot score {text!r}")
            p = 0.95 if "great" in text else 0.6 if "fine" in text else 0.1
            rows.append([0.0, 0.0] if self.silent_on and self.silent_on in text else [1 - p, p])
        return np.array(rows)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()[:12]


WORD_OPTIONS = OptionSet(
    Option("fail_on", str, None, "raise on texts containing this"),
    Option("max_batch", int, 0, "raise an out-of-memory error on larger batches", minimum=0),
    Option("hang_on", str, None, "sleep on texts containing this"),
    Option("interrupt_on", str, None, "raise KeyboardInterrupt on texts containing this"),
    Option("silent_on", str, None, "answer no label (an unparseable answer) for texts containing this"),
)
SEEDED_OPTIONS = OptionSet(Option("fail_on_seed", int, None, "fail to build with this seed"))


class SeededWordModel(WordModel):
    """The word model, except that a seed picks about a third of the texts whose answer it flips.

    `component` names the seed it reads (`ctx.seed_for`), and its fingerprint
    carries that seed, as a model that fine-tunes or picks demonstrations does.
    """

    def __init__(self, seed: int, component: str) -> None:
        super().__init__(name=f"seeded-words:{component}")
        self.seed, self.component = seed, component

    def predict(self, texts, task):
        probs = super().predict(texts, task)
        flip = [hashlib.sha256(f"{self.seed}|{t}".encode()).digest()[0] < 86 for t in texts]
        return np.where(np.array(flip)[:, None], probs[:, ::-1], probs)

    def fingerprint(self) -> str:
        return f"{super().fingerprint()}-{self.component}-{self.seed}"


class ToyPlugin:
    """Registers the toy task, source and models; keeps the model instances it made."""

    def __init__(self) -> None:
        self.models: list[WordModel] = []
        self.events: list[tuple[str, object]] = []

    def _make(self, arg, ctx) -> WordModel:
        values = WORD_OPTIONS.parse(ctx.options)
        model = WordModel(
            name=f"words:{arg}" if arg else "words",
            fail_on=values["fail_on"],
            max_batch=values["max_batch"],
            hang_on=values["hang_on"],
            interrupt_on=values["interrupt_on"],
            silent_on=values["silent_on"],
        )
        self.models.append(model)
        return model

    def _make_seeded(self, arg, ctx) -> SeededWordModel:
        component = arg or "finetune"
        if ctx.options.get("fail_on_seed") == str(ctx.seed_for(component)):
            raise RuntimeError(f"cannot build with seed {ctx.seed_for(component)}")
        model = SeededWordModel(ctx.seed_for(component), component)
        self.models.append(model)
        return model

    @hookimpl
    def register_models(self, register):
        register("words", self._make, options=WORD_OPTIONS, description="toy word model")
        register("seeded-words", self._make_seeded, options=SEEDED_OPTIONS,
                 description="toy word model whose answers a seed flips")  # fmt: skip

    @hookimpl
    def register_tasks(self, register):
        register("toy", lambda options: ToyTask(), description="toy task")

    @hookimpl
    def register_sources(self, register):
        register("toy", ToySource(), description="toy source")

    @hookimpl
    def on_run_start(self, run):
        self.events.append(("start", run))

    @hookimpl
    def on_batch_end(self, run, task, model, batch):
        self.events.append(("batch", batch))

    @hookimpl
    def on_run_end(self, run, results):
        self.events.append(("end", results))


class ProgressRecorder:
    """A progress display that records what the runner tells it, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, label: str, total: int | None) -> None:
        self.events.append(("start", label, total))

    def advance(self, count: int) -> None:
        self.events.append(("advance", count))

    def stop(self, outcome: str = "done") -> None:
        self.events.append(("stop",) if outcome == "done" else ("stop", outcome))
