"""The prediction cache: every prediction, keyed by model, task and text, in SQLite.

It is what makes a killed run resume where it stopped and what lets router
sweeps replay thresholds without re-running models (a model's review
embeddings are kept too, as float16, for routers that learn from them). Keys are fingerprints, so
a cache written by another model version, task definition or label set is
never reused; a corrupted file is reported, moved aside and rebuilt.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    model_fp TEXT NOT NULL,
    task_fp TEXT NOT NULL,
    text_key TEXT NOT NULL,
    probs BLOB NOT NULL,
    latency_s REAL NOT NULL,
    truncated INTEGER NOT NULL,
    raw_text TEXT,
    embedding BLOB,
    PRIMARY KEY (model_fp, task_fp, text_key)
)
"""


# (text key, probs, latency, truncated, raw text) and, for a model that returns embeddings, the embedding
CacheRow = (
    tuple[str, np.ndarray, float, bool, str | None]
    | tuple[str, np.ndarray, float, bool, str | None, np.ndarray | None]
)


def embedding_text(vector: np.ndarray) -> str:
    """An embedding as predictions.jsonl keeps it: base64 of float16 (a third of a list of numbers' size)."""
    return base64.b64encode(np.asarray(vector, dtype=np.float16).tobytes()).decode("ascii")


def embedding_from_text(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32)


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass
class CachedPrediction:
    probs: np.ndarray
    latency_s: float
    truncated: bool
    raw_text: str | None
    embedding: np.ndarray | None = None


class PredictionCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            corrupt = path.with_suffix(path.suffix + ".corrupt")
            warnings.warn(
                f"prediction cache {path} is unreadable ({exc}); moved to {corrupt} and rebuilt", stacklevel=2
            )
            path.replace(corrupt)
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        # A hybrid reads stored predictions from inside `predict`, which a batch timeout runs in a worker thread.
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(predictions)")}
        if "embedding" not in columns:  # a cache written before embeddings were kept
            conn.execute("ALTER TABLE predictions ADD COLUMN embedding BLOB")
        conn.execute("SELECT count(*) FROM predictions").fetchone()
        integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
        if integrity != "ok":
            conn.close()
            raise sqlite3.DatabaseError(f"integrity check failed: {integrity}")
        return conn

    def get_many(
        self, model_fp: str, task_fp: str, keys: Sequence[str], k: int
    ) -> dict[str, CachedPrediction]:
        found: dict[str, CachedPrediction] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            rows = self._conn.execute(
                "SELECT text_key, probs, latency_s, truncated, raw_text, embedding FROM predictions "
                f"WHERE model_fp = ? AND task_fp = ? AND text_key IN ({','.join('?' * len(part))})",
                (model_fp, task_fp, *part),
            )
            for key, blob, latency, truncated, raw, embedding in rows:
                if not isinstance(blob, bytes) or len(blob) != 4 * k:
                    continue  # written under another label set or damaged: recompute, never trust
                probs = np.frombuffer(blob, dtype=np.float32)
                if not np.all(np.isfinite(probs)):
                    continue
                vector = np.frombuffer(embedding, dtype=np.float16) if isinstance(embedding, bytes) else None
                found[key] = CachedPrediction(probs, float(latency), bool(truncated), raw, vector)
        return found

    def put_many(
        self,
        model_fp: str,
        task_fp: str,
        rows: Iterable[CacheRow],
    ) -> None:
        """Rows of (key, probs, latency, truncated, raw text), with the embedding sixth where there is one."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO predictions (model_fp, task_fp, text_key, probs, latency_s, truncated, "
                "raw_text, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (model_fp, task_fp, key, np.asarray(p, dtype=np.float32).tobytes(), lat, int(tr), raw,
                     None if not rest or rest[0] is None else np.asarray(rest[0], dtype=np.float16).tobytes())
                    for key, p, lat, tr, raw, *rest in rows
                ],
            )  # fmt: skip

    def close(self) -> None:
        self._conn.close()
