"""What the seq2seq and causal LM families share: prompts, truncation, options, and turning scores into rows.

Large models classify by scoring every label word (rank classification), so
each review yields a real probability row. The study's generate-and-parse
behaviour is kept for fidelity: answers are parsed here, and an answer that
names no label still gets a row (all zeros: no label, counted wrong) and
keeps its raw text, so a review is never dropped and the runner counts it
as unparseable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.options import Option, OptionError, OptionSet
from harness.plugins.models._truncation import POLICIES, fit_tokens

if TYPE_CHECKING:
    import numpy as np

MODES = ("score", "generate")
_ANSWER_STRIP = " \t\r\n.,;:!?\"'`()[]{}<>*"


def parse_answer(text: str, label_words: Sequence[str]) -> int | None:
    """Index of the label word a generated answer names, or None when it names none.

    The study compared the generated text to the label exactly; here case,
    surrounding whitespace, quotes, brackets and trailing punctuation are
    forgiven ("Positive." counts), but an answer with anything more in it
    ("positive and negative", "I think positive") is unparseable.
    """
    answer = text.strip(_ANSWER_STRIP).casefold()
    for index, word in enumerate(label_words):
        if answer == word.strip().casefold():
            return index
    return None


def answers_to_probs(answers: Sequence[str], label_words: Sequence[str]) -> np.ndarray:
    """Rows for generated answers: all mass on the parsed label, none when unparseable.

    An all-zero row predicts no label, so the metrics count it wrong whatever
    the gold label (a uniform row's argmax would make it the first label).
    """
    import numpy as np

    probs = np.zeros((len(answers), len(label_words)))
    for row, answer in enumerate(answers):
        index = parse_answer(answer, label_words)
        if index is not None:
            probs[row, index] = 1.0
    return probs


def generated_rows_mark(mode: str, topk_prompts: int = 0) -> str:
    """What a fingerprint carries in the modes that read an answer, since an unparseable one became a row
    of zeros (generated text, or a served model's first answer token).

    Predictions cached before that hold uniform rows that count as the first
    label; the mark keeps them from being read back. `topk_prompts` enters
    here only when set, so the fingerprints of every other setting stay as
    they were before the option existed.
    """
    if mode not in ("generate", "top_logprobs", "completion_top_logprobs"):
        return ""
    return "|unparseable=no-label" + (f"|topk_prompts={topk_prompts}" if topk_prompts else "")


def scores_to_probs(scores: np.ndarray) -> np.ndarray:
    """Softmax over label log-likelihoods [n, k], computed stably in float64."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def prompt_parts(template: str, label_words: Sequence[str], k: int = 1) -> tuple[str, str]:
    """The prompt text before and after the review, with `{options}` and `{k}` filled in.

    The template follows `str.format` (other braces doubled), as tasks
    validate it. It is split at the review rather than filled, so that only
    the review's own tokens are cut when a review is too long. `{k}` is the
    number of labels asked for: 1 but in the k-th of `topk_prompts` prompts.
    """
    marker = "\x00review\x00"
    filled = template.format(text=marker, options=", ".join(label_words), k=k)
    if marker not in filled:
        raise ValueError("the task's prompt has no {text} placeholder for the review")
    before, after = filled.split(marker, 1)
    return before, after


@dataclass(frozen=True)
class Settings:
    """User options common to the LM families, parsed and checked once."""

    mode: str
    length_norm: bool
    truncation: str
    max_length: int
    batch_size: int
    trust_remote_code: bool
    allow_pickle: bool
    device_map: str | None
    max_new_tokens: int
    topk_prompts: int

    @classmethod
    def from_options(cls, options: Mapping[str, str], *, max_length: int, batch_size: int) -> Settings:
        """The options `lm_options` declares, typed, with the combinations that cannot work refused."""
        values = lm_options(max_length=max_length, batch_size=batch_size).parse(options)
        if values["mode"] == "generate" and values["truncation"] == "window":
            raise OptionError("generate mode answers once per review; use truncation=head or head+tail")
        if values["topk_prompts"] and values["mode"] != "generate":
            raise OptionError("topk_prompts asks for generated answers: give mode=generate with it")
        return cls(**values)

    def load_kwargs(self) -> dict[str, Any]:
        """`from_pretrained` arguments for these settings: remote code, safetensors preference, device map."""
        kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if not self.allow_pickle:
            kwargs["use_safetensors"] = True
        if self.device_map is not None:
            require_accelerate("device_map=auto")
            kwargs["device_map"] = self.device_map
        return kwargs


def lm_options(*, max_length: int, batch_size: int) -> OptionSet:
    """The options every LM family reads, with that family's window and batch defaults."""
    return OptionSet(
        Option(
            "mode", str, "score", "score every label word, or generate an answer and parse it", choices=MODES
        ),
        Option("length_norm", bool, False, "average a label's log-likelihood over its tokens"),
        Option(
            "truncation", str, "head+tail", "how reviews longer than the window are cut", choices=POLICIES
        ),
        Option("max_length", int, max_length, "token window of prompt and review", minimum=1),
        Option("batch_size", int, batch_size, "reviews per forward pass", minimum=1, affects_output=False),
        Option("trust_remote_code", bool, False, "run the checkpoint's own code", affects_output=False),
        Option("allow_pickle", bool, False, "load pickled (.bin) weights", affects_output=False),
        Option(
            "device_map",
            str,
            None,
            "auto: spread the weights over devices",
            choices=("auto",),
            affects_output=False,
        ),
        Option("max_new_tokens", int, 20, "answer length in generate mode", minimum=1),
        # Enters the fingerprint only when set, in `generated_rows_mark`.
        Option(
            "topk_prompts",
            int,
            0,
            "generate mode: ask K prompts per review, the k-th for the k best labels (the study's top-k)",
            minimum=0,
            affects_output=False,
        ),
    )


@dataclass
class Encoded:
    """Token windows for a batch of reviews, each window remembering which review it came from."""

    windows: list[list[int]]
    owners: list[int]
    truncated: list[bool]


def encode_reviews(
    texts: Sequence[str],
    encode: Callable[[str], list[int]],
    budget: int,
    policy: str,
) -> Encoded:
    """Tokenise review texts and fit each into `budget` tokens by the truncation policy.

    Every review yields at least one window, so none is ever dropped.
    """
    windows: list[list[int]] = []
    owners: list[int] = []
    truncated: list[bool] = []
    for index, text in enumerate(texts):
        pieces, cut = fit_tokens(encode(text), budget, policy)
        windows.extend(pieces)
        owners.extend([index] * len(pieces))
        truncated.append(cut)
    return Encoded(windows, owners, truncated)


def average_windows(rows: np.ndarray, owners: Sequence[int], n: int) -> np.ndarray:
    """Mean probability row per review over its windows (one window: the row itself)."""
    import numpy as np

    sums = np.zeros((n, rows.shape[1]))
    np.add.at(sums, np.asarray(owners), rows)
    counts = np.bincount(np.asarray(owners), minlength=n)[:, None]
    return sums / counts


def length_sorted_batches(
    lengths: Sequence[int], batch_size: int, *, tokens: int | None = None, shared: int = 0
) -> list[list[int]]:
    """Indices grouped into batches of similar length, so padding wastes little compute.

    With `tokens`, a batch also holds at most that many tokens, each row counted
    at the batch's longest length plus `shared` (a prompt head whose cache every
    row gets a copy of): long reviews then come a few at a time, so memory stays
    flat whatever the reviews' lengths, while short ones still fill `batch_size`.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:  # ascending: the row added is the batch's longest
        full = batches and len(batches[-1]) == batch_size
        over = batches and tokens is not None and (len(batches[-1]) + 1) * (shared + lengths[i]) > tokens
        if not batches or full or over:
            batches.append([])
        batches[-1].append(i)
    return batches


def special_tokens_around(tokenizer: object) -> tuple[list[int], list[int]]:
    """The special token ids a tokenizer puts before and after a text (T5: none and </s>).

    Found by encoding a probe with and without special tokens, so it works
    for any tokenizer without knowing its family.
    """
    probe = "a"
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    full = tokenizer(probe)["input_ids"]  # type: ignore[operator]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return list(full[:start]), list(full[start + len(bare) :])
    return [], []


def torch_dtype(name: str) -> object:
    """The torch dtype a backend names (`float32`, `bfloat16`, `float16`)."""
    import torch

    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise ValueError(f"unsupported dtype {name!r}; use float32, bfloat16 or float16") from None


def require_accelerate(why: str) -> None:
    """Fail with the fix when `accelerate`, which transformers needs for GGUF and device maps, is missing."""
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        raise RuntimeError(f"{why} needs the accelerate package: pip install accelerate")


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, device: str, left: bool = False) -> tuple:
    """Token id rows as a padded [B, T] tensor and its attention mask, on `device`."""
    import torch

    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids.to(device), mask.to(device)


@dataclass(frozen=True)
class LabelTree:
    """The label words' tokens as a tree of shared prefixes, read after a review in one pass.

    A label of n tokens needs the model's output after each of its first
    n - 1 tokens; labels that begin alike ("Health", "Home") share those
    tokens as one node, read once. `tokens[i]` is node i's token, `depths[i]`
    how far it is from the review's last token (1 for a label's first
    token), `ancestors[i]` the nodes it may attend to (itself included), and
    `reads[j]` the node whose output predicts each token of label j (-1: the
    review's last position).
    """

    tokens: list[int]
    depths: list[int]
    ancestors: list[list[int]]
    reads: list[list[int]]

    @classmethod
    def of(cls, continuations: Sequence[Sequence[int]]) -> LabelTree:
        """The tree of `continuations`' token prefixes, nodes numbered in the order labels reach them."""
        nodes: dict[tuple[int, ...], int] = {}
        tokens: list[int] = []
        depths: list[int] = []
        ancestors: list[list[int]] = []
        reads = []
        for continuation in continuations:
            read = [-1]
            for depth in range(1, len(continuation)):
                key = tuple(continuation[:depth])
                if key not in nodes:
                    nodes[key] = len(tokens)
                    tokens.append(key[-1])
                    depths.append(depth)
                    ancestors.append([*(ancestors[nodes[key[:-1]]] if depth > 1 else []), nodes[key]])
                read.append(nodes[key])
            reads.append(read)
        return cls(tokens, depths, ancestors, reads)
