"""The built-in boards: TOML files beside this module, registered like any plugin's boards."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path

from harness import Register, hookimpl


def board_files() -> list[Path]:
    return sorted(Path(str(files("harness.leaderboard") / "boards")).glob("*.toml"))


@hookimpl
def register_boards(register: Register[str | Path]) -> None:
    for path in board_files():
        description = tomllib.loads(path.read_text(encoding="utf-8")).get("description", "")
        register(path.stem, path, description=description)
