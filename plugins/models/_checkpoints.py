"""Naming a checkpoint by its contents, so that caches keyed on a model never serve answers from old weights.

Every model plugin puts ``checkpoint_identity`` into its fingerprint. A hub id
is its own identity; a local directory or file adds a hash of its weight and
config files. A file is hashed once for as long as its size, inode and
change times stay the same: ``ctime`` moves on every write, even one that
restores ``mtime``, so a file rewritten in place is hashed again. The hashes
are kept in the user's cache directory (``file-hashes.json``), so a second
process does not read a large checkpoint through again just to name it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from harness.files import atomic_write

IDENTITY_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".msgpack", ".h5", ".json")
# Beyond this size a file is named by its size and times: hashing it would cost more than loading it.
CONTENT_HASH_LIMIT = 2 * 2**30
# Only the hash of a file unchanged for this long is kept on disk: on a file system with coarse
# timestamps, a file written again within one tick of its last change keeps its ctime.
SETTLED_NS = 2 * 10**9


def checkpoint_identity(checkpoint: str) -> str:
    """`checkpoint` itself for a hub id; for a local path, the path and a digest of its files."""
    path = Path(checkpoint).expanduser()
    if not path.exists():
        return checkpoint
    if path.is_file():
        named = [(path.name, file_identity(path))]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in IDENTITY_SUFFIXES)
        named = [(str(p.relative_to(path)), file_identity(p)) for p in files]
    listing = "\n".join(f"{name}\t{identity}" for name, identity in named)
    return f"{path.resolve()}@{hashlib.sha256(listing.encode()).hexdigest()[:16]}"


def file_identity(path: Path) -> str:
    """A content hash of `path` (size and times beyond CONTENT_HASH_LIMIT)."""
    stat = path.stat()
    if stat.st_size > CONTENT_HASH_LIMIT:
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    return _content_hash(str(path.resolve()), stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns)


def derived_copy(source: Path, kind: str, suffix: str = "") -> Path:
    """Where a copy made from `source` (a dequantized GGUF) is kept in the user's cache: under `kind`, named
    by the source's contents, so that new weights get a new copy."""
    identity = hashlib.sha256(f"{source.name}|{file_identity(source)}".encode()).hexdigest()[:16]
    return hash_store().parent / kind / f"{source.stem}.{identity}{suffix}"


def hash_store() -> Path:
    """The file that keeps content hashes between processes, in the user's cache directory."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(root) / "review-harness" / "file-hashes.json"


@functools.lru_cache(maxsize=256)
def _content_hash(path: str, size: int, inode: int, mtime_ns: int, ctime_ns: int) -> str:
    """SHA-256 of the file (the fastest hashlib digest on CPUs with SHA extensions); the stat fields key the cache."""
    stamp = [size, inode, mtime_ns, ctime_ns]
    stored = _read_store().get(path)
    if isinstance(stored, list) and stored[:4] == stamp:
        return str(stored[4])
    settled = time.time_ns() - ctime_ns > SETTLED_NS
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            sha.update(block)
    if settled:
        _remember(path, stamp, sha.hexdigest())
    return sha.hexdigest()


def _read_store() -> dict[str, Any]:
    try:
        entries = json.loads(hash_store().read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _remember(path: str, stamp: list[int], digest: str) -> None:
    """Keep one file's hash, dropping the entries of files since changed or gone, so the store stays small."""
    entries = {name: entry for name, entry in _read_store().items() if _unchanged(name, entry)}
    entries[path] = [*stamp, digest]
    with contextlib.suppress(
        OSError
    ):  # a store that cannot be written costs the next process a read of the file
        atomic_write(hash_store(), json.dumps(entries))


def _unchanged(path: str, entry: Any) -> bool:
    try:
        stat = os.stat(path)
    except OSError:
        return False
    return isinstance(entry, list) and entry[:4] == [
        stat.st_size,
        stat.st_ino,
        stat.st_mtime_ns,
        stat.st_ctime_ns,
    ]
