"""What the `harness` subcommands share, built-in or added by a plugin's `register_commands`."""

from __future__ import annotations

import os

import click

EXIT_CODES = """\b
Exit codes:
  0    every row succeeded
  1    the run finished but a row failed, or more than half of a row's answers name no label,
       or it stopped on a full or unwritable disk
  2    a usage or preflight error: nothing ran
  3    the data file is truncated or corrupt: the run stopped where it breaks rather than
       score part of it (what was scored is cached; repair the file and run it again)
  130  interrupted (Ctrl-C); the same command resumes from the cache"""


def parse_pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    """Repeated `--x-option KEY=VALUE` flags as a dict; a malformed one is a usage error naming the flag."""
    pairs = {}
    for value in values:
        key, eq, val = value.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=what)
        pairs[key.strip()] = val.strip()
    return pairs


def quiet_model_libraries() -> None:
    """Our progress bars and table are the output; silence the model libraries' own bars and load reports."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers draws its GGUF conversion bar with plain tqdm
