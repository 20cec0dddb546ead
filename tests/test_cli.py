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


def test_unknown_name_is_a_one_line_usage_error_with_suggestion():
    result = CliRunner().invoke(cli_module.cli, ["run", "--board", "defualt"])
    assert result.exit_code == 2
    assert "did you mean 'default'" in result.output and "Traceback" not in result.output


def test_user_board_file_parse_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('tasks = ["polarity"]\nmodels = ["vader"]\ncolour = "red"\n')
    result = CliRunner().invoke(cli_module.cli, ["run", "--board", str(bad)])
    assert result.exit_code == 2 and "unknown key(s) ['colour']" in result.output


# Exit codes, one-line errors, logs without a terminal -------------------------------------------------------
@pytest.fixture
def toy_cli(host, monkeypatch):
    """`harness run` on the toy task, source and word model (tests/fakes.py), in a run directory."""
    from harness import plugin_manager

    monkeypatch.setattr(plugin_manager, "_host", host)
    monkeypatch.delenv("HARNESS_DEBUG", raising=False)

    def invoke(out: Path, *extra: str):
        args = ["run", "--task", "toy", "--data", "toy:100", "--backend", "cpu", "--bootstrap", "10",
                "--out", str(out), *extra]  # fmt: skip
        if "--model" not in extra:
            args += ["--model", "words"]
        return CliRunner().invoke(cli_module.cli, args)

    return invoke


def rows(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "results.json").read_text())["rows"]


def test_exit_code_0_when_every_row_succeeds(toy_cli, tmp_path):
    result = toy_cli(tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in rows(tmp_path / "run")] == ["ok"]


def test_exit_code_1_when_the_run_finishes_but_a_row_failed(toy_cli, tmp_path):
    result = toy_cli(tmp_path / "run", "--model-option", "fail_on=great")
    assert result.exit_code == 1
    assert "1 row(s) failed" in result.stderr and "Traceback" not in result.output
    assert [r["status"] for r in rows(tmp_path / "run")] == ["error"]


def test_exit_code_2_for_a_usage_error_and_nothing_runs(toy_cli, tmp_path):
    result = toy_cli(tmp_path / "run", "--model", "wrods")
    assert result.exit_code == 2
    assert "unknown model 'wrods'; did you mean 'words'?" in result.stderr
    assert not (tmp_path / "run").exists()


def test_ctrl_c_exits_130_and_the_same_command_resumes(toy_cli, host, toy_plugin, tmp_path):
    run_dir = tmp_path / "run"
    result = toy_cli(run_dir, "--model-option", "batch_size=4", "--model-option", "interrupt_on=review 89 is")
    assert result.exit_code == 130
    assert "interrupted; run the same command again to resume" in result.stderr
    assert "Traceback" not in result.output and not (run_dir / "results.json").exists()
    scored_before = toy_plugin.models[-1].predicted
    assert scored_before > 0
    resumed = toy_cli(run_dir, "--model-option", "batch_size=4")
    assert resumed.exit_code == 0, resumed.output
    [row] = rows(run_dir)
    assert row["cached"] > 0 and row["cached"] + row["computed"] == row["n"]


def test_a_full_disk_is_one_line_naming_the_directory_and_the_rerun_resumes(toy_cli, tmp_path, monkeypatch):
    import errno

    from harness import runner

    def full_disk(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device")

    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(runner, "write_json", full_disk)
        result = toy_cli(run_dir)
    assert result.exit_code == 1
    [line] = [x for x in result.stderr.splitlines() if x.startswith("Error:")]
    assert f"no space left on the device in {run_dir}" in line and "resumes" in line
    assert "Traceback" not in result.output
    resumed = toy_cli(run_dir)
    assert resumed.exit_code == 0, resumed.output
    [row] = rows(run_dir)
    assert row["computed"] == 0 and row["cached"] == row["n"] > 0


def test_traceback_only_when_debugging(toy_cli, tmp_path, monkeypatch):
    assert "Traceback" not in toy_cli(tmp_path / "a", "--model", "wrods").output
    monkeypatch.setenv("HARNESS_DEBUG", "1")
    debugged = toy_cli(tmp_path / "b", "--model", "wrods")
    assert debugged.exit_code == 2 and "Traceback" in debugged.stderr
    flagged = CliRunner().invoke(cli_module.cli, ["--debug", "run", "--board", "defualt"])
    assert flagged.exit_code == 2 and "Traceback" in flagged.stderr


def test_exit_codes_are_in_the_help():
    for args in ([], ["run"]):
        result = CliRunner().invoke(cli_module.cli, [*args, "--help"])
        assert "Exit codes:" in result.output and "130" in result.output


def test_without_a_terminal_progress_is_logged_in_plain_lines(toy_cli, tmp_path, monkeypatch):
    from harness import progress

    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)  # a line for every batch instead of every few seconds
    result = toy_cli(tmp_path / "run", "--model-option", "batch_size=8")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    fit = [line for line in lines if "fitting on" in line]
    assert len(fit) == 2 and fit[0].endswith("started") and ": done, " in fit[1]
    n = rows(tmp_path / "run")[0]["n"]
    advancing = [line for line in lines if "toy · words: " in line and "reviews/s" in line]
    assert len(advancing) >= 2 and advancing[-1].split(": ", 1)[1].startswith(f"done, {n} reviews")
    assert all(line.startswith("[") and "\x1b" not in line for line in lines)


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


def test_a_plugin_failing_in_strict_mode_is_one_line_with_exit_code_2(tmp_path):
    from harness.plugin_manager import ENTRY_POINT_GROUP

    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('cannot import me')\n")
    info = tmp_path / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nbroken = broken_plugin\n")
    env = {"PYTHONPATH": str(tmp_path), "HARNESS_STRICT_PLUGINS": "1", "HARNESS_DEBUG": ""}
    out = run_cli("list", "models", env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("Error: plugin 'broken'") and "cannot import me" in line
    debugged = run_cli("list", "models", env={**env, "HARNESS_DEBUG": "1"})
    assert debugged.returncode == 2 and "Traceback" in debugged.stderr


def test_a_full_disk_under_the_cache_ends_the_run_instead_of_failing_each_row(toy_cli, tmp_path, monkeypatch):
    import sqlite3

    from harness.cache import PredictionCache

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(PredictionCache, "put_many", full)
    cache = tmp_path / "shared" / "cache.sqlite"
    result = toy_cli(tmp_path / "run", "--model", "words", "--model", "words:b", "--cache", str(cache))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"Error: no space left on the device in {cache.parent};" in result.stderr
    assert not (tmp_path / "run" / "results.json").exists()  # no row was written off as a model error


def test_a_board_says_what_it_leaves_out_and_the_flag_that_adds_it(toy_cli, tmp_path):
    board = tmp_path / "quick.toml"
    board.write_text(
        'tasks = ["toy"]\ndata = "toy:60"\nbackend = "cpu"\nbootstrap = 10\n'
        'leaves_out = "more seeds; --seeds 0,1,2 adds them"\n[[models]]\nspec = "words"\n'
    )
    result = CliRunner().invoke(cli_module.cli, ["run", "--board", str(board), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "left out to finish quickly: more seeds; --seeds 0,1,2 adds them" in result.output
    seeded = ["run", "--board", str(board), "--seeds", "0,1", "--out", str(tmp_path / "b")]
    assert "left out" not in CliRunner().invoke(cli_module.cli, seeded).output


def test_the_default_board_runs_one_seed_and_names_the_flag_for_three():
    from harness.board_flags import resolve_board

    board = resolve_board("default")
    assert board.seeds == [] and "--seeds 0,1,2" in board.leaves_out


def test_board_options_declare_the_flags_board_from_options_reads():
    import click

    from harness import Board, ModelEntry, board_from_options, board_options

    built: list[Board] = []

    @click.command()
    @board_options("data", "model_opts", "text_col", data="Reviews to score.")
    def score(**opts):
        base = Board(name="mine", tasks=["polarity"], models=[ModelEntry("vader")], limit=7)
        built.append(board_from_options(opts, base))

    args = ["--data", "r.csv", "--model-option", "epochs=1", "--text-col", "body"]
    assert CliRunner().invoke(score, args).exit_code == 0
    [board] = built
    assert (board.data, board.model_options, board.source_options) == (
        "r.csv",
        {"epochs": "1"},
        {"text_col": "body"},
    )
    assert board.limit == 7 and board.name == "mine" and board.seeds == []
    shown = CliRunner().invoke(score, ["--help"]).output
    assert "Reviews to score." in shown and "--limit" not in shown
    with pytest.raises(ValueError, match="no flag limit"):
        board_options("data", limit="Reviews.")
    with pytest.raises(ValueError, match="no flag colour"):
        board_options("colour")
