"""Naming a checkpoint by its contents, so that caches keyed on a model never serve answers from old weights.

Every model plugin puts ``checkpoint_identity`` into its fingerprint. A hub id
is its own identity; a local directory or file adds a hash of its weight and
config files. A file is hashed once per process for as long as its size,
inode and change times stay the same: ``ctime`` moves on every write, even one
that restores ``mtime``, so a file rewritten in place is hashed again.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

IDENTITY_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".msgpack", ".h5", ".json")
# Beyond this size a file is named by its size and times: hashing it would cost more than loading it.
CONTENT_HASH_LIMIT = 2 * 2**30


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


@functools.lru_cache(maxsize=256)
def _content_hash(path: str, size: int, inode: int, mtime_ns: int, ctime_ns: int) -> str:
    """SHA-256 of the file (the fastest hashlib digest on CPUs with SHA extensions); the stat fields key the cache."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()
