"""Checkpoint identities: changed weights change them, a hub id names itself, each file is read once while unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from harness.plugins.models import _checkpoints as checkpoints


def test_replaced_weights_change_the_identity_even_with_the_old_times(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"1234")
    before = checkpoints.checkpoint_identity(str(tmp_path))
    stat = weights.stat()
    weights.write_bytes(b"5678")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert checkpoints.checkpoint_identity(str(tmp_path)) != before


def test_config_files_count_and_other_files_do_not(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"1234")
    before = checkpoints.checkpoint_identity(str(tmp_path))
    (tmp_path / "README.md").write_text("notes")
    assert checkpoints.checkpoint_identity(str(tmp_path)) == before
    (tmp_path / "config.json").write_text("{}")
    assert checkpoints.checkpoint_identity(str(tmp_path)) != before


def test_a_single_weights_file_and_a_hub_id(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    identity = checkpoints.checkpoint_identity(str(gguf))
    assert identity.startswith(f"{gguf.resolve()}@")
    gguf.write_bytes(b"GGUF2")
    assert checkpoints.checkpoint_identity(str(gguf)) != identity
    assert checkpoints.checkpoint_identity("org/model") == "org/model"


def test_an_unchanged_file_is_hashed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"1234")
    opened: list[str] = []
    real_open = open

    def counting_open(file: str, *args: object, **kwargs: object) -> object:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", counting_open)
    first = checkpoints.checkpoint_identity(str(tmp_path))
    assert checkpoints.checkpoint_identity(str(tmp_path)) == first
    assert opened == [str((tmp_path / "model.safetensors").resolve())]


def test_files_beyond_the_hash_limit_are_named_by_size_and_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"12345678")
    monkeypatch.setattr(checkpoints, "CONTENT_HASH_LIMIT", 4)
    stat = weights.stat()
    assert checkpoints.file_identity(weights) == f"{stat.st_size}:{stat.st_mtime_ns}"


def test_a_hash_is_kept_for_the_next_process_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "cache" / "file-hashes.json"
    monkeypatch.setattr(checkpoints, "hash_store", lambda: store)
    monkeypatch.setattr(checkpoints, "SETTLED_NS", 0)
    weights = tmp_path / "model" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"1234")
    gone = tmp_path / "gone.bin"
    gone.write_bytes(b"x")
    checkpoints.file_identity(gone)
    gone.unlink()
    digest = checkpoints.file_identity(weights)
    entries = json.loads(store.read_text())
    assert list(entries) == [str(weights.resolve())]  # the entry of a file that went is dropped
    entries[str(weights.resolve())][4] = "kept"
    store.write_text(json.dumps(entries))
    checkpoints._content_hash.cache_clear()  # a new process
    assert checkpoints.file_identity(weights) == "kept"  # read from the store, not from the file
    weights.write_bytes(b"5678")
    checkpoints._content_hash.cache_clear()
    assert checkpoints.file_identity(weights) == hashlib.sha256(b"5678").hexdigest() != digest


def test_a_file_changed_moments_ago_is_hashed_but_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "file-hashes.json"
    monkeypatch.setattr(checkpoints, "hash_store", lambda: store)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"1234")
    assert checkpoints.file_identity(weights) == hashlib.sha256(b"1234").hexdigest()
    assert not store.exists()
