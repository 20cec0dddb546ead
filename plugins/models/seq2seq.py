"""Flan-T5, Flan-UL2 and any seq2seq LM as classifiers, by scoring the task's label words.

Each review goes through the encoder once; every label word is then scored
by the decoder with teacher forcing against that shared encoder output, and
the label log-likelihoods (summed, or averaged per token with
`length_norm=true`) become probabilities by softmax. `mode=generate`
reproduces the study instead: greedy generation, answer parsed to a label,
or with `topk_prompts=K` one list of labels per k (see _answer_lists).
The encoder pass of label scoring runs on the engine the options `engine` and
`precision` choose, measured by default (see ``engines.seq2seq_encoder``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from harness import ModelContext, ModelFactory, ModelOutput, Register, RowStats, Task, hookimpl
from harness.plugins.engines.choice import SAMPLE_WINDOWS, spread
from harness.plugins.engines.seq2seq_encoder import ENGINE_OPTIONS, Encoder, EncoderEngines, engine_mark
from harness.plugins.models._answer_lists import generated_output, per_k_measures
from harness.plugins.models._checkpoints import checkpoint_identity
from harness.plugins.models._finetune import digest
from harness.plugins.models._label_scoring import (
    Encoded,
    Settings,
    average_windows,
    encode_reviews,
    generated_rows_mark,
    length_sorted_batches,
    lm_options,
    pad_batch,
    prompt_parts,
    scores_to_probs,
    special_tokens_around,
    torch_dtype,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FLAN_T5 = "google/flan-t5-xxl"
FLAN_UL2 = "google/flan-ul2"
DEFAULT_MAX_LENGTH = 512
DEFAULT_BATCH_SIZE = 8
# T5's activations overflow float16; bfloat16 has float32's range.
T5_MODEL_TYPES = frozenset({"t5", "mt5", "umt5", "longt5"})
OPTIONS = lm_options(max_length=DEFAULT_MAX_LENGTH, batch_size=DEFAULT_BATCH_SIZE) + ENGINE_OPTIONS


class Seq2SeqScorer:
    """A seq2seq LM that answers with probabilities over the task's label words."""

    def __init__(self, name: str, family: str, checkpoint: str, ctx: ModelContext) -> None:
        self.name = name
        self.family = family
        self.checkpoint = checkpoint
        self.backend = ctx.backend
        self.settings = Settings.from_options(
            ctx.options, max_length=DEFAULT_MAX_LENGTH, batch_size=DEFAULT_BATCH_SIZE
        )
        self.batch_size = self.settings.batch_size
        self.options = OPTIONS.parse(ctx.options)
        device = ctx.backend.device if self.settings.device_map is None else "device_map"
        self.engines = EncoderEngines(
            self.options, self.settings.mode, device, ctx.backend.dtype, ctx.workdir, self.batch_size
        )
        self._model: Any = None
        self._tokenizer: Any = None

    def fingerprint(self) -> str:
        return (
            f"seq2seq|family={self.family}|checkpoint={checkpoint_identity(self.checkpoint)}|"
            f"options={digest(OPTIONS.fingerprinted(self.options))}|dtype={self.backend.dtype}"
            + generated_rows_mark(self.settings.mode, self.settings.topk_prompts)
            + engine_mark(self.options)
        )

    def run_stats(self) -> dict[str, Any]:
        """The encoder engine that scored, how it was chosen and its timings (label scoring only)."""
        return self.engines.stats()

    def checkpoints(self, task: Task) -> list[str]:
        """The weights it loads, whatever the task (for preflight)."""
        return [self.checkpoint]

    def _load(self) -> None:
        """Load tokenizer and weights on first use, so a fully cached run never loads them."""
        if self._model is not None:
            return
        from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

        kwargs = self.settings.load_kwargs()
        remote = self.settings.trust_remote_code
        config = AutoConfig.from_pretrained(self.checkpoint, trust_remote_code=remote)
        dtype = self.backend.dtype
        if dtype == "float16" and config.model_type in T5_MODEL_TYPES:
            log.warning("%s: T5 models overflow in float16; running in bfloat16 instead", self.name)
            dtype = "bfloat16"
        self._tokenizer = AutoTokenizer.from_pretrained(self.checkpoint, trust_remote_code=remote)
        try:
            model = AutoModelForSeq2SeqLM.from_pretrained(
                self.checkpoint, config=config, dtype=torch_dtype(dtype), **kwargs
            )
        except OSError as error:
            if self.settings.allow_pickle:
                raise
            raise OSError(
                f"{error}\n{self.checkpoint} was loaded from safetensors only; if it ships only pickled "
                "weights and you trust it, pass the option allow_pickle=true"
            ) from error
        if self.settings.device_map is None:
            model = model.to(self.backend.device)
        self._model = model.eval()

    def predict(self, texts: Sequence[str], task: Task) -> ModelOutput:
        """Probabilities [len(texts), k] from label likelihoods or from parsed generated answers."""
        self._load()
        if self.settings.mode == "generate":

            def answer(k: int) -> tuple[list[str], Sequence[bool]]:
                inputs, encoded = self._inputs(texts, task, k)
                return self._generate(inputs), encoded.truncated

            return generated_output(answer, self.settings.topk_prompts, task)
        inputs, encoded = self._inputs(texts, task)
        scores = self.label_scores(inputs, task.label_words, self.encoder(task.label_words))
        probs = average_windows(scores_to_probs(scores), encoded.owners, len(texts))
        return ModelOutput(probs, truncated=encoded.truncated)

    def row_stats(self, raw_texts: Sequence[str | None], gold: np.ndarray, task: Task) -> RowStats:
        """The engine that scored, and the study's per-k top-k accuracy from the answer lists when
        `topk_prompts` asked for them."""
        measures, counts = per_k_measures(raw_texts, gold, task, self.settings.topk_prompts)
        return RowStats(extra={**counts, **self.run_stats()}, measures=measures)

    def _inputs(self, texts: Sequence[str], task: Task, k: int = 1) -> tuple[list[list[int]], Encoded]:
        """Encoder inputs (prompt asking for `k` labels around each review window) and the encoding."""
        before, after = prompt_parts(task.prompt, task.label_words, k)
        lead, trail = special_tokens_around(self._tokenizer)
        head = lead + self._encode(before)
        tail = self._encode(after) + trail
        budget = self.settings.max_length - len(head) - len(tail)
        if budget < 1:
            raise ValueError(f"the prompt alone fills max_length={self.settings.max_length} tokens")
        encoded = encode_reviews(texts, self._encode, budget, self.settings.truncation)
        return [head + window + tail for window in encoded.windows], encoded

    def _encode(self, text: str) -> list[int]:
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def choose(self, sample: Sequence[str], reviews: int, task: Task) -> None:
        """Choose the encoder pass's engine on `sample` where `reviews` repay measuring (label scoring only)."""
        if self.settings.mode != "score":
            return
        self._load()
        inputs, _ = self._inputs(spread(sample, SAMPLE_WINDOWS), task)
        label_words = task.label_words
        self.engines.choose(
            self._model, self._encoder_identity(), self._tokenizer.pad_token_id or 0, inputs, label_words,
            lambda rows, encoder: self.label_scores(rows, label_words, encoder), reviews,
        )  # fmt: skip

    def encoder(self, label_words: Sequence[str]) -> Encoder | None:
        """The engine chosen for the encoder pass (None: torch)."""
        self._load()
        pad_id = self._tokenizer.pad_token_id or 0
        return self.engines.encoder(self._model, self._encoder_identity(), pad_id, label_words)

    def _encoder_identity(self) -> dict[str, Any]:
        return {
            "checkpoint": checkpoint_identity(self.checkpoint),
            "max_length": self.settings.max_length,
            "pass": "seq2seq-encoder",
        }

    def label_targets(self, label_words: Sequence[str]) -> list[list[int]]:
        """Each label word as the decoder must produce it, end-of-sequence included."""
        self._load()
        targets = [list(self._tokenizer(word)["input_ids"]) for word in label_words]
        if any(not target for target in targets):
            raise ValueError("a label word encodes to no tokens")
        return targets

    def label_scores(
        self, inputs: Sequence[Sequence[int]], label_words: Sequence[str], encoder: Encoder | None = None
    ) -> np.ndarray:
        """Log-likelihood [len(inputs), k] of each label word given each encoder input.

        The encoder pass runs on `encoder` (an engine's) where given, else on
        the torch model; the decoder always runs in torch. Every label starts
        from the same decoder start token, so the decoder reads it once per
        review, projecting the encoder states into cross-attention keys and
        values once; only that cache is then repeated over the k labels,
        whose remaining tokens run together.
        """
        import inspect

        import numpy as np
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        self._load()
        model = self._model
        device = model.device
        cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        targets = self.label_targets(label_words)
        k = len(targets)
        labels, valid = pad_batch(targets, -100, device)
        valid = valid.bool()
        decoder_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)
        pad_id = self._tokenizer.pad_token_id or 0
        scores = np.zeros((len(inputs), k))
        with torch.inference_mode():
            for batch, encoded in (encoder or self.torch_encoder)(inputs):
                _, mask = pad_batch([inputs[i] for i in batch], pad_id, device)
                states = encoded.to(device)
                start = model(
                    encoder_outputs=BaseModelOutput(last_hidden_state=states),
                    attention_mask=mask,
                    decoder_input_ids=decoder_ids[:1, :1].repeat(len(batch), 1),
                    use_cache=True,
                )
                total = start.logits[:, -1].float().log_softmax(-1)[:, labels[:, 0]]
                if labels.shape[1] > 1:
                    cache = getattr(start, cache_name)
                    cache.batch_repeat_interleave(k)
                    logits = model(
                        encoder_outputs=BaseModelOutput(last_hidden_state=states.repeat_interleave(k, dim=0)),
                        attention_mask=mask.repeat_interleave(k, dim=0),
                        decoder_input_ids=decoder_ids[:, 1:].repeat(len(batch), 1),
                        use_cache=True,
                        **{cache_name: cache},
                    ).logits
                    token_logp = (
                        logits.float()
                        .log_softmax(-1)
                        .gather(-1, labels[:, 1:].clamp(min=0).repeat(len(batch), 1).unsqueeze(-1))
                    )
                    rest = (token_logp.squeeze(-1) * valid[:, 1:].repeat(len(batch), 1)).sum(-1)
                    total = total + rest.view(len(batch), k)
                if self.settings.length_norm:
                    total = total / valid.sum(-1)
                scores[batch] = total.cpu().double().numpy()
        return scores

    def torch_encoder(self, inputs: Sequence[Sequence[int]]) -> Iterator[tuple[list[int], Any]]:
        """Encoder states of length-sorted batches of `inputs` on the torch model (see `Encoder`)."""
        pad_id = self._tokenizer.pad_token_id or 0
        for batch in length_sorted_batches([len(row) for row in inputs], self.settings.batch_size):
            ids, mask = pad_batch([inputs[i] for i in batch], pad_id, self._model.device)
            yield batch, self._model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state

    def _generate(self, inputs: Sequence[Sequence[int]]) -> list[str]:
        """Greedy answers, as the study's text2text pipeline produced them."""
        import torch

        model = self._model
        pad_id = self._tokenizer.pad_token_id or 0
        answers = [""] * len(inputs)
        with torch.inference_mode():
            for batch in length_sorted_batches([len(row) for row in inputs], self.settings.batch_size):
                ids, mask = pad_batch([inputs[i] for i in batch], pad_id, model.device)
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=self.settings.max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                )
                for i, text in zip(
                    batch, self._tokenizer.batch_decode(out, skip_special_tokens=True), strict=True
                ):
                    answers[i] = text
        return answers


def _make(family: str, default: str | None) -> Any:
    def factory(arg: str | None, ctx: ModelContext) -> Seq2SeqScorer:
        checkpoint = arg or default
        if checkpoint is None:
            raise ValueError(f"{family} needs a checkpoint: --model {family}:HUB_ID_OR_PATH")
        name = family if arg is None else f"{family}:{arg}"
        return Seq2SeqScorer(name, family, checkpoint, ctx)

    factory.__doc__ = f"Build a {family} label scorer from a hub id or local path (default {default})."
    return factory


make_flan_t5 = _make("flan-t5", FLAN_T5)
make_flan_ul2 = _make("flan-ul2", FLAN_UL2)
make_seq2seq = _make("seq2seq", None)


@hookimpl
def register_models(register: Register[ModelFactory]) -> None:
    register(
        "flan-t5",
        make_flan_t5,
        options=OPTIONS,
        description=f"Flan-T5 scoring label words (default {FLAN_T5}; flan-t5:HUB_ID_OR_PATH)",
    )
    register(
        "flan-ul2",
        make_flan_ul2,
        options=OPTIONS,
        description=f"Flan-UL2 scoring label words (default {FLAN_UL2}; flan-ul2:HUB_ID_OR_PATH)",
    )
    register(
        "seq2seq",
        make_seq2seq,
        options=OPTIONS,
        description="any seq2seq LM scoring label words (seq2seq:HUB_ID_OR_PATH)",
    )
