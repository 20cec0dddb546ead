"""Fine-tuning tiny encoders: it learns, it is seeded, it is saved once and reused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.plugins.models import _finetune as finetune
from harness.plugins.models import classifiers
from harness.plugins.models.classifiers import Family, HFClassifier
from harness.types import Example
from tests.tiny_encoders import (
    NEGATIVE_TEXTS,
    POSITIVE_TEXTS,
    FakeTask,
    build_bert_encoder,
    build_distilbert,
    make_ctx,
    polarity_train,
)

LEARN = {"epochs": "15", "learning_rate": "3e-3", "train_batch_size": "4"}
QUICK = {"epochs": "2", "learning_rate": "3e-3", "train_batch_size": "4"}
PROBE = [*POSITIVE_TEXTS[:3], *NEGATIVE_TEXTS[:3]]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bert_encoder(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def distilbert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_distilbert(tmp_path_factory.mktemp("distilbert"), {0: "negative", 1: "positive"})


def fitted(arg: str, workdir: Path, options: dict[str, str] | None = None, seed: int = 0) -> HFClassifier:
    model = classifiers.make_hf_classifier(arg, make_ctx(workdir, {**QUICK, **(options or {})}, seed=seed))
    model.fit(polarity_train(), FakeTask())
    return model


def test_encoder_without_a_head_is_finetuned_and_learns(encoder_dir: Path, tmp_path: Path) -> None:
    task = FakeTask()
    model = fitted(str(encoder_dir), tmp_path, LEARN)
    result = model.finetuned(task)
    assert result is not None and result.trained
    probs = model.predict(PROBE, task).probs
    assert probs.shape == (len(PROBE), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    gold = np.array([1, 1, 1, 0, 0, 0])
    assert (probs.argmax(axis=1) == gold).all()


def test_finetuning_is_seeded(encoder_dir: Path, tmp_path: Path) -> None:
    task = FakeTask()
    first = fitted(str(encoder_dir), tmp_path / "a").predict(PROBE, task).probs
    second = fitted(str(encoder_dir), tmp_path / "b").predict(PROBE, task).probs
    other_seed = fitted(str(encoder_dir), tmp_path / "c", seed=1).predict(PROBE, task).probs
    np.testing.assert_allclose(first, second, atol=1e-6)
    assert not np.allclose(first, other_seed, atol=1e-4)


def test_saved_weights_are_reused_by_a_later_run(
    encoder_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = FakeTask()
    first = fitted(str(encoder_dir), tmp_path)
    saved = first.finetuned(task)
    assert saved is not None and saved.path.parent == tmp_path / "finetuned"
    report = json.loads((saved.path / finetune.DONE_FILE).read_text())
    assert report["examples"] == len(polarity_train()) and len(report["epoch_losses"]) == 2

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again although the weights were saved")

    monkeypatch.setattr(finetune, "_train", no_training)
    again = fitted(str(encoder_dir), tmp_path)
    reused = again.finetuned(task)
    assert reused is not None and not reused.trained and reused.path == saved.path
    assert again.fingerprint() == first.fingerprint()
    np.testing.assert_allclose(again.predict(PROBE, task).probs, first.predict(PROBE, task).probs, atol=1e-6)
    # another learning rate is another model
    with pytest.raises(AssertionError, match="trained again"):
        fitted(str(encoder_dir), tmp_path, {"learning_rate": "1e-3"})


def test_fingerprint_depends_on_train_data_and_settings(encoder_dir: Path) -> None:
    config = finetune.FinetuneConfig(base=str(encoder_dir), labels=("negative", "positive"))
    train = polarity_train()
    base = finetune.finetune_fingerprint(config, "task", train)
    assert base == finetune.finetune_fingerprint(config, "task", list(train))
    assert base != finetune.finetune_fingerprint(config, "task", train[:-1])
    assert base != finetune.finetune_fingerprint(config, "other-task", train)
    relabelled = [Example(e.id, e.text, 1 - e.label) for e in train]
    assert base != finetune.finetune_fingerprint(config, "task", relabelled)
    seeded = finetune.FinetuneConfig(base=str(encoder_dir), labels=("negative", "positive"), seed=3)
    assert base != finetune.finetune_fingerprint(seeded, "task", train)
    bf16 = finetune.FinetuneConfig(base=str(encoder_dir), labels=("negative", "positive"), precision="bf16")
    assert base != finetune.finetune_fingerprint(bf16, "task", train)


@pytest.mark.parametrize("units", [True, False])
def test_automatic_training_precision_follows_the_processors_bf16_units(monkeypatch, units: bool) -> None:
    monkeypatch.setattr(finetune, "cpu_has_bf16_units", lambda: units)
    assert finetune.training_precision("auto", "cpu") == ("bf16" if units else "fp32")
    assert finetune.training_precision("auto", "mps") == "fp32"
    assert finetune.training_precision("fp32", "cpu") == "fp32"
    assert finetune.training_precision("bf16", "cpu") == "bf16"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_encoder_learns_in_either_training_precision(
    encoder_dir: Path, tmp_path: Path, precision: str
) -> None:
    model = fitted(str(encoder_dir), tmp_path, {**LEARN, "train_precision": precision})
    result = model.finetuned(FakeTask())
    assert result is not None and result.trained
    assert json.loads((result.path / finetune.DONE_FILE).read_text())["config"]["precision"] == precision
    gold = np.array([1, 1, 1, 0, 0, 0])
    assert (model.predict(PROBE, FakeTask()).probs.argmax(axis=1) == gold).all()


def test_usable_labels_are_not_finetuned_unless_asked(distilbert_dir: Path, tmp_path: Path) -> None:
    task = FakeTask()
    as_is = fitted(str(distilbert_dir), tmp_path / "auto")
    assert as_is.finetuned(task) is None
    assert not (tmp_path / "auto" / "finetuned").exists()
    forced = fitted(str(distilbert_dir), tmp_path / "always", {"finetune": "always"})
    assert forced.finetuned(task) is not None
    assert not np.allclose(as_is.predict(PROBE, task).probs, forced.predict(PROBE, task).probs, atol=1e-3)


def test_family_finetunes_its_base_for_a_task_without_a_ready_checkpoint(
    distilbert_dir: Path, tmp_path: Path
) -> None:
    family = Family(name="distilbert-like", ready={"polarity": str(distilbert_dir)}, base=str(distilbert_dir))
    category = FakeTask("category", ("book", "toy", "kitchen"))
    train = [
        Example(str(i), text, label)
        for i, (text, label) in enumerate(
            [("a gripping novel", 0), ("lego set for kids", 1), ("sharp chef knife", 2)] * 3
        )
    ]
    model = HFClassifier(family, None, make_ctx(tmp_path, QUICK))
    model.fit(train, category)
    probs = model.predict(["a novel", "a knife", "toy car"], category).probs
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert model.finetuned(category) is not None
    polarity = HFClassifier(family, None, make_ctx(tmp_path, QUICK))
    polarity.fit(polarity_train(), FakeTask())
    assert polarity.finetuned(FakeTask()) is None


def test_minilm_factory_always_finetunes_the_encoder_it_is_given(encoder_dir: Path, tmp_path: Path) -> None:
    model = classifiers.make_minilm(str(encoder_dir), make_ctx(tmp_path, QUICK))
    model.fit(polarity_train(), FakeTask())
    assert model.finetuned(FakeTask()) is not None
    with pytest.raises(HarnessError, match="no train split"):
        classifiers.make_minilm(str(encoder_dir), make_ctx(tmp_path)).predict(PROBE, FakeTask())


def test_length_batches_cover_every_index_once() -> None:
    lengths = [5, 1, 9, 3, 7, 2, 8]
    batches = finetune.length_batches(lengths, 3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [lengths[i] for i in batches[0]] == [9, 8, 7]


@pytest.mark.slow
def test_packaged_minilm_finetunes_and_predicts(tmp_path: Path) -> None:
    texts = [*POSITIVE_TEXTS, *NEGATIVE_TEXTS] * 3 + ["good", "bad", "nice", "poor"]
    labels = [1] * 6 + [0] * 6
    train = [Example(str(i), t, (labels * 3 + [1, 0, 1, 0])[i]) for i, t in enumerate(texts)]
    model = classifiers.make_minilm(None, make_ctx(tmp_path, {"epochs": "1", "train_max_length": "64"}))
    model.fit(train, FakeTask())
    out = model.predict(["I really love this, it is wonderful", "broken junk, I hate it"], FakeTask())
    assert out.probs.shape == (2, 2)
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-5)
    assert model.finetuned(FakeTask()) is not None


def test_finetuning_follows_the_finetune_seed_and_a_ready_checkpoint_ignores_seeds(
    encoder_dir: Path, distilbert_dir: Path, tmp_path: Path
) -> None:
    import dataclasses

    task = FakeTask()
    first = fitted(str(encoder_dir), tmp_path)
    context = make_ctx(tmp_path, QUICK, seed=4)
    held = classifiers.make_hf_classifier(
        str(encoder_dir), dataclasses.replace(context, seeds={"finetune": 0})
    )
    held.fit(polarity_train(), task)
    result = held.finetuned(task)
    assert result is not None and not result.trained, "seed 4 with the fine-tuning held at 0 reuses it"
    assert held.fingerprint() == first.fingerprint()
    ready = [
        classifiers.make_hf_classifier(str(distilbert_dir), make_ctx(tmp_path, seed=seed)) for seed in (0, 4)
    ]
    for model in ready:
        model.fit(polarity_train(), task)
    assert ready[0].fingerprint() == ready[1].fingerprint()


def test_min_steps_adds_passes_over_a_small_split_up_to_max_epochs(encoder_dir: Path, tmp_path: Path) -> None:
    model = fitted(str(encoder_dir), tmp_path, {"epochs": "1", "min_steps": "1000", "train_batch_size": "4"})
    result = model.finetuned(FakeTask())
    assert result is not None
    report = json.loads((result.path / finetune.DONE_FILE).read_text())
    per_epoch = -(-report["sequences"] // 4)
    assert len(report["epoch_losses"]) == 10 and report["steps"] == 10 * per_epoch
