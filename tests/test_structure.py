"""The code's shape: the core's modules import one another without a cycle, every function reads in one
screen, and `import harness` leaves the runner for the plugins that run boards."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "harness"
SOURCE_FOLDERS = ("harness", "plugins", "tasks", "leaderboard")
MAX_FUNCTION_LINES = 80


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The modules of `modules` (the core's, by short name; `__init__` for the package) that `path` imports.

    Every import counts: at the top, inside a function or under `TYPE_CHECKING`,
    since each is a dependency that a change to either module has to respect,
    and a lazy import only hides a cycle until the two modules are reorganised.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != PACKAGE else [f"{PACKAGE}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != PACKAGE:
                continue
            if len(parts) == 1 or parts[1] in modules:
                found.add(parts[1] if len(parts) > 1 else "__init__")
            elif name.count(".") == 1 and isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
                found.add("__init__")  # `from harness import Option` reads the package's own names
    return found


def import_graph(folder: Path) -> dict[str, set[str]]:
    """Each module of a flat package folder, by short name, with the sibling modules it imports."""
    paths = {path.stem: path for path in folder.glob("*.py")}
    modules = set(paths)
    return {name: imported_modules(path, modules) - {name} for name, path in paths.items()}


def import_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import one another in a circle (strongly connected, more than one)."""
    order: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = lowest[module] = len(order)
        stack.append(module)
        for imported in sorted(graph.get(module, ())):
            if imported not in order:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in stack:
                lowest[module] = min(lowest[module], order[imported])
        if lowest[module] == order[module]:
            group = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return cycles


def long_functions(folder: Path, limit: int) -> Iterator[str]:
    """Every function or method under `folder` longer than `limit` lines, from `def` to its last line."""
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    yield f"{path.relative_to(folder.parent)}:{node.lineno} {node.name} ({length} lines)"


def test_the_core_modules_import_one_another_without_a_cycle():
    cycles = import_cycles(import_graph(ROOT / PACKAGE))
    assert not cycles, "import cycles among harness/*.py: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_a_cycle_is_found_through_a_function_level_or_type_checking_import(tmp_path):
    (tmp_path / "__init__.py").write_text("from harness.first import A\n")
    (tmp_path / "first.py").write_text("from harness.second import B\nA = 1\n")
    (tmp_path / "second.py").write_text("def b():\n    from harness.third import C\n")
    (tmp_path / "third.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import harness.first\n"
    )
    (tmp_path / "leaf.py").write_text("from harness import A\n")
    graph = import_graph(tmp_path)
    assert import_cycles(graph) == [["first", "second", "third"]]
    assert graph["leaf"] == {"__init__"} and graph["__init__"] == {"first"}


def test_a_function_over_the_limit_is_named_with_its_place(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}")
    found = [line.split(" ", 1)[1] for line in long_functions(tmp_path, MAX_FUNCTION_LINES)]
    assert found == [f"long ({MAX_FUNCTION_LINES + 1} lines)"]


def test_no_function_is_longer_than_80_lines():
    found = [line for folder in SOURCE_FOLDERS for line in long_functions(ROOT / folder, MAX_FUNCTION_LINES)]
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(found)


def test_importing_harness_loads_the_runner_only_when_a_running_name_is_used():
    probe = (
        "import sys, harness\n"
        "before = [m for m in ('harness.runner', 'harness.preflight_checks', 'numpy') if m in sys.modules]\n"
        "harness.run_board, harness.preflight\n"
        "print(before, 'harness.runner' in sys.modules, 'harness.preflight_checks' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[]", "True", "True"]


def test_every_exported_name_keeps_its_meaning_after_its_module_is_imported():
    """A submodule named like an exported function would replace it on the package once imported."""
    probe = (
        "import importlib, pkgutil, harness\n"
        "for module in pkgutil.iter_modules(harness.__path__):\n"
        "    if module.name == '__main__': continue\n"
        "    importlib.import_module(f'harness.{module.name}')\n"
        "import types\n"
        "print([n for n in harness.__all__ if isinstance(getattr(harness, n), types.ModuleType)])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[]"]
