"""The documentation stays true to the code: its commands parse, its imports import, its tables render.

Every `harness ...` line of a console block in README.md and docs/ is parsed by the real click commands
(without running them), so a renamed flag or subcommand fails here. A block whose fence is preceded by
the line `<!-- illustrative -->` is skipped.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import click
import pytest

import harness
from harness.cli import cli
from harness.plugin_manager import PluginHost

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.rglob("*.md"))]
ILLUSTRATIVE = "<!-- illustrative -->"
FENCE = re.compile(r"^(?P<fence>`{3,})(?P<info>.*)$")
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def console_blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, lines) of each top-level console block that is not marked illustrative."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, start = match["fence"], i
        end = next(j for j in range(i + 1, len(lines)) if lines[j].rstrip() == fence)
        marked = start > 0 and lines[start - 1].strip() == ILLUSTRATIVE
        if match["info"].strip().split(" ")[0] == "console" and not marked:
            yield start + 2, lines[start + 1 : end]
        i = end + 1


def command_lines(block: list[str]) -> Iterator[tuple[int, str]]:
    """Each command of a block, continuation lines joined; with `$ ` prompts, only the prompted lines."""
    prompted = any(line.startswith("$ ") for line in block)
    pending, first = "", 0
    for offset, line in enumerate(block):
        if prompted and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if not pending:
            first = offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield first, pending + line
        pending = ""


def harness_argv(command: str) -> list[str] | None:
    """The arguments after `harness` (None for another program), without env assignments or `nice`.

    A command recorded by tools/record_timing.py (`python tools/record_timing.py ... -- harness ...`) is
    the harness command after its `--`.
    """
    words = shlex.split(command, comments=True)
    if "record_timing.py" in " ".join(words[:2]) and "--" in words:
        words = words[words.index("--") + 1 :]
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    if words[:1] == ["nice"]:
        words = words[3:] if words[1:2] == ["-n"] else words[1:]
    if not words or Path(words[0]).name != "harness":
        return None
    return words[1:]


def documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for start, block in console_blocks(page.read_text()):
            for offset, command in command_lines(block):
                argv = harness_argv(command)
                if argv is not None:
                    found.append((f"{page.relative_to(ROOT)}:{start + offset}", argv))
    return found


@pytest.fixture(scope="module")
def full_cli() -> click.Group:
    """The `harness` group with the built-in plugins' commands, as `harness` itself builds it (a copy)."""
    group = copy.copy(cli)
    group.commands = dict(cli.commands)
    PluginHost(env={"HARNESS_LOAD_PLUGINS": ""}).add_commands(group)
    return group


def parse(group: click.Group, argv: list[str]) -> None:
    """Parse argv as the CLI would, subcommand by subcommand, running nothing."""
    ctx = group.make_context("harness", list(argv), resilient_parsing=False)
    command: click.Command = group
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        name, sub, remaining = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, remaining, parent=ctx, resilient_parsing=False)
        command = sub


def every_command(group: click.Group) -> Iterator[click.Command]:
    for command in group.commands.values():
        yield command
        if isinstance(command, click.Group):
            yield from every_command(command)


COMMANDS = documented_commands()


def test_the_docs_show_harness_commands_to_parse():
    pages = {where.split(":")[0] for where, _ in COMMANDS}
    assert len(COMMANDS) > 40 and "README.md" in pages and "docs/plugins/tutorial.md" in pages


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_every_documented_harness_command_parses(where, argv, full_cli, monkeypatch):
    # Paths the examples name (runs/a, reviews.tsv) need not exist here: only the flags are checked.
    for command in every_command(full_cli):
        for param in command.params:
            if isinstance(param.type, click.Path) and param.type.exists:
                monkeypatch.setattr(param.type, "exists", False)
    try:
        parse(full_cli, argv)
    except click.exceptions.Exit:
        pass  # --help and --version end parsing on purpose
    except click.UsageError as exc:
        pytest.fail(f"{where}: harness {shlex.join(argv)}\n{exc.format_message()}")


def test_a_renamed_flag_fails_to_parse(full_cli):
    with pytest.raises(click.UsageError, match="No such option"):
        parse(full_cli, ["run", "--task", "polarity", "--modle", "minilm"])
    with pytest.raises(click.UsageError, match="No such command"):
        parse(full_cli, ["sweeep", "minilm", "smollm2"])


def test_an_illustrative_block_is_skipped():
    text = "```console\nharness a\n```\n\n<!-- illustrative -->\n```console\nharness b\n```\n"
    assert [block for _, block in console_blocks(text)] == [["harness a"]]


IMPORT = re.compile(r"^from (harness[\w.]*) import (\([^)]*\)|[\w, ]+)$", re.M)


def split_names(imported: str) -> list[str]:
    return [name.strip() for name in imported.strip("()").split(",") if name.strip()]


def plugin_guide_names() -> set[str]:
    """Every name the plugin guide imports or spells as `harness.NAME...` (dotted, in backticks)."""
    text = "\n".join(p.read_text() for p in sorted((DOCS / "plugins").glob("*.md")))
    names = set()
    for module, imported in IMPORT.findall(text):
        names |= {f"{module}.{name}" for name in split_names(imported)}
    names |= set(re.findall(r"`(harness(?:\.[A-Za-z]\w*)+)", text))
    return names


def resolve(dotted: str) -> object:
    """The object a dotted name gives, importing modules along the way."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_name_the_plugin_guide_uses_is_importable():
    names = plugin_guide_names()
    assert {
        "harness.hookimpl",
        "harness.Option",
        "harness.predictions",
        "harness.testing.check_model_plugin",
    } <= (names)
    missing = []
    for name in sorted(names):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"the plugin guide names what harness does not have: {missing}"


def test_names_the_plugin_guide_imports_from_harness_are_exported():
    text = "\n".join(p.read_text() for p in sorted((DOCS / "plugins").glob("*.md")))
    direct = {
        name
        for module, imported in IMPORT.findall(text)
        if module == "harness"
        for name in split_names(imported)
    }
    direct |= set(re.findall(r"`harness\.([A-Za-z]\w*)", text)) - {"testing", "metrics", "plugins"}
    assert direct and direct <= set(harness.__all__), sorted(direct - set(harness.__all__))


def test_the_api_reference_documents_exactly_harness_all():
    page = (DOCS / "reference" / "api.md").read_text()
    listed = re.findall(r"^        - (\w+)$", page, re.M)
    assert listed == list(harness.__all__)


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


# -- figures from records -----------------------------------------------------------------------------

HOOKS = ROOT / "tools" / "mkdocs_hooks.py"
RECORDER = ROOT / "tools" / "record_timing.py"


def test_a_timing_record_renders_with_its_command_and_machine(tmp_path):
    done = subprocess.run(
        [sys.executable, str(RECORDER), "--results", str(tmp_path), "--", sys.executable, "-c", "pass"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "timings.json").read_text())["records"][0]
    assert record["exit_code"] == 0 and record["machine"]["cores"] >= 1
    table = load(HOOKS).render_file(tmp_path / "timings.json")
    assert f"`{record['command']}`" in table and record["machine"]["cpu"] in table
    assert record["date"][:10] in table


def test_a_failing_command_records_nothing_and_passes_its_exit_code_on(tmp_path):
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    done = subprocess.run(
        [sys.executable, str(RECORDER), "--results", str(tmp_path), "--", *failing], check=False
    )
    assert done.returncode == 3 and not (tmp_path / "timings.json").exists()


def test_a_kept_result_file_renders_as_a_table_with_its_provenance(tmp_path):
    results = tmp_path / "results.json"
    script = (
        "import json, sys; json.dump({'rows': [{'task': 'polarity', 'model': 'vader', 'label': 'VADER', "
        "'status': 'ok', 'n': 10, 'metrics': {'macro_f1': 0.5}, 'intervals': {'macro_f1': [0.4, 0.6]}}]}, "
        f"open({str(results)!r}, 'w'))"
    )
    done = subprocess.run(
        [sys.executable, str(RECORDER), "--results", str(tmp_path), "--keep", str(results), "--as", "board",
         "--", sys.executable, "-c", script],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "timings.json").read_text())["records"][0]["exit_code"] == 0
    table = load(HOOKS).render_file(tmp_path / "board.json")
    assert "Measured by `" in table and "| VADER | ok | 10 | 0.500 ± 0.100 |" in table


def test_a_missing_record_is_a_note_and_an_unknown_one_fails_the_build(tmp_path, monkeypatch):
    hooks = load(HOOKS)
    monkeypatch.setattr(hooks, "RESULTS", tmp_path)
    assert "Not measured yet" in hooks.render_file(tmp_path / "bench.json")
    (tmp_path / "odd.json").write_text('{"something": 1}')
    with pytest.raises(ValueError, match="odd.json"):
        hooks.render_file(tmp_path / "odd.json")
    page = "intro\n<!-- results: bench.json -->\nafter\n"
    rendered = hooks.on_page_markdown(page)
    assert rendered.startswith("intro\n!!! note") and "docs/results/bench.json" in rendered
    assert rendered.endswith("\nafter\n")


def test_a_bench_record_renders_its_checks(tmp_path):
    check = {
        "part": "small",
        "figure": "speed-up vs the study",
        "value": 6.5,
        "target": ">= 5",
        "passed": True,
    }
    record = {
        "command": "harness bench --only small",
        "exit_code": 0,
        "wall_s": 75.0,
        "date": "2026-01-02T03:04:05+00:00",
        "load_average": {"before": [0.5, 0.4, 0.3], "after": [1.5, 0.9, 0.5]},
        "machine": {"cpu": "Some CPU", "cores": 4, "memory_gib": 16.0},
        "git_commit": "0123456789abcdef",
        "result": {"checks": [check]},
    }
    (tmp_path / "bench.json").write_text(json.dumps(record))
    rendered = load(HOOKS).render_file(tmp_path / "bench.json")
    assert rendered.startswith(
        "Measured by `harness bench --only small` on Some CPU (4 cores, 16.0 GiB), 2026-01-02"
    )
    assert "1 min 15 s" in rendered and "| small | speed-up vs the study | 6.5 | >= 5 | met |" in rendered


PARITY = ROOT / "tools" / "served_parity.py"


def test_a_served_parity_record_renders_both_rows_and_how_alike_they_answer(tmp_path, full_cli):
    parity = load(PARITY)
    served_extra = {"scoring_mode": ["logprobs"], "shots": 4, "calibration": "train (100 reviews)",
                    "request_latency_p50_s": 0.1, "request_latency_p95_s": 0.3,
                    "review_seconds_p50": 0.2, "review_seconds_p95": 0.6}  # fmt: skip
    rows = [
        {"model": "smollm2", "label": "SmolLM2", "status": "ok", "n": 2, "metrics": {"macro_f1": 0.5},
         "latency": {"p50_s": 0.2, "p95_s": 0.4}, "extra": {"engine": "transformers"}},
        {"model": "openai:smollm2", "status": "ok", "n": 2, "metrics": {"macro_f1": 1.0}, "extra": served_extra},
    ]  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps({"rows": rows}))
    answers = [("smollm2", "a", "positive", [0.2, 0.8]), ("smollm2", "b", "negative", [0.6, 0.4]),
               ("openai:smollm2", "a", "positive", [0.25, 0.75]), ("openai:smollm2", "b", "positive", [0.45, 0.55])]  # fmt: skip
    (tmp_path / "predictions.jsonl").write_text(
        "".join(
            json.dumps({"model": m, "id": i, "pred": p, "probs": probs}) + "\n" for m, i, p, probs in answers
        )
    )
    result = parity.summary(tmp_path)
    assert result["reviews"] == 2 and result["agreement"] == {"same": 1, "share": 0.5}
    assert result["probability_difference"] == {"p95": 0.05, "largest": 0.15}
    command = parity.harness_command("reviews.jsonl", 2, tmp_path / "run", "http://127.0.0.1:8000/v1")
    parse(full_cli, command[1:])
    record = {
        "command": "python tools/served_parity.py --data reviews.jsonl",
        "harness_command": shlex.join(command),
        "server": {"program": "vLLM (CPU build)", "version": "0.1", "served_name": "smollm2"},
        "wall_s": 75.0,
        "date": "2026-01-02T03:04:05+00:00",
        "load_average": {"before": [0.5, 0.4, 0.3], "after": [1.5, 0.9, 0.5]},
        "machine": {"cpu": "Some CPU", "cores": 4},
        "result": result,
    }
    (tmp_path / "served-parity.json").write_text(json.dumps(record))
    rendered = load(HOOKS).render_file(tmp_path / "served-parity.json")
    assert rendered.startswith("Measured by `python tools/served_parity.py --data reviews.jsonl` on Some CPU")
    assert "| SmolLM2 | in-process | 4 | train | 2 | 0.500 |  | 0.2 s / 0.4 s |" in rendered
    assert (
        "| openai:smollm2 | logprobs | 4 | train (100 reviews) | 2 | 1.000 | 0.1 s / 0.3 s | 0.2 s / 0.6 s |"
        in rendered
    )
    assert "alike on 1 of 2 reviews (50.0%)" in rendered and "vLLM (CPU build) 0.1" in rendered


def test_the_readme_links_to_pages_that_exist():
    links = re.findall(r"\]\(([^)#]+\.md)(?:#[\w-]+)?\)", (ROOT / "README.md").read_text())
    assert links and not [link for link in links if not (ROOT / link).is_file()]
