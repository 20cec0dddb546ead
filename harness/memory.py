"""Handing a finished model's memory back to the system after its row, where the model loaded weights.

A run holds one model at a time, yet without this its peak memory is the sum
of its rows': transformers models hold reference cycles, which only Python's
rare full collection frees, and glibc keeps freed heap for reuse rather than
returning it, so the next model's weights land on top of the last one's
leftovers (the default board's MiniLM fine-tuning left about a gigabyte under
SmolLM2's weights).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import sys


def release_freed_memory() -> None:
    """Collect unreachable objects, then return the heap they held to the system where glibc allows."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return
    # not glibc (musl has no malloc_trim): nothing to hand back
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
