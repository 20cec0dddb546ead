"""llama.cpp in-process (through llama-cpp-py-sync's C bindings) scoring label words of a GGUF model.

It scores what the transformers path scores, from the same token ids: the
prompt head is decoded once into sequence 0 and kept; a batch of reviews
then runs as one `llama_decode`, each review's tokens tagged with one
sequence per label (all sharing the head's cache) and each label's tokens
with its own sequence, so the review is computed once and the labels
branch from it, without padding.

By default it computes on a float32 copy of the GGUF (`float32_copy`), the
weights transformers dequantizes to: llama.cpp multiplies quantized weights
with 8-bit activations, which moved the packaged SmolLM2's label scores by
0.1-0.2 nats and changed about one category answer in ten, where the float32
copy keeps them within 0.002 in probability (and, on a 2-core CPU, ran
faster than the 4-bit weights).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

PACKAGE = "llama_cpp_py_sync"
INSTALL = "pip install 'review-harness[llama]' (llama-cpp-py-sync)"
# llama.cpp's limit on sequences in one context (LLAMA_MAX_SEQ); sequence 0 holds the prompt head.
MAX_SEQUENCES = 256
# Tokens llama.cpp computes at once; larger steps only grow its attention buffers.
MICRO_BATCH = 512
# llama_ftype of a GGUF whose tensors are all float32.
ALL_FLOAT32 = 0


def available() -> str | None:
    """None when llama.cpp can run here, else the one-line reason (not installed, or its library fails)."""
    if importlib.util.find_spec(PACKAGE) is None:
        return f"engine=llama.cpp needs the llama-cpp-py-sync package: {INSTALL}"
    # llama.cpp's threads meet at OpenMP barriers after every operation; spinning there, as OpenMP does by
    # default, made a shared 2-core machine several times slower than sleeping. Read when the library loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from llama_cpp_py_sync._cffi_bindings import get_lib

        get_lib()
    except (OSError, RuntimeError) as error:
        reason = str(error).split(": ")[-1].split(".")[0]
        return f"engine=llama.cpp: llama-cpp-py-sync is installed but its library does not load ({reason})"
    return None


def _library() -> tuple[Any, Any]:
    """llama.cpp's library and cffi handle, initialised once, with its log lines silenced."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    from llama_cpp_py_sync._cffi_bindings import get_ffi, get_lib

    lib, ffi = get_lib(), get_ffi()
    global _SILENCE
    if _SILENCE is None:
        _SILENCE = ffi.callback("ggml_log_callback", lambda *_: None)
        lib.llama_log_set(_SILENCE, ffi.NULL)
        lib.llama_backend_init()
    return lib, ffi


_SILENCE = None  # the log callback, kept alive for as long as llama.cpp may call it


def float32_copy(gguf_path: str) -> str:
    """A float32 GGUF of `gguf_path`'s weights, written once into the user's cache directory.

    llama.cpp's own converter dequantizes every tensor, as transformers does
    when it loads a GGUF; the copy is named by the source's contents, so new
    weights get a new copy, and is written under a temporary name first, so
    that two processes never read a half-written one.
    """
    from harness.plugins.models._checkpoints import derived_copy

    source = Path(gguf_path)
    target = derived_copy(source, "gguf-float32", ".f32.gguf")
    if target.is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lib, ffi = _library()
    params = lib.llama_model_quantize_default_params()
    params.ftype = ALL_FLOAT32
    params.allow_requantize = True
    params.nthread = len(os.sched_getaffinity(0))
    handle, partial = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    os.close(handle)
    try:
        pointer = ffi.new("llama_model_quantize_params *", params)
        code = lib.llama_model_quantize(str(source).encode(), partial.encode(), pointer)
        if code != 0:
            raise RuntimeError(f"llama.cpp could not write a float32 copy of {source} (code {code})")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return str(target)


class LlamaCppEngine:
    """One GGUF model and context, with the prompt head's cache kept in sequence 0 between calls."""

    def __init__(self, gguf_path: str, *, max_length: int, batch_size: int, threads: int | None) -> None:
        self._ctx = self._model = None
        self._lib, self._ffi = lib, ffi = _library()
        params = lib.llama_model_default_params()
        params.n_gpu_layers = 0
        self._model = lib.llama_model_load_from_file(gguf_path.encode(), params)
        if self._model == ffi.NULL:
            raise RuntimeError(f"llama.cpp could not load {gguf_path}")
        self._vocab = lib.llama_model_get_vocab(self._model)
        self.n_vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        self.batch_size = batch_size
        context = lib.llama_context_default_params()
        # The head and a batch of windows, each with room for its labels' tokens.
        context.n_ctx = (batch_size + 1) * (max_length + 64)
        context.n_batch = context.n_ctx
        context.n_ubatch = MICRO_BATCH
        context.n_seq_max = MAX_SEQUENCES
        context.n_outputs_max_per_seq = max_length
        context.kv_unified = True
        threads = threads or len(os.sched_getaffinity(0))
        context.n_threads = context.n_threads_batch = threads
        self._ctx = lib.llama_init_from_model(self._model, context)
        if self._ctx == ffi.NULL:
            raise RuntimeError(f"llama.cpp could not create a context for {gguf_path}")
        self._memory = lib.llama_get_memory(self._ctx)
        self.n_ctx = int(lib.llama_n_ctx(self._ctx))
        self._head: tuple[int, ...] = ()

    def close(self) -> None:
        if getattr(self, "_ctx", None) is not None:
            self._lib.llama_free(self._ctx)
            self._lib.llama_model_free(self._model)
            self._ctx = self._model = None

    def __del__(self) -> None:
        self.close()

    def _decode(self, tokens: Sequence[tuple[int, int, Sequence[int], bool]]) -> None:
        """One llama_decode of (token, position, sequences, wants logits) rows."""
        lib = self._lib
        width = max(len(seqs) for _, _, seqs, _ in tokens)
        batch = lib.llama_batch_init(len(tokens), 0, width)
        try:
            batch.n_tokens = len(tokens)
            for i, (token, position, seqs, logits) in enumerate(tokens):
                batch.token[i] = token
                batch.pos[i] = position
                batch.n_seq_id[i] = len(seqs)
                for j, seq in enumerate(seqs):
                    batch.seq_id[i][j] = seq
                batch.logits[i] = logits
            result = lib.llama_decode(self._ctx, batch)
            if result != 0:
                raise RuntimeError(f"llama.cpp failed to decode a batch (code {result})")
        finally:
            lib.llama_batch_free(batch)

    def _log_probs(self, index: int) -> np.ndarray:
        """Log-softmax over the vocabulary of the logits at batch row `index`."""
        import numpy as np

        pointer = self._lib.llama_get_logits_ith(self._ctx, index)
        logits = np.frombuffer(self._ffi.buffer(pointer, 4 * self.n_vocab), dtype=np.float32).astype(
            np.float64
        )
        top = logits.max()
        return logits - top - np.log(np.exp(logits - top).sum())

    def _keep_head(self, head: Sequence[int]) -> None:
        """Decode the prompt head into sequence 0 unless it is there already; clear everything else."""
        key = tuple(head)
        if key != self._head:
            self._lib.llama_memory_clear(self._memory, True)
            self._head = ()
            for start in range(0, len(key), MICRO_BATCH):
                chunk = key[start : start + MICRO_BATCH]
                self._decode([(t, start + i, (0,), False) for i, t in enumerate(chunk)])
            self._head = key

    def _branch(self, sequences: Sequence[int]) -> None:
        for seq in sequences:
            self._lib.llama_memory_seq_cp(self._memory, 0, seq, -1, -1)

    def _drop(self, sequences: Sequence[int]) -> None:
        for seq in sequences:
            self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)

    def continuation_scores(
        self,
        head: Sequence[int],
        suffixes: Sequence[Sequence[int]],
        continuations: Sequence[Sequence[int]],
        length_norm: bool,
    ) -> np.ndarray:
        """Log-likelihood [len(suffixes), k] of each continuation after `head + suffix`."""
        import numpy as np

        k = len(continuations)
        # One sequence per review and label, within llama.cpp's limit.
        per_decode = max(1, min(self.batch_size, (MAX_SEQUENCES - 1) // k))
        scores = np.zeros((len(suffixes), k))
        self._keep_head(head)
        base = len(head)
        extra = sum(len(c) - 1 for c in continuations)
        order = sorted(range(len(suffixes)), key=lambda i: len(suffixes[i]))
        start = 0
        while start < len(order):
            # As many reviews as the sequences allow and the context holds beside the head.
            batch: list[int] = []
            used = base
            for index in order[start : start + per_decode]:
                need = len(suffixes[index]) + extra
                if batch and used + need > self.n_ctx:
                    break
                batch.append(index)
                used += need
            if used > self.n_ctx:
                raise ValueError(f"a prompt of {used} tokens exceeds llama.cpp's context of {self.n_ctx}")
            start += len(batch)
            rows: list[tuple[int, int, Sequence[int], bool]] = []
            reads: list[tuple[int, int, int, int]] = []  # (row, review, label, target token)
            sequences: list[int] = []
            for slot, index in enumerate(batch):
                labels = [1 + slot * k + j for j in range(k)]
                sequences.extend(labels)
                suffix = suffixes[index]
                for offset, token in enumerate(suffix):
                    rows.append((token, base + offset, labels, offset == len(suffix) - 1))
                last = len(rows) - 1
                for j, continuation in enumerate(continuations):
                    reads.append((last, index, j, continuation[0]))
                    for step, token in enumerate(continuation[:-1]):
                        rows.append((token, base + len(suffix) + step, (labels[j],), True))
                        reads.append((len(rows) - 1, index, j, continuation[step + 1]))
            self._branch(sequences)
            try:
                self._decode(rows)
                cache: dict[int, np.ndarray] = {}
                for row, index, j, target in reads:
                    if row not in cache:
                        cache[row] = self._log_probs(row)
                    scores[index, j] += cache[row][target]
            finally:
                self._drop(sequences)
        if length_norm:
            scores = scores / np.asarray([len(c) for c in continuations])
        return scores

    def generate(
        self, head: Sequence[int], suffixes: Sequence[Sequence[int]], max_new_tokens: int
    ) -> list[list[int]]:
        """Greedy answer tokens after each `head + suffix`, stopping at an end-of-generation token."""
        self._keep_head(head)
        base = len(head)
        answers: list[list[int]] = []
        for suffix in suffixes:
            self._branch((1,))
            try:
                self._decode([(t, base + i, (1,), i == len(suffix) - 1) for i, t in enumerate(suffix)])
                answer: list[int] = []
                position = base + len(suffix)
                while len(answer) < max_new_tokens:
                    token = int(self._log_probs(-1).argmax())
                    if self._lib.llama_vocab_is_eog(self._vocab, token):
                        break
                    answer.append(token)
                    self._decode([(token, position, (1,), True)])
                    position += 1
                answers.append(answer)
            finally:
                self._drop((1,))
        return answers


def gguf_path(checkpoint: str, gguf_file: str | None) -> str | None:
    """The local .gguf file a checkpoint names, or None (a hub id or a transformers folder)."""
    if not gguf_file:
        return None
    path = os.path.join(os.path.expanduser(checkpoint), gguf_file)
    return path if os.path.isfile(path) else None
