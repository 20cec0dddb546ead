"""What the OpenVINO and ONNX Runtime engines share: the exported graph, where it is kept, and batching.

Both engines start from one ``torch.export`` program of the classifier's
forward pass (logits from input ids and attention mask, batch and length
dynamic up to the model's window), so they run exactly the layers the torch
path runs, the harness' fast encoder layers included. An export is written once
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
from pathlib import Path
from typing import Any

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
    the exported forward, so both come from one pass. Length runs from 2 to
    `max_length`.
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

    wrapped = LogitsAndFirstToken(model).eval()
    length = max(3, min(8, max_length))
    ids = torch.full((2, length), 1000, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, length - 1 :] = 0
    batch = torch.export.Dim("batch", max=4096)
    tokens = torch.export.Dim("length", min=2, max=max(3, max_length))
    shapes = ({0: batch, 1: tokens}, {0: batch, 1: tokens})
    hooks = dict(model.base_model._forward_hooks)
    try:
        with quiet_export(), torch.inference_mode(False), torch.no_grad():
            return torch.export.export(wrapped, (ids, mask), dynamic_shapes=shapes)
    finally:  # the torch model keeps scoring as loaded
        model.base_model._forward_hooks.clear()
        model.base_model._forward_hooks.update(hooks)


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


def batched_logits(
    windows: Sequence[Sequence[int]],
    batch_size: int,
    pad_id: int,
    run: Callable[[dict[str, Any], int], Sequence[Any]],
    workers: int,
) -> tuple[Any, Any]:
    """Logits [n, k] and [CLS] embeddings [n, d] of `windows` in their order, `workers` batches at a time.

    Batches are length-sorted; `run(inputs, worker)` computes one padded
    batch's two outputs on the worker's own session or infer request.
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
    logits = np.zeros((len(windows), outputs[0][0].shape[1]), dtype=np.float32)
    embeddings = np.zeros((len(windows), outputs[0][1].shape[1]), dtype=np.float32)
    for batch, (batch_logits, batch_embeddings) in zip(batches, outputs, strict=True):
        logits[batch] = batch_logits
        embeddings[batch] = batch_embeddings
    return logits, embeddings
