"""Writing run outputs so that a crash or a second run never leaves a half-written file."""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import IO, Any

from harness.errors import HarnessError, RunFailed

STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
}


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; follow the umask as other files do
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def json_safe(obj: Any) -> Any:
    """NaN and infinity become null: JSON has no such numbers and strict readers reject them."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(json_safe(obj), indent=2, ensure_ascii=False, default=str, allow_nan=False)
    atomic_write(path, text + "\n")


class RunDirLock:
    """Refuses a second run in the same directory instead of letting both corrupt it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self._handle: IO[str] | None = None

    def __enter__(self) -> RunDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise HarnessError(
                f"another harness run is using {self.path.parent}; wait for it or pass a different --out"
            ) from None
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def storage_problem(exc: BaseException) -> str | None:
    """What is wrong with the storage behind `exc` in a few words, or None when it is some other error.

    SQLite reports a full disk or a read-only file in words, not with an errno.
    """
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        return STORAGE_ERRNOS[exc.errno]
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if "disk is full" in text:
            return STORAGE_ERRNOS[errno.ENOSPC]
        if "readonly" in text or "read-only" in text:
            return "the database is read-only"
    return None


def storage_error(exc: BaseException, directory: Path) -> RunFailed | None:
    """A one-line error naming the directory that could not be written, or None for other errors.

    The prediction cache commits every batch, so what was scored before the
    failure is kept: the message says that running the same command resumes.
    """
    problem = storage_problem(exc)
    if problem is None:
        return None
    filename = getattr(exc, "filename", None)
    where = Path(filename).parent if isinstance(filename, str) and filename else directory
    return RunFailed(
        f"{problem} in {where}; make room (or fix the permissions) and run the same command again: "
        "it resumes from the prediction cache"
    )


def out_of_space(exc: BaseException) -> bool:
    """A full disk or read-only storage: every later write fails too, so the run must stop."""
    problem = storage_problem(exc)
    return problem is not None and problem != STORAGE_ERRNOS[errno.EACCES]
