"""A GGUF's weights as a float32 transformers folder, written once into the user's cache.

transformers reads a GGUF by dequantizing every tensor into a float32 state
dict beside the model it builds, and converting the file's vocabulary into a
tokenizer: seconds of work and about three times the model's memory at every
load. The folder holds the same float32 weights (safetensors), config and
tokenizer in transformers' own format, so that every later load reads them
directly. A child process writes it, so the dequantizing peak never adds to
a run's own memory. The folder is named by the GGUF's contents, so new
weights get a new folder, and appears only complete (written under another
name, then renamed), so two processes never read a half-written one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.plugins.models._checkpoints import derived_copy

COMPLETE = "complete"  # the last file written, so that a folder holding it was written whole


def float32_folder(gguf: Path) -> Path:
    """The transformers folder of `gguf`'s weights, written on first use (a minute at most for 135M)."""
    target = derived_copy(gguf, "gguf-transformers")
    if (target / COMPLETE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    try:
        written = subprocess.run(
            [sys.executable, "-m", __name__, str(gguf), str(partial)], capture_output=True, text=True
        )
        if written.returncode != 0:
            reason = (written.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"could not write a float32 copy of {gguf} for transformers: {reason}")
        try:
            partial.rename(target)
        except OSError:  # another process finished first; its folder is the same
            if not (target / COMPLETE).is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def write_folder(gguf: Path, folder: Path) -> None:
    """Load `gguf` as transformers does and save model and tokenizer into `folder` (runs in the child)."""
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a model loaded from a GGUF, whose dequantized weights are plain float32
    # tensors; the config keeps no trace of the file, so the folder loads as any other checkpoint
    del model.config.quantization_config
    model.config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / COMPLETE).write_text(gguf.name + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_folder(Path(sys.argv[1]), Path(sys.argv[2]))
