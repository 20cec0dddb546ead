"""Teaching a small classifier from a large model's probabilities on reviews nobody labelled.

The teacher scores a pool of reviews drawn from the data outside both the
train split and the split a run with the same data, task options, limit and
seed scores, so the distilled model is never taught on a review it is later
judged on. The teacher runs through the ordinary runner (its predictions land
in the prediction cache, a second distillation scores nothing again); the
student is fine-tuned on the teacher's probabilities as soft targets, with or
without the gold train split, and saved like any fine-tuned weights, keyed by
its base, the texts, the targets and the seed.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from harness import (
    SEED_COMPONENTS,
    Board,
    BoardSplits,
    Example,
    HarnessError,
    IssueLog,
    Registries,
    Runner,
    Scored,
    Splits,
    Task,
    build_model,
    open_reviews,
)
from harness.cache import text_key
from harness.plugins.models._finetune import FinetuneResult, one_hot
from harness.tasks._common import unit_hash

if TYPE_CHECKING:
    from harness.plugins.models.classifiers import HFClassifier


def draw_pool(
    candidates: Iterable[Example], scored: Iterable[Example], size: int, seed: int
) -> list[Example]:
    """The `size` candidates with the lowest seeded hash of their ids, lowest first, none of them scored.

    In that order a smaller pool is the head of a larger one, so the teacher's
    cached predictions serve a pool that grows or shrinks. A candidate is left
    out when its id or its text is among the scored examples: a duplicated
    review must not teach the student its own test answer.
    """
    scored_ids, scored_texts = set(), set()
    for example in scored:
        scored_ids.add(example.id)
        scored_texts.add(text_key(example.text))
    heap: list[tuple[float, int, Example]] = []
    for position, example in enumerate(candidates):
        if example.id in scored_ids or text_key(example.text) in scored_texts:
            continue
        entry = (-unit_hash(seed, "pool:" + example.id), -position, example)
        if len(heap) < size:
            heapq.heappush(heap, entry)
        else:
            heapq.heappushpop(heap, entry)
    return [example for _, _, example in sorted(heap, key=lambda entry: entry[:2], reverse=True)]


class PoolSplits:
    """What the teacher scores: the distillation pool in place of the scored split, with the run's train split.

    Given to the runner as its `SplitSource`. The pool is drawn once per task,
    and refused when the scored split leaves no reviews for one.
    """

    def __init__(self, registries: Registries, board: Board, size: int) -> None:
        self.registries, self.board, self.size = registries, board, size
        self.pools: dict[
            str, tuple[list[Example], list[Example], IssueLog]
        ] = {}  # task -> train, pool, issues

    def draw(self, task: Task) -> tuple[list[Example], list[Example]]:
        """The train split and the pool of `task`."""
        if task.name not in self.pools:
            issues = IssueLog()
            run_splits = BoardSplits(self.registries, self.board).open(task, issues)
            scored = list(run_splits.test)
            seed = self.board.seed_for("split")
            everything = task.split(
                open_reviews(self.registries, self.board, IssueLog()), limit=None, seed=seed
            )
            pool = draw_pool(everything.test, scored, self.size, seed)
            if not pool:
                raise HarnessError(
                    f"no reviews are left for a distillation pool: the scored split takes all {len(scored)} "
                    "reviews outside the train split; give --limit N to score fewer"
                )
            self.pools[task.name] = (run_splits.train, pool, issues)
        train, pool, _ = self.pools[task.name]
        return train, pool

    def total(self, task: Task) -> int | None:
        """The pool is what the teacher scores, whatever the board's limit (the comparison's split size)."""
        return len(self.draw(task)[1])

    def open(self, task: Task, issues: IssueLog) -> Splits:
        train, pool = self.draw(task)
        # The rows the data could not give, reported in the row as a run of the board reports them.
        drawn = self.pools[task.name][2]
        issues.issues.extend(drawn.issues)
        issues.counts.update(drawn.counts)
        counts = Counter(train=len(train), pool=len(pool))
        note = f"scored on the distillation pool: {len(pool)} reviews outside the train and scored splits"
        return Splits(test=iter(pool), train=train, counts=counts, notes=[note])


@dataclass(frozen=True)
class Distilled:
    """What a distillation made: the student's saved weights and how many reviews of each kind taught it."""

    result: FinetuneResult
    gold: int
    pool: int


def build_student(runner: Runner, spec: str, options: dict[str, str]) -> HFClassifier:
    """The small model, refused at once unless it fine-tunes: before the teacher spends minutes on the pool."""
    from harness.plugins.models.classifiers import HFClassifier

    board = runner.board
    student = build_model(
        spec,
        options,
        board.seed,
        runner.model_dir,
        backend=runner.backend,
        host=runner.host,
        seeds={component: board.seed_for(component) for component in SEED_COMPONENTS},
    )
    if not isinstance(student, HFClassifier):
        raise HarnessError(
            f"{spec} cannot be distilled into: the student must be a classifier that fine-tunes "
            "(minilm, distilbert, electra or hf-classifier:PATH)"
        )
    return student


def teach(
    pools: PoolSplits,
    scored: Scored,
    task: Task,
    student: HFClassifier,
    *,
    with_gold: bool,
) -> Distilled:
    """Fine-tune the student on what the teacher `scored` of the pool, and on the gold train split when asked."""
    train, pool = pools.draw(task)
    by_id = {example.id: example for example in pool}
    # A pool review's label becomes the teacher's answer: its gold label, if the data has one, is never read.
    taught = [replace(by_id[i], label=int(p.argmax())) for i, p in zip(scored.ids, scored.probs, strict=True)]
    targets = [[float(x) for x in row] for row in scored.probs]
    gold = list(train) if with_gold else []
    result = student.distil([*gold, *taught], [*one_hot(gold, task.labels), *targets], task)
    return Distilled(result, len(gold), len(taught))
