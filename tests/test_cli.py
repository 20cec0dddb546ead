"""The command line: light start-up, listings, ad-hoc runs, boards, and a real installed plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import cli as cli_module

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness"]


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*HARNESS, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300
    )


def test_help_and_plugins_do_not_import_torch_or_transformers():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from harness.cli import cli\n"
        "from harness.plugin_manager import get_host\n"
        "get_host().add_commands(cli)\n"
        "for args in (['--help'], ['plugins'], ['plugins', '--json'], ['list', 'models'], ['run', '--help']):\n"
        "    result = CliRunner().invoke(cli, args)\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sklearn', 'datasets') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("command", ["run", "leaderboard", "plugins", "list", "boards"])
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli_module.cli, [command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_plugins_lists_builtins_with_hooks_and_registrations():
    result = CliRunner().invoke(cli_module.cli, ["plugins", "--json"])
    plugins = {p["name"]: p for p in json.loads(result.output)}
    routers = plugins["harness.plugins.routing.routers"]
    assert routers["source"] == "built-in" and routers["hooks"] == ["register_routers"]
    assert "router:confidence" in routers["registered"]
    registered = {r for p in plugins.values() for r in p["registered"]}
    for name in (
        "model:minilm",
        "model:smollm2",
        "model:hybrid",
        "backend:cpu",
        "exporter:md",
        "board:default",
    ):
        assert name in registered


def test_plugins_hook_filter():
    result = CliRunner().invoke(cli_module.cli, ["plugins", "--hook", "register_routers", "--json"])
    assert [p["name"] for p in json.loads(result.output)] == ["harness.plugins.routing.routers"]


@pytest.mark.parametrize("kind,name", [("models", "minilm"), ("routers", "margin"), ("backends", "auto"),
                                       ("exporters", "csv"), ("boards", "seed")])  # fmt: skip
def test_list(kind, name):
    result = CliRunner().invoke(cli_module.cli, ["list", kind])
    assert result.exit_code == 0 and any(line.startswith(name + " ") for line in result.output.splitlines())


def test_unknown_name_is_a_one_line_error_with_suggestion():
    result = CliRunner().invoke(cli_module.cli, ["run", "--board", "defualt"])
    assert result.exit_code == 1
    assert "did you mean 'default'" in result.output and "Traceback" not in result.output


def test_user_board_file_parse_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('tasks = ["polarity"]\nmodels = ["vader"]\ncolour = "red"\n')
    result = CliRunner().invoke(cli_module.cli, ["run", "--board", str(bad)])
    assert result.exit_code == 1 and "unknown key(s) ['colour']" in result.output


@pytest.fixture(scope="module")
def installed_example_plugin(tmp_path_factory) -> Path:
    """pip-installs tests/example_plugin into a target directory: real entry-point metadata."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT / "tests" / "example_plugin")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return target


def test_installed_third_party_plugin_is_listed(installed_example_plugin):
    out = run_cli("plugins", "--json", env={"PYTHONPATH": str(installed_example_plugin)})
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert plugins["keywords"]["source"] == "harness-keywords 0.1.0"
    assert plugins["keywords"]["registered"] == ["model:keywords"]


def test_installed_third_party_plugin_runs_and_renders(installed_example_plugin, tmp_path):
    env = {"PYTHONPATH": str(installed_example_plugin)}
    out = run_cli("run", "--task", "polarity", "--model", "keywords", "--model", "vader", "--limit", "30",
                  "--out", str(tmp_path / "run"), "--bootstrap", "20", env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    rows = {r["model"]: r for r in results["rows"]}
    assert rows["keywords"]["status"] == "ok" and rows["keywords"]["n"] == 30
    assert "macro_f1" in rows["keywords"]["metrics"]
    assert "keywords" in out.stdout  # the printed table
    md = run_cli("leaderboard", str(tmp_path / "run"), "--format", "md", env=env)
    assert md.stdout.startswith("| task | model |") and "| polarity | keywords |" in md.stdout
    blocked = run_cli("plugins", "--json", env={**env, "HARNESS_LOAD_PLUGINS": ""})
    assert "keywords" not in {p["name"] for p in json.loads(blocked.stdout)}


def test_model_libraries_are_quieted_without_overriding_the_user(monkeypatch):
    from harness.command_helpers import quiet_model_libraries

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    quiet_model_libraries()
    assert os.environ["TQDM_DISABLE"] == "1"  # the GGUF loader's own bar would break our table
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "info"
