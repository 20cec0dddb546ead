"""The fast encoder layers: the stock model's logits, applied only where the head reads position 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.plugins.engines.encoder_layers import use_inference_layers
from harness.plugins.models.classifiers import make_hf_classifier
from tests.tiny_encoders import FakeTask, build_distilbert, build_electra, make_ctx

TEXTS = [
    "ok",
    "It stopped working after a week and support never answered my emails.",
    "Great blender, crushes ice in seconds.",
]


def build_bert_classifier(directory: Path) -> Path:
    """A 2-layer BERT sequence classifier (MiniLM's architecture, with its pooler and head)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from tests.tiny_encoders import INIT_RANGE, MAX_POSITIONS, vocab_file

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS, initializer_range=INIT_RANGE,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(directory)
    BertTokenizer(vocab=str(vocab_file()), model_max_length=MAX_POSITIONS).save_pretrained(directory)
    return directory


BUILDERS = {"distilbert": build_distilbert, "electra": build_electra, "bert": build_bert_classifier}


def logits(directory: Path, fast: bool, attention: str = "sdpa") -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        directory, attn_implementation=attention
    ).eval()
    if fast:
        assert use_inference_layers(model)
    inputs = AutoTokenizer.from_pretrained(directory)(TEXTS, padding=True, return_tensors="pt")
    assert not bool(inputs["attention_mask"].all()), "the batch must be padded to test the mask"
    with torch.inference_mode():
        return model(**inputs).logits.numpy()


@pytest.mark.parametrize("architecture", sorted(BUILDERS))
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_padded_batch_gives_the_stock_models_logits(
    architecture: str, attention: str, tmp_path: Path
) -> None:
    directory = BUILDERS[architecture](tmp_path / architecture)
    stock = logits(directory, fast=False, attention=attention)
    assert np.abs(stock - stock.mean(axis=0)).max() > 1e-3, "random weights should separate the texts"
    np.testing.assert_allclose(logits(directory, fast=True, attention=attention), stock, atol=1e-5)


def test_models_whose_head_reads_other_positions_are_left_as_loaded(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    assert not use_inference_layers(BertModel(config))
    relative = BertForSequenceClassification(
        BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            position_embedding_type="relative_key",
        )
    )
    layers = list(relative.bert.encoder.layer)
    assert not use_inference_layers(relative)
    assert list(relative.bert.encoder.layer) == layers


def test_classifier_records_the_layers_it_ran(tmp_path: Path) -> None:
    directory = build_distilbert(tmp_path / "distilbert")

    def classifier(**options: str) -> Any:
        return make_hf_classifier(str(directory), make_ctx(tmp_path, options))

    fast, stock = classifier(), classifier(encoder_layers="stock")
    task = FakeTask()
    np.testing.assert_allclose(fast.predict(TEXTS, task).probs, stock.predict(TEXTS, task).probs, atol=1e-5)
    assert fast.fingerprint() != stock.fingerprint()
    with pytest.raises(HarnessError, match="encoder_layers='quick': choose one of fast, stock"):
        classifier(encoder_layers="quick")
