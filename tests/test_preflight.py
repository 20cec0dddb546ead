"""The preflight: a bad board is refused before any model runs, with every problem at once; the dry-run plan."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import cli as cli_module
from harness import plugin_manager
from harness.boards import Board, ModelEntry
from harness.checkpoint_probe import parameter_count
from harness.preflight_checks import preflight


@pytest.fixture
def cli(host, monkeypatch):
    monkeypatch.setattr(plugin_manager, "_host", host)

    def invoke(*args: str):
        return CliRunner().invoke(cli_module.cli, ["run", "--backend", "cpu", "--bootstrap", "10", *args])

    return invoke


def problems(output: str) -> list[str]:
    return [line.strip()[2:] for line in output.splitlines() if line.strip().startswith("- ")]


def test_a_bad_board_is_refused_before_any_model_runs_with_every_problem(cli, toy_plugin, tmp_path):
    board = tmp_path / "bad.toml"
    board.write_text(
        'tasks = ["toy", "polarty"]\ndata = "toy:60"\nbackend = "cpu"\n'
        'models = ["words", "wrods", "hybrid:words>words@confidense:0.5", "hybrid:words"]\n'
    )
    out = tmp_path / "run"
    result = cli("--board", str(board), "--out", str(out))
    assert result.exit_code == 2 and "Traceback" not in result.output
    found = problems(result.stderr)
    assert len(found) == 4, result.stderr
    assert "task 'polarty'" in found[0] and "did you mean 'polarity'" in found[0]
    assert "unknown model 'wrods'" in found[1]
    assert "unknown router 'confidense'" in found[2] and "did you mean 'confidence'" in found[2]
    assert "must look like SMALL>LARGE@ROUTER" in found[3]
    assert all(model.predicted == 0 for model in toy_plugin.models)  # built to check, never run
    assert not out.exists()


def reviews_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_a_missing_column_is_found_in_the_first_rows(cli, tmp_path):
    data = reviews_csv(tmp_path / "r.csv", "review_body,rating_given", ["good,5", "bad,1", "ok,4"] * 20)
    result = cli("--task", "polarity", "--model", "vader", "--data", str(data), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    [problem] = problems(result.stderr)
    assert "task 'polarity' keeps none of the first 60 reviews" in problem and "no_stars 60" in problem
    fixed = cli("--task", "polarity", "--model", "vader", "--data", str(data), "--stars-col", "rating_given",
                "--out", str(tmp_path / "o"))  # fmt: skip
    assert fixed.exit_code == 0, fixed.output


def test_unreadable_data_and_a_model_that_cannot_do_the_task(cli, tmp_path):
    result = cli("--task", "category", "--model", "vader", "--data", str(tmp_path / "nothing.xyz"),
                 "--out", str(tmp_path / "o"))  # fmt: skip
    assert result.exit_code == 2
    found = problems(result.stderr)
    assert [p for p in found if "vader" in p] == [
        p for p in found if "supports the polarity task(s) only" in p
    ]
    assert len([p for p in found if "vader" in p]) == 1  # said once, not again in the model's own words
    assert any("nothing.xyz' does not exist" in p for p in found)


def test_hub_models_not_downloaded_are_refused_offline_without_retries(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ("--task", "toy", "--data", "toy:20", "--out", str(tmp_path / "o"))
    result = cli(*args, "--model", "seq2seq:someone/not-downloaded")
    assert result.exit_code == 2
    [problem] = problems(result.stderr)
    assert "someone/not-downloaded is not in the hub cache" in problem and "HF_HUB_OFFLINE is set" in problem
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: one refused probe
    result = cli(*args, "--model", "seq2seq:someone/not-downloaded")
    [problem] = problems(result.stderr)
    assert "http://127.0.0.1:9 cannot be reached" in problem
    snapshot = tmp_path / "hub" / "models--someone--downloaded" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    write_safetensors(snapshot / "model.safetensors", {"w": [10, 10]})
    plan = preflight(plugin_manager._host, toy_board("seq2seq:someone/downloaded"), tmp_path / "o")
    assert not plan.problems and plan.models[0].parameters == 100


def toy_board(*specs: str) -> Board:
    return Board(name="b", tasks=["toy"], data="toy:20", backend="cpu", models=[ModelEntry(s) for s in specs])


def write_safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    """A safetensors header declaring these tensors; the data itself is never read by the preflight."""
    header = {
        name: {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]} for name, shape in shapes.items()
    }
    raw = json.dumps({"__metadata__": {}, **header}).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def test_memory_beyond_the_device_is_a_problem(host, tmp_path):
    checkpoint = tmp_path / "huge"
    checkpoint.mkdir()
    write_safetensors(checkpoint / "model.safetensors", {"embed": [10**6, 10**6]})
    plan = preflight(host, toy_board(f"seq2seq:{checkpoint}"), tmp_path / "o")
    [problem] = plan.problems
    assert plan.models[0].parameters == 10**12 and "more than the" in problem and "cpu device" in problem


def test_parameters_are_counted_from_a_gguf_header(tmp_path):
    gguf = pytest.importorskip("gguf")
    import numpy as np

    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    writer.add_block_count(1)
    writer.add_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"])
    writer.add_tensor("a", np.zeros((3, 4), dtype=np.float32))
    writer.add_tensor("b", np.zeros(5, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert parameter_count(tmp_path / "m.gguf") == 17


def test_a_run_directory_under_a_file_is_refused(host, tmp_path):
    (tmp_path / "file").write_text("")
    plan = preflight(host, toy_board("words"), tmp_path / "file" / "run")
    assert any("is a file" in p for p in plan.problems)


def test_dry_run_counts_what_the_run_then_scores_and_writes_nothing(cli, tmp_path):
    out = tmp_path / "run"
    dry = cli("--task", "toy", "--model", "words", "--data", "toy:60", "--out", str(out), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert not out.exists()
    line = next(x for x in dry.stdout.splitlines() if x.startswith("task toy:"))
    assert "models (1 rows of tasks x models)" in dry.stdout and "no problems found" in dry.stdout
    assert cli("--task", "toy", "--model", "words", "--data", "toy:60", "--out", str(out)).exit_code == 0
    [row] = json.loads((out / "results.json").read_text())["rows"]
    assert f"train {row['counts']['train']}, scored {row['n']}" in line


def test_dry_run_of_the_default_board_never_loads_torch(tmp_path):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from harness.cli import cli\n"
        f"result = CliRunner().invoke(cli, ['run', '--dry-run', '--out', {str(tmp_path / 'run')!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(result.stdout)\n"
        "print('heavy:', sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "heavy: []" in out.stdout
    assert "task polarity: read" in out.stdout and "task category: read" in out.stdout
    assert "SmolLM2-135M (label scoring): polarity, category;" in out.stdout
    assert "seeds" not in out.stdout  # one seed: --seeds 0,1,2 is the flag its output names
    assert not (tmp_path / "run").exists()


def test_a_board_built_from_flags_runs_one_seed_unless_asked(tmp_path):
    def plan_of(*flags: str) -> str:
        result = CliRunner().invoke(
            cli_module.cli, ["run", "--dry-run", "--out", str(tmp_path / "r"), *flags]
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "seeds" not in plan_of()
    assert "seeds 0, 1, 2: varying demos, calibration; split, finetune held at seed 0" in plan_of(
        "--seeds", "0,1,2"
    )
    assert "seeds" not in plan_of("--model", "vader", "--task", "polarity")
    assert "seeds" not in plan_of("--seed", "3")
    assert "seeds 3, 4: varying split, finetune, demos, calibration" in plan_of(
        "--model", "vader", "--task", "polarity", "--repeats", "2", "--seed", "3"
    )


def test_everything_downloaded_and_the_hub_silent_runs_offline(host, tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--someone--downloaded" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    write_safetensors(snapshot / "model.safetensors", {"w": [4, 4]})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "")  # unset for the run, and restored after the test
    plan = preflight(host, toy_board("seq2seq:someone/downloaded"), tmp_path / "o")
    assert not plan.problems and any("HF_HUB_OFFLINE=1" in note for note in plan.notes)
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"  # no model asks the silent hub again, file after file


def test_a_factory_that_fails_unexpectedly_is_a_problem_not_a_crash(host, tmp_path):
    from harness.hookspecs import hookimpl

    class Broken:
        @hookimpl
        def register_models(self, register):
            register("broken", lambda arg, ctx: {}["missing"], description="fails in its factory")

    host.register(Broken(), "broken-plugin")
    plan = preflight(host, toy_board("broken", "words"), tmp_path / "o")
    assert plan.problems == ["model 'broken': KeyError: 'missing'"]
