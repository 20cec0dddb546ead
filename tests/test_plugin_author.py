"""A new plugin, made and used only as docs/plugins/tutorial.md says: scaffold, install, list, test, run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.scaffold import plugin_files

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugins" / "tutorial.md"


def harness_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=600,
    )


def guide_files() -> dict[str, str]:
    """The guide's code blocks that name a file (```python title="harness_keywords.py"), by file name."""
    blocks = re.findall(r'^(`{3,})\w+ title="([\w./-]+)"\n(.*?)^\1$', GUIDE.read_text(), flags=re.S | re.M)
    return {name: content for _, name, content in blocks}


def test_the_guide_shows_exactly_the_files_the_scaffold_writes():
    files = plugin_files("keywords")
    assert guide_files() == files


def test_the_example_package_is_the_scaffold_output():
    for relative, content in plugin_files("keywords").items():
        assert (ROOT / "tests" / "example_plugin" / relative).read_text() == content, relative


def test_a_bad_plugin_name_or_an_existing_folder_is_one_clear_line(tmp_path):
    bad = harness_cli("new-plugin", "Bad Name", "--dir", str(tmp_path))
    assert bad.returncode == 2 and "must be lower-case letters" in bad.stderr
    assert harness_cli("new-plugin", "twice", "--dir", str(tmp_path)).returncode == 0
    again = harness_cli("new-plugin", "twice", "--dir", str(tmp_path))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_a_scaffolded_plugin_installs_lists_passes_the_kit_and_runs(tmp_path):
    made = harness_cli("new-plugin", "shouty", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "harness-shouty"
    assert f"-m pip install -e {folder}" in made.stdout
    site = tmp_path / "site"  # the guide's `pip install` into a folder of its own, not this environment
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(folder)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    env = {"PYTHONPATH": str(site), "HARNESS_STRICT_PLUGINS": "1"}
    listed = harness_cli("plugins", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert plugins["shouty"]["registered"] == ["model:shouty"] and not plugins["shouty"]["errors"]
    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout
    run = harness_cli("run", "--task", "polarity", "--model", "shouty", "--limit", "30", "--bootstrap", "20",
                      "--out", str(tmp_path / "run"), env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr
    [row] = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert row["status"] == "ok" and row["n"] == 30
    refused = harness_cli(
        "run", "--task", "category", "--model", "shouty", "--out", str(tmp_path / "r2"), env=env
    )
    assert refused.returncode != 0 and "supports the polarity task(s) only" in refused.stderr


@pytest.mark.parametrize("spec", ["vader", "tfidf-logreg"])
def test_the_kit_passes_on_the_built_in_baselines(spec, tmp_path):
    from harness.plugin_manager import PluginHost
    from harness.testing import check_model_plugin

    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    check_model_plugin(None, spec, workdir=tmp_path, host=host, tasks=["polarity"])


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    from tests.tiny_encoders import build_distilbert
    from tests.tiny_t5 import build_tiny_llama, build_tiny_t5

    root = tmp_path_factory.mktemp("tiny")
    return {
        "hf-classifier": build_distilbert(root / "distilbert", {0: "negative", 1: "positive"}),
        "seq2seq": build_tiny_t5(root / "t5"),
        "causal-lm": build_tiny_llama(root / "llama"),
    }


@pytest.mark.parametrize(
    ("family", "options"),
    [
        ("hf-classifier", {}),
        ("seq2seq", {}),
        ("causal-lm", {"shots": "1", "calibration_size": "8"}),
    ],
)
def test_the_kit_passes_on_the_built_in_model_families(family, options, tiny_checkpoints, tmp_path):
    from harness.plugin_manager import PluginHost
    from harness.testing import check_model_plugin

    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    spec = f"{family}:{tiny_checkpoints[family]}"
    check_model_plugin(None, spec, workdir=tmp_path, host=host, options=options, tasks=["polarity"])


def test_the_kit_passes_on_a_hybrid_of_built_in_models(tiny_checkpoints, tmp_path):
    from harness.plugin_manager import PluginHost
    from harness.testing import check_model_plugin

    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    spec = f"hybrid:hf-classifier:{tiny_checkpoints['hf-classifier']}>vader@confidence:0.9"
    check_model_plugin(None, spec, workdir=tmp_path, host=host, tasks=["polarity"])


def test_the_kit_catches_a_fingerprint_that_misses_an_option(tmp_path):
    from harness.testing import check_model_plugin

    stale = plugin_module(
        "stale",
        """
        import numpy as np
        from harness import Option, OptionSet, hookimpl

        OPTIONS = OptionSet(Option("bias", float, 0.5, "share of positive"))

        class Stale:
            name = "stale"

            def __init__(self, bias):
                self.bias = bias

            def predict(self, texts, task):
                return np.tile([1 - self.bias, self.bias], (len(texts), 1))

            def fingerprint(self):
                return "stale"  # forgets the bias

        @hookimpl
        def register_models(register):
            register("stale", lambda arg, ctx: Stale(OPTIONS.parse(ctx.options)["bias"]), options=OPTIONS)
        """,
    )
    with pytest.raises(AssertionError, match="option bias=1.0 changes predictions but not the fingerprint"):
        check_model_plugin(stale, "stale", workdir=tmp_path, tasks=["polarity"])


@pytest.mark.parametrize(
    ("declared", "changed"),
    [
        ('Option("negations", list, ("not", "never"), "words that flip the answer")', "negations=not,never,zyzzyva"),
        ('Option("suffix", str, " Answer:", "text after the review")', "suffix= Answer: zyzzyva"),
    ],
)  # fmt: skip
def test_the_kit_catches_a_fingerprint_that_misses_a_word_list_or_string_option(declared, changed, tmp_path):
    from harness.testing import check_model_plugin

    forgetful = plugin_module(
        "forgetful",
        f"""
        import numpy as np
        from harness import Option, OptionSet, hookimpl

        OPTIONS = OptionSet({declared})

        class Forgetful:
            name = "forgetful"

            def predict(self, texts, task):
                return np.tile([0.5, 0.5], (len(texts), 1))

            def fingerprint(self):
                return "forgetful"  # forgets its option

        @hookimpl
        def register_models(register):
            register("forgetful", lambda arg, ctx: Forgetful(), options=OPTIONS)
        """,
    )
    with pytest.raises(AssertionError, match=f"option {changed} changes predictions but not the fingerprint"):
        check_model_plugin(forgetful, "forgetful", workdir=tmp_path, tasks=["polarity"])


def plugin_module(name: str, source: str):
    import textwrap
    import types

    module = types.ModuleType(name)
    exec(textwrap.dedent(source), module.__dict__)
    return module
