"""Where a checkpoint is and how many parameters it holds, found without loading it.

The preflight asks this before any model runs: whether a checkpoint is a local
path, a download in the Hugging Face cache, or reachable on a hub that answers;
and, from the headers of its safetensors or GGUF files (no weights are read),
how much memory its weights will take.
"""

from __future__ import annotations

import json
import os
import struct
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

HUB_PROBE_TIMEOUT_S = 3.0


def looks_local(checkpoint: str) -> bool:
    """A path rather than a hub id (`owner/name`)."""
    return checkpoint.startswith(("/", ".", "~")) or checkpoint.count("/") > 1 or Path(checkpoint).exists()


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloads, found as it finds it (without importing it)."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def cached_snapshot(repo_id: str) -> Path | None:
    """The newest downloaded snapshot of a hub model, or None when it was never downloaded."""
    snapshots = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    found = [p for p in snapshots.iterdir() if p.is_dir()] if snapshots.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def hub_answers(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """One short request to the hub: None when it answers, else why not (no retries)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # it answered, if only to refuse the bare endpoint
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{endpoint} cannot be reached ({getattr(reason, 'strerror', None) or reason})"
    return None


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set, as huggingface_hub reads it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def parameter_count(path: Path) -> int | None:
    """Parameters in a checkpoint file or folder, from the weight files' headers (no weights are read)."""
    files = [path] if path.is_file() else sorted(path.iterdir())
    safetensors = [f for f in files if f.suffix == ".safetensors"]
    if safetensors:
        return sum(_safetensors_parameters(f) for f in safetensors)
    gguf = [f for f in files if f.suffix == ".gguf"]
    if gguf:
        return _gguf_parameters(gguf[0])
    pickled = [f for f in files if f.suffix in (".bin", ".pt", ".pth") and f.is_file()]
    return sum(f.stat().st_size for f in pickled) // 4 or None  # float32 weights, as most are saved


def _safetensors_parameters(path: Path) -> int:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    total = 0
    for name, info in header.items():
        if name != "__metadata__":
            total += _product(info["shape"])
    return total


def _product(shape: list[int]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def _gguf_parameters(path: Path) -> int | None:
    """Sum of the tensor shapes a GGUF file lists after its metadata (format versions 2 and 3)."""

    def read(handle: BinaryIO, fmt: str) -> Any:
        return struct.unpack("<" + fmt, handle.read(struct.calcsize(fmt)))[0]

    def skip_value(handle: BinaryIO, kind: int) -> None:
        if kind == 8:
            handle.seek(read(handle, "Q"), os.SEEK_CUR)
        elif kind == 9:
            inner, count = read(handle, "I"), read(handle, "Q")
            if inner in GGUF_SCALARS:
                handle.seek(count * struct.calcsize(GGUF_SCALARS[inner]), os.SEEK_CUR)
            else:
                for _ in range(count):
                    skip_value(handle, inner)
        else:
            handle.seek(struct.calcsize(GGUF_SCALARS[kind]), os.SEEK_CUR)

    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF" or read(handle, "I") < 2:
            return None
        tensors, pairs = read(handle, "Q"), read(handle, "Q")
        for _ in range(pairs):
            handle.seek(read(handle, "Q"), os.SEEK_CUR)
            skip_value(handle, read(handle, "I"))
        total = 0
        for _ in range(tensors):
            handle.seek(read(handle, "Q"), os.SEEK_CUR)
            dims = [read(handle, "Q") for _ in range(read(handle, "I"))]
            handle.seek(4 + 8, os.SEEK_CUR)  # tensor type, offset
            total += _product(dims)
    return total
