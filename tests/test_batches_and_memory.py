"""Label-scoring batches bounded by tokens, and a finished row's memory handed back before the next row."""

from __future__ import annotations

import gc
import weakref

from harness.memory import release_freed_memory
from harness.plugins.models._label_scoring import length_sorted_batches


def test_batches_are_sorted_by_length_and_cut_at_the_batch_size_without_a_token_budget():
    lengths = [5, 1, 4, 2, 3]
    assert length_sorted_batches(lengths, 2) == [[1, 3], [4, 2], [0]]


def test_a_token_budget_counts_the_shared_head_per_row_so_long_reviews_come_fewer_at_a_time():
    lengths = [10] * 4 + [200] * 4 + [800] * 2
    batches = length_sorted_batches(lengths, 8, tokens=2048, shared=300)
    assert [len(b) for b in batches] == [4, 4, 1, 1]  # 4 x 310 fits; 4 x 500 fits; 2 x 1100 does not
    for batch in batches:
        assert len(batch) * (300 + max(lengths[i] for i in batch)) <= 2048 or len(batch) == 1
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))


def test_a_row_longer_than_the_budget_still_gets_a_batch_of_its_own():
    assert length_sorted_batches([5000, 3], 8, tokens=1024, shared=100) == [[1], [0]]


def test_releasing_memory_frees_objects_held_only_by_a_reference_cycle():
    class Model:
        pass

    gc.disable()
    try:
        model = Model()
        model.itself = model  # type: ignore[attr-defined]
        alive = weakref.ref(model)
        del model
        assert alive() is not None  # a cycle outlives its last name until a collection
        release_freed_memory()
        assert alive() is None
    finally:
        gc.enable()


class Constant:
    name = "constant"

    def predict(self, texts, task):
        import numpy as np

        return np.full((len(texts), len(task.labels)), 1.0 / len(task.labels))

    def fingerprint(self):
        return self.name


class Weighty(Constant):
    name = "weighty"

    def checkpoints(self, task):
        return []


def test_memory_is_handed_back_after_the_rows_of_models_that_load_weights_only(tmp_path, monkeypatch):
    from harness import ModelFactory, PluginHost, Register, hookimpl, run_board, runner
    from harness.boards import Board, ModelEntry

    class Plugin:
        @hookimpl
        def register_models(self, register: Register[ModelFactory]) -> None:
            register("constant", lambda arg, ctx: Constant())
            register("weighty", lambda arg, ctx: Weighty())

    released = []
    monkeypatch.setattr(runner, "release_freed_memory", lambda: released.append(True))
    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    host.register(Plugin(), "memory-test")
    board = Board(name="memory", tasks=["polarity"], models=[ModelEntry("constant"), ModelEntry("weighty")],
                  data="demo", backend="cpu", bootstrap=0, limit=20)  # fmt: skip
    rows = run_board(host, board, tmp_path / "run")["rows"]
    assert [r["status"] for r in rows] == ["ok", "ok"] and released == [True]
