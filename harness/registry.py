"""Named registries of what plugins provide, with collision and typo errors that say what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from harness.errors import CollisionError, HarnessError, UnknownNameError

T = TypeVar("T")

KINDS = ("models", "tasks", "routers", "backends", "exporters", "sources", "boards", "metrics")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str
    description: str = ""


class Registry(Generic[T]):
    """Maps names to what a plugin registered under them, remembering which plugin it was."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, obj: T, plugin: str, description: str = "") -> None:
        if not isinstance(name, str) or not name:
            raise HarnessError(f"plugin {plugin!r} registered a {self.kind[:-1]} with an empty name")
        previous = self._entries.get(name)
        if previous is not None:
            raise CollisionError(
                f"{self.kind[:-1]} {name!r} is registered by two plugins: {previous.plugin!r} and "
                f"{plugin!r}; uninstall one of them or restrict loading with HARNESS_LOAD_PLUGINS"
            )
        self._entries[name] = Entry(name, obj, plugin, description)

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        message = f"unknown {self.kind[:-1]} {name!r}"
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        if close:
            message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        return message + f" (see `harness list {self.kind}`)"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)


class Registries:
    """One registry per kind of thing a plugin can register."""

    def __init__(self) -> None:
        self.models: Registry[Any] = Registry("models")
        self.tasks: Registry[Any] = Registry("tasks")
        self.routers: Registry[Any] = Registry("routers")
        self.backends: Registry[Any] = Registry("backends")
        self.exporters: Registry[Any] = Registry("exporters")
        self.sources: Registry[Any] = Registry("sources")
        self.boards: Registry[Any] = Registry("boards")
        self.metrics: Registry[Any] = Registry("metrics")

    def of_kind(self, kind: str) -> Registry[Any]:
        if kind not in KINDS:
            raise UnknownNameError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        registry: Registry[Any] = getattr(self, kind)
        return registry
