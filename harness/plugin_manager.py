"""Finds, loads and isolates plugins, and collects what they register.

Built-in plugins are plain modules loaded by import name and registered exactly
as third-party ones (entry-point group ``harness``). A plugin that fails to
import or to register is reported and skipped, unless HARNESS_STRICT_PLUGINS=1;
HARNESS_LOAD_PLUGINS=a,b loads only the third-party plugins named (an empty
value loads built-ins only).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import os
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import HarnessError
from harness.registry import ContractError, Registries, Registry, factory_problem

ENTRY_POINT_GROUP = "harness"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "harness.plugins.backends.torch_devices",
    "harness.plugins.backends.ray_actors",
    "harness.plugins.routing.routers",
    "harness.plugins.models.hybrid",
    "harness.plugins.models.classifiers",
    "harness.plugins.models.baselines",
    "harness.plugins.models.seq2seq",
    "harness.plugins.models.causal_lm",
    "harness.plugins.models.openai_endpoint",
    "harness.plugins.distill.command",
    "harness.plugins.routing.sweep",
    "harness.plugins.bench.command",
    "harness.tasks.sources",
    "harness.tasks.polarity",
    "harness.tasks.category",
    "harness.tasks.builtin_metrics",
    "harness.leaderboard.exporters",
    "harness.leaderboard.run_outputs",
    "harness.leaderboard.commands",
    "harness.leaderboard.builtin_boards",
)

REGISTRATION_HOOKS: dict[str, str] = {
    "models": "register_models",
    "tasks": "register_tasks",
    "routers": "register_routers",
    "backends": "register_backends",
    "exporters": "register_exporters",
    "sources": "register_sources",
    "boards": "register_boards",
    "metrics": "register_metrics",
}


class PluginLoadError(HarnessError):
    pass


@dataclass
class PluginInfo:
    """What `harness plugins` shows for one plugin."""

    name: str
    source: str
    hooks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "hooks": self.hooks, "errors": self.errors}


HARNESS_CORE = os.path.dirname(os.path.abspath(__file__))


def _short_error(exc: BaseException) -> str:
    """The error and where it happened: the deepest line of the plugin's own code, where there is one."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if not f.filename.startswith((HARNESS_CORE, "<"))]
    frame = (own or frames)[-1] if frames else None
    where = f" ({frame.filename}:{frame.lineno})" if frame is not None else ""
    return f"{type(exc).__name__}: {exc}{where}"


def hook_problems(plugin: object, implemented: list[str], hook_names: list[str]) -> list[str]:
    """Hooks a plugin meant to implement and does not: a misspelled name, or a hook without @hookimpl.

    pluggy accepts both silently (the first as a hook nobody calls, the second
    as a plain function), and the plugin then registers nothing.
    """
    problems = []
    for name in implemented:
        if name not in hook_names:
            close = difflib.get_close_matches(name, hook_names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"implements {name!r}, which is not a harness hook{hint}")
    for name in dir(plugin):
        if name in implemented or not callable(getattr(plugin, name, None)):
            continue
        close = difflib.get_close_matches(name, hook_names, n=1, cutoff=0.85)
        if close:
            problems.append(
                f"defines {name}() without @hookimpl, so it is never called; decorate it with "
                f"@hookimpl (from harness import hookimpl)"
                + (f" and name it {close[0]!r}" if close[0] != name else "")
            )
    return problems


class PluginHost:
    """The plugin manager plus the registries built from it."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.strict = env.get("HARNESS_STRICT_PLUGINS", "") not in ("", "0", "false")
        allow = env.get("HARNESS_LOAD_PLUGINS")
        self.allow: set[str] | None = None if allow is None else {a.strip() for a in allow.split(",") if a}
        self.pm = pluggy.PluginManager("harness")
        self.pm.add_hookspecs(hookspecs)
        self.hook_names = sorted(
            name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "harness_spec")
        )
        self.plugins: dict[str, PluginInfo] = {}
        self._registries: Registries | None = None
        for module_name in BUILTIN_PLUGINS:
            self._load(module_name, "built-in", functools.partial(importlib.import_module, module_name))
        self._load_entry_points()

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            dist_name = dist.name if dist is not None else "unknown"
            if self.allow is not None and ep.name not in self.allow and dist_name not in self.allow:
                continue
            version = dist.version if dist is not None else "?"
            self._load(ep.name, f"{dist_name} {version}", ep.load)

    def register(self, plugin: object, name: str, source: str = "registered at runtime") -> None:
        """Add a plugin object directly (a notebook, a test), isolated like any other plugin."""
        self._registries = None
        self._load(name, source, lambda: plugin)

    def _load(self, name: str, source: str, importer: Callable[[], Any]) -> None:
        info = self.plugins.setdefault(name, PluginInfo(name, source))
        try:
            plugin = importer()
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._fail(info, f"failed to load: {_short_error(exc)}", exc)
            return
        callers = self.pm.get_hookcallers(plugin) or []
        info.hooks = sorted(caller.name for caller in callers if caller.has_spec())
        for problem in hook_problems(plugin, [caller.name for caller in callers], self.hook_names):
            self._fail(info, problem, ContractError(f"plugin {name!r} {problem}"))

    def _fail(self, info: PluginInfo, message: str, exc: BaseException) -> None:
        info.errors.append(message)
        if self.strict:
            raise PluginLoadError(f"plugin {info.name!r} {message}") from exc
        warnings.warn(f"plugin {info.name!r} {message}; skipped", stacklevel=3)

    @property
    def registries(self) -> Registries:
        """Everything plugins registered, built on first use and isolated per plugin."""
        if self._registries is None:
            registries = Registries()
            for kind, hook_name in REGISTRATION_HOOKS.items():
                self._collect(hook_name, registries.of_kind(kind))
            self._registries = registries
        return self._registries

    def _collect(self, hook_name: str, registry: Registry[Any]) -> None:
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            staged: list[tuple[str, Any, str, dict[str, Any]]] = []

            def register(
                name: str, obj: Any, description: str = "", _staged: list = staged, **declared: Any
            ) -> None:
                unknown = set(declared) - {"options", "tasks"}
                if unknown:
                    raise TypeError(f"register() got unknown keyword(s) {', '.join(sorted(unknown))}")
                _staged.append((name, obj, description, declared))

            info = self.plugins[impl.plugin_name]
            try:
                impl.function(register)
            except Exception as exc:
                self._fail(info, f"failed in {hook_name}: {_short_error(exc)}", exc)
                continue
            for name, obj, description, declared in staged:
                problem = factory_problem(registry.kind, obj)
                if problem is not None:
                    error = ContractError(f"{registry.kind[:-1]} {name!r}: {problem}")
                    self._fail(info, f"broke the contract in {hook_name}: {error}", error)
                    continue
                registry.add(name, obj, impl.plugin_name, description, **declared)

    def add_commands(self, cli: Any) -> None:
        for impl in self.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli)
            except Exception as exc:
                self._fail(
                    self.plugins[impl.plugin_name], f"failed in register_commands: {_short_error(exc)}", exc
                )

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook; a failing logger plugin warns instead of ending a long run."""
        try:
            getattr(self.pm.hook, hook_name)(**kwargs)
        except Exception as exc:
            if self.strict:
                raise
            warnings.warn(f"a plugin's {hook_name} hook failed: {_short_error(exc)}", stacklevel=2)


_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host (plugins load once per process)."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host
