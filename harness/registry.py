"""Named registries of what plugins provide, with collision and typo errors that say what to do."""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from harness.errors import CollisionError, HarnessError, UnknownNameError
from harness.options import NO_OPTIONS, OptionSet
from harness.types import (
    Backend,
    BackendFactory,
    Exporter,
    Metric,
    Model,
    ModelFactory,
    Router,
    RouterFactory,
    Source,
    Task,
    TaskFactory,
)

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

KINDS = ("models", "tasks", "routers", "backends", "exporters", "sources", "boards", "metrics")


class Register(Protocol[T_contra]):
    """The callback a registration hook receives: ``register(name, obj, description="", ...)``.

    ``options`` declares the KEY=VALUE options a model, task, router or backend
    accepts (see ``harness.options``; None: a model that passes the options on to
    the models it is built from, as hybrids do); ``tasks`` names the tasks a model
    supports (None: any task).
    """

    def __call__(
        self,
        name: str,
        obj: T_contra,
        description: str = "",
        *,
        options: OptionSet | None = ...,
        tasks: Sequence[str] | None = ...,
    ) -> None: ...


@dataclass(frozen=True)
class Entry(Generic[T]):
    """What one plugin registered under one name, with what it declared about it."""

    name: str
    obj: T
    plugin: str
    description: str = ""
    options: OptionSet | None = NO_OPTIONS
    tasks: tuple[str, ...] | None = None

    def supports(self, task: str) -> bool:
        """Whether the registered model declared it can run `task` (no declaration: any task)."""
        return self.tasks is None or task in self.tasks


# How each kind's factory is called, and what it must return.
FACTORY_PARAMETERS: dict[str, tuple[str, ...]] = {
    "models": ("arg", "ctx"),
    "tasks": ("options",),
    "routers": ("param",),
    "backends": ("options",),
}
PRODUCTS: dict[str, tuple[type, str]] = {
    "models": (Model, "a Model: name, predict(texts, task) and fingerprint()"),
    "tasks": (Task, "a Task: name, labels, label_words, prompt, split(), metrics() and fingerprint()"),
    "routers": (Router, "a Router: name and escalate(probs)"),
    "backends": (Backend, "a Backend: name, device, dtype, setup(), synchronize() and describe()"),
}

# The members of each product; a factory's declared product (a class registered as the factory, or the
# factory's return annotation) is checked for the methods when it registers, before anything is built.
PRODUCT_METHODS: dict[str, tuple[str, ...]] = {
    "models": ("predict", "fingerprint"),
    "tasks": ("split", "metrics", "fingerprint"),
    "routers": ("escalate",),
    "backends": ("setup", "synchronize", "describe"),
}
PRODUCT_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "models": ("name",),
    "tasks": ("name", "labels", "label_words", "prompt"),
    "routers": ("name",),
    "backends": ("name", "device", "dtype"),
}


class ContractError(HarnessError):
    """A plugin's factory or hook broke the plugin contract; the message names the plugin and the fix."""


def factory_problem(kind: str, obj: object) -> str | None:
    """Why `obj` cannot be a factory of this kind (wrong type or parameters), or None when it can."""
    parameters = FACTORY_PARAMETERS.get(kind)
    if parameters is None:
        return None
    expected = f"factory({', '.join(parameters)})"
    if not callable(obj):
        return f"registered {type(obj).__name__} where a {expected} was expected"
    try:
        inspect.signature(obj).bind(*parameters)
    except TypeError:
        return f"registered a factory taking {inspect.signature(obj)}; a {kind[:-1]} factory is {expected}"
    except ValueError:  # builtins without a signature: trust them
        return None
    product = declared_product(obj)
    missing = missing_members(kind, product, methods_only=True) if product is not None else []
    if product is not None and missing:
        return (
            f"its factory returns {product.__name__}, which has no {', '.join(missing)}; "
            f"it must return {PRODUCTS[kind][1]}"
        )
    return None


def declared_product(factory: object) -> type | None:
    """The class a factory says it builds (itself when it is a class, else its return annotation), if any.

    This is what can be checked without calling the factory, which may load weights.
    """
    if isinstance(factory, type):
        return factory
    try:
        returned = typing.get_type_hints(factory).get("return")
    except Exception:  # an annotation that does not resolve, or an object hints cannot be read from
        return None
    return returned if isinstance(returned, type) and returned not in (typing.Any, object) else None


def missing_members(kind: str, obj: object, *, methods_only: bool = False) -> list[str]:
    """The members of a `kind` product that `obj` lacks, as `fingerprint()` or `name`."""
    missing = [
        f"{name}()" for name in PRODUCT_METHODS.get(kind, ()) if not callable(getattr(obj, name, None))
    ]
    if not methods_only:
        missing += [name for name in PRODUCT_ATTRIBUTES.get(kind, ()) if not hasattr(obj, name)]
    return missing


class Registry(Generic[T]):
    """Maps names to what a plugin registered under them, remembering which plugin it was."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def add(
        self,
        name: str,
        obj: T,
        plugin: str,
        description: str = "",
        *,
        options: OptionSet | None = NO_OPTIONS,
        tasks: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise HarnessError(f"plugin {plugin!r} registered a {self.kind[:-1]} with an empty name")
        previous = self._entries.get(name)
        if previous is not None:
            raise CollisionError(
                f"{self.kind[:-1]} {name!r} is registered by two plugins: {previous.plugin!r} and "
                f"{plugin!r}; uninstall one of them or restrict loading with HARNESS_LOAD_PLUGINS"
            )
        if options is not None and not isinstance(options, OptionSet):
            raise HarnessError(
                f"plugin {plugin!r} registered {self.kind[:-1]} {name!r} with options that are not an "
                "OptionSet; declare them as OptionSet(Option(...), ...) from harness"
            )
        if tasks is not None and (isinstance(tasks, str) or not all(isinstance(t, str) for t in tasks)):
            raise HarnessError(
                f"plugin {plugin!r} registered {self.kind[:-1]} {name!r} with tasks={tasks!r}; "
                "give a list of task names, e.g. tasks=['polarity']"
            )
        self._entries[name] = Entry(
            name, obj, plugin, description, options, None if tasks is None else tuple(tasks)
        )

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def build(self, name: str, *args: Any) -> Any:
        """Call the factory registered under `name` and check that it kept the contract."""
        entry = self.get(name)
        product = entry.obj(*args)  # type: ignore[operator]
        expected_type, expected = PRODUCTS[self.kind]
        if not isinstance(product, expected_type):
            missing = missing_members(self.kind, product) if product is not None else []
            lacks = f", which has no {', '.join(missing)}" if missing else ""
            raise ContractError(
                f"plugin {entry.plugin!r}: the {self.kind[:-1]} factory {name!r} returned "
                f"{type(product).__name__}{lacks}; it must return {expected}"
            )
        return product

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
        self.models: Registry[ModelFactory] = Registry("models")
        self.tasks: Registry[TaskFactory] = Registry("tasks")
        self.routers: Registry[RouterFactory] = Registry("routers")
        self.backends: Registry[BackendFactory] = Registry("backends")
        self.exporters: Registry[Exporter] = Registry("exporters")
        self.sources: Registry[Source] = Registry("sources")
        self.boards: Registry[str | Path] = Registry("boards")
        self.metrics: Registry[Metric] = Registry("metrics")

    def of_kind(self, kind: str) -> Registry[Any]:
        if kind not in KINDS:
            raise UnknownNameError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        registry: Registry[Any] = getattr(self, kind)
        return registry
