"""Model loading never runs remote code or unpickles weights unless the user says so; boards are data.

Every `from_pretrained` call of the three model families is recorded, so a
forgotten keyword anywhere (config, tokenizer or weights) shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.boards import load_board
from harness.errors import HarnessError
from tests.tiny_t5 import PromptTask, build_tiny_llama, build_tiny_t5, make_context

TEXTS = ["great card", "it broke"]
TASK = PromptTask(labels=("negative", "positive"), label_words=("negative", "positive"))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    from tests.tiny_encoders import build_distilbert

    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "classifier": build_distilbert(root / "distilbert"),
        "seq2seq": build_tiny_t5(root / "t5"),
        "causal": build_tiny_llama(root / "llama"),
    }


def build(kind: str, checkpoint: Path, workdir: Path, **options: str):
    from harness.plugins.models import causal_lm, classifiers, seq2seq

    ctx = make_context(workdir, **options)
    if kind == "classifier":
        return classifiers.make_hf_classifier(str(checkpoint), ctx)
    if kind == "seq2seq":
        return seq2seq.make_seq2seq(str(checkpoint), ctx)
    return causal_lm.make_causal_lm(str(checkpoint), ctx)


@pytest.fixture
def loads(monkeypatch) -> list[tuple[str, dict]]:
    """Records the keyword arguments of every `from_pretrained` call, then loads as usual."""
    import transformers

    calls: list[tuple[str, dict]] = []
    for name in ("AutoConfig", "AutoTokenizer", "AutoModelForSequenceClassification", "AutoModelForSeq2SeqLM",
                 "AutoModelForCausalLM"):  # fmt: skip
        cls = getattr(transformers, name)
        original = cls.from_pretrained

        def recorder(*args, _name=name, _original=original, **kwargs):
            calls.append((_name, dict(kwargs)))
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", recorder)
    return calls


KINDS = ("classifier", "seq2seq", "causal")


@pytest.mark.parametrize("kind", KINDS)
def test_remote_code_stays_off_by_default_and_safetensors_are_required(kind, checkpoints, loads, tmp_path):
    build(kind, checkpoints[kind], tmp_path).predict(TEXTS, TASK)
    assert {name for name, _ in loads} >= {"AutoTokenizer"}
    assert all(kwargs.get("trust_remote_code", False) is False for _, kwargs in loads), loads
    weights = [kwargs for name, kwargs in loads if name.startswith("AutoModel")]
    assert weights and all(kwargs.get("use_safetensors") is True for kwargs in weights), weights


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", ["false", "", "no", "maybe"])
def test_only_an_explicit_true_turns_remote_code_on(kind, value, checkpoints, loads, tmp_path):
    try:
        build(kind, checkpoints[kind], tmp_path, trust_remote_code=value).predict(TEXTS, TASK)
    except (HarnessError, ValueError):
        return  # an unclear value may be refused outright, which is also safe
    assert loads and all(kwargs.get("trust_remote_code", False) is False for _, kwargs in loads), loads


@pytest.mark.parametrize("kind", KINDS)
def test_an_explicit_flag_passes_trust_remote_code_everywhere(kind, checkpoints, loads, tmp_path):
    build(kind, checkpoints[kind], tmp_path, trust_remote_code="true").predict(TEXTS, TASK)
    assert loads and all(kwargs.get("trust_remote_code") is True for _, kwargs in loads), loads


def pickle_only_copy(checkpoint: Path, target: Path) -> Path:
    """The same checkpoint with its weights in a pickle (`pytorch_model.bin`) and no safetensors file."""
    import torch
    from safetensors.torch import load_file

    target.mkdir()
    for path in checkpoint.iterdir():
        if path.suffix != ".safetensors":
            (target / path.name).write_bytes(path.read_bytes())
    torch.save(load_file(checkpoint / "model.safetensors"), target / "pytorch_model.bin")
    return target


@pytest.mark.parametrize("kind", KINDS)
def test_a_pickle_only_checkpoint_needs_allow_pickle(kind, checkpoints, tmp_path):
    pickled = pickle_only_copy(checkpoints[kind], tmp_path / "pickled")
    with pytest.raises((HarnessError, OSError), match="allow_pickle=true"):
        build(kind, pickled, tmp_path / "a").predict(TEXTS, TASK)
    allowed = build(kind, pickled, tmp_path / "b", allow_pickle="true").predict(TEXTS, TASK)
    safe = build(kind, checkpoints[kind], tmp_path / "c").predict(TEXTS, TASK)
    import numpy as np

    np.testing.assert_allclose(allowed.probs, safe.probs, atol=1e-5)


# board files are data ----------------------------------------------------------------------------------------

CODE = "__import__('pathlib').Path('{marker}').write_text('ran')"


def test_python_in_a_board_file_is_never_executed(tmp_path, host):
    from harness.run import run_board

    marker = tmp_path / "executed"
    code = CODE.format(marker=marker)
    board_file = tmp_path / "evil.toml"
    board_file.write_text(
        f'name = "{{{{ {code} }}}}"\ntasks = ["toy"]\ndata = "toy:10"\nbackend = "cpu"\nbootstrap = 5\n'
        f'models = [{code!r}, {{ spec = "words", label = {code!r}, options = {{ batch_size = "1" }} }}]\n'
    )
    board = load_board(board_file)
    results = run_board(host, board, tmp_path / "run")
    evil, words = results["rows"]
    assert evil["status"] == "error" and "unknown model" in evil["error"].lower()
    assert words["status"] == "ok" and words["label"] == code
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("import os\nos.system('touch {marker}')\n", "not valid TOML"),
        ('tasks = ["toy"]\nmodels = ["words"]\n__import__ = "os"\n', "unknown key"),
        ('tasks = ["toy"]\nmodels = [{{ spec = "words", exec = "{marker}" }}]\n', "unknown key"),
    ],
)
def test_a_board_file_that_is_code_is_refused_as_data(tmp_path, content, message):
    marker = tmp_path / "executed"
    board_file = tmp_path / "evil.toml"
    board_file.write_text(content.format(marker=marker))
    with pytest.raises(HarnessError, match=message):
        load_board(board_file)
    assert not marker.exists()
