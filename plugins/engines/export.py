"""What the OpenVINO and ONNX Runtime engines share: the exported graph, where it is kept, and batching.

Both engines start from one ``torch.export`` program of a forward pass from
input ids and attention mask, batch and length dynamic up to the model's
window: a classifier's logits, or a seq2seq model's encoder pass (whose
decoder stays in torch), so they run exactly the layers the torch path runs,
the harness' fast encoder layers included. An export is written once
per checkpoint and engine settings, into the model directory beside the
fine-tuned weights, and read from there by every later run: like every cache
here, its folder name is a digest of the checkpoint's identity and of the
settings, so changed weights never reuse an old export.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import HarnessError
from harness.plugins.models._finetune import digest, length_batches

INSTALL = {
    "openvino": ("openvino", "nncf"),
    "onnxruntime": ("onnxruntime", "onnx", "onnxscript"),
}


def missing(engine: str) -> list[str]:
    """The import names `engine` needs that are not installed (none for torch)."""
    import importlib.util

    return [name for name in INSTALL.get(engine, ()) if importlib.util.find_spec(name) is None]


def versions(engine: str) -> dict[str, str]:
    """The versions an export depends on: torch's exporter and the engine's own packages."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", *INSTALL[engine]):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def install_hint(engine: str) -> str:
    """One line saying what to install for `engine`."""
    return f"engine={engine} needs {', '.join(missing(engine))}: pip install 'review-harness[{engine}]'"


def export_dir(workdir: Path, engine: str, settings: dict[str, Any], identity: dict[str, Any]) -> Path:
    """The folder of one export: engine, settings and the checkpoint's identity in its name."""
    return Path(workdir) / "exported" / f"{engine}-{settings['precision']}-{digest([settings, identity])}"


def build_once(target: Path, write: Callable[[Path], None]) -> Path:
    """`target`, written by `write` into a fresh folder that replaces it only once complete.

    A run stopped mid-export leaves a temporary folder, never a half export that
    a later run would load.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(scratch)
        try:
            scratch.rename(target)
        except OSError:  # another process finished the same export first: keep theirs
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Silence the exporters' own notes: library deprecations, log lines and progress bars.

    An export runs once per checkpoint, and what the exporters print (their own
    use of deprecated torch internals, tables of compressed layers) says
    nothing a user can act on; failures still raise.
    """
    disabled = logging.root.manager.disable
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(disabled)


def export_logits(model: Any, max_length: int) -> Any:
    """A ``torch.export`` program of `model`'s logits and final [CLS] state, batch and length dynamic.

    The [CLS] state (the encoder's output at position 0, what the head reads)
    is the review's embedding for routers; a hook on the encoder hands it to
    the exported forward, so both come from one pass.
    """
    import torch

    class LogitsAndFirstToken(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner
            self.first_token: list[Any] = []
            inner.base_model.register_forward_hook(
                lambda module, args, output: self.first_token.append(output[0][:, 0])
            )

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            logits = self.inner(input_ids=input_ids, attention_mask=attention_mask).logits
            return logits, self.first_token.pop()

    hooks = dict(model.base_model._forward_hooks)
    try:
        return _export(LogitsAndFirstToken(model).eval(), max_length)
    finally:  # the torch model keeps scoring as loaded
        model.base_model._forward_hooks.clear()
        model.base_model._forward_hooks.update(hooks)


def export_encoder(model: Any, max_length: int) -> Any:
    """A ``torch.export`` program of a seq2seq model's encoder: its last hidden states [batch, length, d].

    The encoder is traced with eager attention: the exporters cannot lower the
    reshape that follows transformers' SDPA attention in T5 once shapes are
    dynamic, and both compute the same. The torch model keeps its own afterwards.
    """
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    attention = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        return _export(Encoder(model.get_encoder()).eval(), max_length)
    finally:
        model.set_attn_implementation(attention)


def _export(wrapped: Any, max_length: int) -> Any:
    """``torch.export`` of `wrapped(input_ids, attention_mask)`, batch dynamic and length from 2 to `max_length`."""
    import torch

    length = max(3, min(8, max_length))
    ids = torch.full((2, length), 1000, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, length - 1 :] = 0
    batch = torch.export.Dim("batch", max=4096)
    tokens = torch.export.Dim("length", min=2, max=max(3, max_length))
    shapes = ({0: batch, 1: tokens}, {0: batch, 1: tokens})
    with quiet_export(), torch.inference_mode(False), torch.no_grad():
        return torch.export.export(wrapped, (ids, mask), dynamic_shapes=shapes)


@dataclass(frozen=True)
class Pass:
    """A forward pass the engines run: how it is traced from a model, and its outputs' names."""

    trace: Callable[[Any, int], Any]
    outputs: tuple[str, ...]


CLASSIFIER = Pass(export_logits, ("logits", "first_token"))
ENCODER = Pass(export_encoder, ("last_hidden_state",))


def load(
    engine: str,
    precision: str,
    model: Any,
    max_length: int,
    workdir: Path,
    identity: dict[str, Any],
    streams: int | None,
    pad_id: int,
    graph: Pass = CLASSIFIER,
) -> Any:
    """`engine` running `model`'s `graph` (a classifier's by default) at `precision`, exported first if need be."""
    if missing(engine):
        raise HarnessError(install_hint(engine))
    if engine == "openvino":
        from harness.plugins.engines import openvino as module
    else:
        from harness.plugins.engines import onnxruntime as module  # type: ignore[no-redef]
    settings = {"precision": precision, "max_length": max_length, "versions": versions(engine)}
    target = export_dir(workdir, engine, settings, identity)
    directory = module.export(model, max_length, target, precision, graph)
    return module.Engine(directory, precision, streams, pad_id)


def padded(windows: Sequence[Sequence[int]], pad_id: int) -> dict[str, Any]:
    """Right-padded int64 input ids and attention mask of `windows`, as numpy arrays."""
    import numpy as np

    width = max(len(w) for w in windows)
    ids = np.full((len(windows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(windows), width), dtype=np.int64)
    for row, window in enumerate(windows):
        ids[row, : len(window)] = window
        mask[row, : len(window)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def batched_outputs(
    windows: Sequence[Sequence[int]],
    batch_size: int,
    pad_id: int,
    run: Callable[[dict[str, Any], int], Sequence[Any]],
    workers: int,
) -> list[tuple[list[int], list[Any]]]:
    """Each length-sorted batch of `windows` (their indices) with its outputs, `workers` batches at a time.

    `run(inputs, worker)` computes one padded batch's outputs on the worker's
    own session or infer request.
    """
    import numpy as np

    batches = length_batches([len(w) for w in windows], batch_size)
    outputs: list[Any] = [None] * len(batches)

    def work(index: int, worker: int) -> None:
        batch = batches[index]
        outputs[index] = [np.asarray(out) for out in run(padded([windows[i] for i in batch], pad_id), worker)]

    if workers <= 1 or len(batches) <= 1:
        for index in range(len(batches)):
            work(index, 0)
    else:
        free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for worker in range(workers):
            free.put(worker)

        def take(index: int) -> None:
            # Each batch runs on a session or infer request no other thread holds meanwhile.
            worker = free.get()
            try:
                work(index, worker)
            finally:
                free.put(worker)

        with ThreadPoolExecutor(workers, thread_name_prefix="harness-engine") as pool:
            list(pool.map(take, range(len(batches))))
    return list(zip(batches, outputs, strict=True))


def batched_logits(
    windows: Sequence[Sequence[int]],
    batch_size: int,
    pad_id: int,
    run: Callable[[dict[str, Any], int], Sequence[Any]],
    workers: int,
) -> tuple[Any, Any]:
    """Logits [n, k] and [CLS] embeddings [n, d] of `windows` in their order (see `batched_outputs`)."""
    import numpy as np

    outputs = batched_outputs(windows, batch_size, pad_id, run, workers)
    logits = np.zeros((len(windows), outputs[0][1][0].shape[1]), dtype=np.float32)
    embeddings = np.zeros((len(windows), outputs[0][1][1].shape[1]), dtype=np.float32)
    for batch, (batch_logits, batch_embeddings) in outputs:
        logits[batch] = batch_logits
        embeddings[batch] = batch_embeddings
    return logits, embeddings
