"""Tiny LMs with random weights and a locally trained tokenizer, saved like hub checkpoints.

They load through the same `from_pretrained` path a hub id takes, so tests
exercise the real loading and scoring code with no network.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.types import ModelContext, Splits

SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>", "<s>"]  # ids 0-3, as T5 and the causal test model expect

_SUBJECTS = ["This blender", "The book", "My new phone", "These shoes", "The charger", "This toy", "The lamp"]
_VERDICTS = [
    "works great and I love it",
    "broke after two days",
    "is exactly as described",
    "was a waste of money",
    "arrived late and damaged",
    "exceeded my expectations",
    "feels cheap but does the job",
]
_ENDINGS = [
    "Highly recommended.",
    "Would not buy again.",
    "Five stars!",
    "Returned it.",
    "Okay for the price.",
]
_PROMPT_WORDS = (
    "Please perform sentiment classification task. Given the sentence, assign a sentiment label from "
    "['negative', 'positive'] Return label only without any other text. Sentence: Review: Options: "
    "Answer: positive negative neutral books music toys kitchen electronics"
)


def invented_sentences(count: int = 300, seed: int = 0) -> list[str]:
    """Review-like sentences made up from word lists, plus the words prompts and labels use."""
    rng = random.Random(seed)
    combos = list(itertools.product(_SUBJECTS, _VERDICTS, _ENDINGS))
    rng.shuffle(combos)
    sentences = [f"{subject} {verdict}. {ending}" for subject, verdict, ending in combos[:count]]
    return sentences + [_PROMPT_WORDS] * 5


def train_unigram_vocab(vocab_size: int = 300) -> list[tuple[str, float]]:
    """A sentencepiece Unigram vocabulary (piece, log-probability) trained on invented sentences.

    Special tokens come first (see SPECIAL_TOKENS); every printable ASCII
    character is in the vocabulary, so test texts never hit <unk>.
    Single-threaded sentencepiece training is deterministic, which keeps the
    random test models identical from run to run.
    """
    import io
    import string

    import sentencepiece

    alphabet = " ".join(string.ascii_letters + string.digits + string.punctuation)
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([*invented_sentences(), alphabet]),
        model_writer=proto,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
        **{f"{kind}_id": i for i, kind in enumerate(("pad", "eos", "unk", "bos"))},
        **{f"{kind}_piece": t for kind, t in zip(("pad", "eos", "unk", "bos"), SPECIAL_TOKENS, strict=True)},
    )
    processor = sentencepiece.SentencePieceProcessor(model_proto=proto.getvalue())
    return [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]


def build_tiny_t5(directory: Path, seed: int = 0) -> Path:
    """Save a 2-layer gated-GELU T5 (the Flan-T5 architecture) and its tokenizer to `directory`."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    tokenizer = T5Tokenizer(vocab=train_unigram_vocab(), extra_ids=0)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_tiny_llama(directory: Path, chat_template: str | None = None, seed: int = 0) -> Path:
    """Save a 2-layer Llama (SmolLM2's architecture) with a BOS-adding tokenizer to `directory`."""
    import torch
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = train_unigram_vocab()
    backend = Tokenizer(Unigram(vocab, unk_id=SPECIAL_TOKENS.index("<unk>")))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos = SPECIAL_TOKENS.index("<s>")
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=bos,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@dataclass
class PromptTask:
    """The parts of a task an LM family reads: labels, label words and a prompt."""

    labels: tuple[str, ...] = ("negative", "positive")
    label_words: tuple[str, ...] = ("negative", "positive")
    prompt: str = "Given the review, answer with one of: {options}.\nReview: {text}"
    name: str = "tiny-polarity"

    def split(self, reviews: Any, *, limit: int | None, seed: int) -> Splits:
        return Splits(test=iter(()), train=[])

    def metrics(self, gold: Any, probs: Any) -> dict[str, float]:
        return {}

    def fingerprint(self) -> str:
        return f"{self.name}|{self.label_words}|{self.prompt}"


def make_context(workdir: Path, dtype: str = "float32", **options: str) -> ModelContext:
    """A CPU `ModelContext` carrying `options`, for building models outside the runner."""

    def unavailable(spec: str) -> Any:
        raise AssertionError(f"tests build no nested models ({spec})")

    backend = SimpleNamespace(
        name="cpu", device="cpu", dtype=dtype, setup=lambda: None, synchronize=lambda: None, describe=dict
    )
    return ModelContext(
        backend=backend,
        workdir=workdir,
        seed=0,
        options=options,
        build_model=unavailable,
        build_router=unavailable,
    )
