"""A local GGUF that transformers computes on is read from a float32 folder written once by a child process."""

from __future__ import annotations

import pytest

from harness.plugins.models import _checkpoints, _gguf_folder, causal_lm
from tests.tiny_t5 import make_context


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """The folders go under the test's own directory, not the user's cache."""
    store = tmp_path / "cache" / "file-hashes.json"
    monkeypatch.setattr(_checkpoints, "hash_store", lambda: store)
    return store.parent / "gguf-transformers"


def test_a_file_transformers_cannot_read_fails_in_one_line_and_leaves_no_folder(tmp_path, own_cache):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(RuntimeError, match=r"could not write a float32 copy of .*broken\.gguf") as caught:
        _gguf_folder.float32_folder(broken)
    assert "\n" not in str(caught.value)
    assert list(own_cache.iterdir()) == []


@pytest.mark.slow
@pytest.mark.long
def test_the_packaged_smollm2_loads_from_its_folder_with_the_gguf_weights_and_tokenizer(tmp_path, own_cache):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = causal_lm.packaged_smollm2()
    scorer = causal_lm.make_smollm2(None, make_context(tmp_path))
    scorer._load()
    (folder,) = own_cache.iterdir()
    assert (folder / _gguf_folder.COMPLETE).is_file() and not list(own_cache.glob(".*"))
    assert _gguf_folder.float32_folder(gguf) == folder  # written once, then found
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    ours = scorer._model.state_dict()
    for name, tensor in direct.state_dict().items():
        assert torch.equal(ours[name], tensor), name
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    text = "Stopped working after a week. Très déçu 😞\nAnswer: negative"
    assert scorer._tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
