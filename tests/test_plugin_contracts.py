"""Contracts checked where plugin code returns: each broken plugin gets one line naming it and the fix."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

import harness
from harness.boards import Board, ModelEntry
from harness.errors import HarnessError
from harness.plugin_manager import PluginHost, PluginLoadError
from harness.registry import ContractError
from harness.run import run_board
from harness.runner import build_model
from tests.fakes import ToyPlugin


def host_with(plugin: object, name: str = "broken", strict: bool = False) -> PluginHost:
    env = {"HARNESS_LOAD_PLUGINS": ""}
    if strict:
        env["HARNESS_STRICT_PLUGINS"] = "1"
    host = PluginHost(env=env)
    host.register(ToyPlugin(), "toy")
    host.register(plugin, name)
    return host


def plugin(source: str) -> SimpleNamespace:
    """A plugin module made from source, as an author would write it."""
    namespace: dict[str, object] = {}
    exec(textwrap.dedent(source), namespace)
    return SimpleNamespace(**{k: v for k, v in namespace.items() if not k.startswith("__")})


NONE_FACTORY = """
    from harness import hookimpl

    @hookimpl
    def register_models(register):
        register("nothing", lambda arg, ctx: None)
"""
ONE_PARAMETER = """
    from harness import hookimpl

    @hookimpl
    def register_models(register):
        register("one-param", lambda ctx: None)
"""
MISSPELLED = """
    from harness import hookimpl

    @hookimpl
    def register_model(register):
        register("never", lambda arg, ctx: None)
"""
UNMARKED = """
    def register_models(register):
        register("never", lambda arg, ctx: None)
"""


def test_the_public_api_has_everything_a_plugin_needs_and_no_heavy_import():
    code = (
        "import sys, harness; "
        "from harness import hookimpl, Model, Task, Example, ModelOutput, ModelContext, Option, OptionSet, "
        "RunInfo, BatchStats, HarnessError, Register; "
        "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert all(hasattr(harness, name) for name in harness.__all__)


def test_a_factory_returning_none_is_named_with_what_it_must_return(tmp_path):
    host = host_with(plugin(NONE_FACTORY))
    with pytest.raises(ContractError) as error:
        build_model("nothing", {}, 0, tmp_path, backend_name="cpu", host=host)
    message = str(error.value)
    assert "plugin 'broken'" in message and "'nothing' returned NoneType" in message
    assert "predict(texts, task)" in message and "\n" not in message


def test_a_factory_with_the_wrong_parameters_is_refused_when_it_registers():
    with pytest.warns(UserWarning, match=r"model 'one-param': registered a factory taking \(ctx\)"):
        host = host_with(plugin(ONE_PARAMETER))
        assert "one-param" not in host.registries.models
    assert "factory(arg, ctx)" in host.plugins["broken"].errors[0]


def test_a_misspelled_hook_is_reported_with_the_right_name():
    with pytest.warns(UserWarning, match="did you mean 'register_models'"):
        host = host_with(plugin(MISSPELLED))
    assert "'register_model', which is not a harness hook" in host.plugins["broken"].errors[0]


def test_a_hook_without_hookimpl_is_reported():
    with pytest.warns(UserWarning, match=r"defines register_models\(\) without @hookimpl"):
        host = host_with(plugin(UNMARKED))
    assert host.plugins["broken"].errors


@pytest.mark.parametrize("source", [NONE_FACTORY, ONE_PARAMETER, MISSPELLED, UNMARKED])
def test_strict_mode_turns_every_broken_plugin_into_an_error(source, tmp_path):
    with pytest.raises((PluginLoadError, ContractError)) as error:
        host = host_with(plugin(source), strict=True)
        build_model("nothing", {}, 0, tmp_path, backend_name="cpu", host=host)
    assert "broken" in str(error.value) and "\n" not in str(error.value)


def test_a_model_on_a_task_it_does_not_support_is_refused_before_anything_runs(tmp_path):
    toy = ToyPlugin()
    source = plugin(
        """
        from harness import hookimpl
        from tests.fakes import WordModel

        @hookimpl
        def register_models(register):
            register("polarity-only", lambda arg, ctx: WordModel("p"), tasks=["polarity"])
        """
    )
    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    host.register(toy, "toy")
    host.register(source, "narrow")
    board = Board(
        name="t", tasks=["toy"], models=[ModelEntry("words"), ModelEntry("polarity-only")], data="toy:20"
    )
    with pytest.raises(HarnessError, match="supports the polarity task.s. only .* not 'toy'"):
        run_board(host, board, tmp_path)
    assert toy.models == []  # refused before the first model was even built


def test_an_unknown_model_option_is_refused_with_the_closest_name(host, toy_plugin, tmp_path):
    board = Board(
        name="t", tasks=["toy"], models=[ModelEntry("words", options={"fail_no": "x"})], data="toy:20"
    )
    with pytest.raises(HarnessError, match=r"model 'words' has no option 'fail_no'; did you mean 'fail_on'"):
        run_board(host, board, tmp_path)
    board = Board(
        name="t", tasks=["toy"], models=[ModelEntry("words")], data="toy:20", model_options={"x": "1"}
    )
    with pytest.raises(HarnessError, match=r"the models of this board \(words\) read no option 'x'"):
        run_board(host, board, tmp_path)
    board.model_options = {"fail_no": "x"}
    with pytest.raises(HarnessError) as error:
        run_board(host, board, tmp_path)
    assert "read no option 'fail_no'; did you mean 'fail_on'?" in str(error.value)
    assert "no model" not in str(error.value)  # no double negative
    assert toy_plugin.models == []


def test_an_option_for_one_model_of_the_board_reaches_the_model_that_declares_it(host, toy_plugin, tmp_path):
    board = Board(
        name="t",
        tasks=["toy"],
        models=[ModelEntry("words"), ModelEntry("hybrid:words>words:b@confidence:0.9")],
        data="toy:20",
        model_options={"max_batch": "64"},
    )
    rows = run_board(host, board, tmp_path)["rows"]
    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert {model.max_batch for model in toy_plugin.models} == {64}


def test_an_option_scoped_to_a_family_or_spec_reaches_only_it_also_inside_a_hybrid(
    host, toy_plugin, tmp_path
):
    board = Board(
        name="t",
        tasks=["toy"],
        models=[ModelEntry("seeded-words"), ModelEntry("hybrid:seeded-words>words:b@confidence:0.9")],
        data="toy:20",
        # `fail_on` would be refused by seeded-words, which declares no such option, if it reached it.
        model_options={"words:b.max_batch": "64", "words.fail_on": "no such text"},
    )
    rows = run_board(host, board, tmp_path)["rows"]
    assert [row["status"] for row in rows] == ["ok", "ok"]
    [words] = [model for model in toy_plugin.models if model.name == "words:b"]
    assert (words.max_batch, words.fail_on) == (64, "no such text")


def test_an_option_scoped_to_a_model_not_on_the_board_or_not_declared_is_refused(host, toy_plugin, tmp_path):
    for options, message in [
        ({"wrods.fail_on": "x"}, r"model option 'wrods.fail_on': no model 'wrods' on this board"),
        ({"words.fail_no": "x"}, r"model 'words' has no option 'fail_no'; did you mean 'fail_on'"),
    ]:
        board = Board(
            name="t", tasks=["toy"], models=[ModelEntry("words")], data="toy:20", model_options=options
        )
        with pytest.raises(HarnessError, match=message):
            run_board(host, board, tmp_path)
    assert toy_plugin.models == []


def test_strict_mode_cli_exits_non_zero_with_one_line_and_no_traceback(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "harness_broken.py").write_text(textwrap.dedent(MISSPELLED))
    info = site / "harness_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[harness]\nbroken = harness_broken\n")
    env = {"PYTHONPATH": str(site), "HARNESS_STRICT_PLUGINS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "harness", "plugins"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert "plugin 'broken'" in line and "did you mean 'register_models'" in line


NO_FINGERPRINT_CLASS = """
    import numpy as np
    from harness import hookimpl

    class NoFingerprint:
        name = "no-fingerprint"

        def __init__(self, arg, ctx):
            pass

        def predict(self, texts, task):
            return np.full((len(texts), 2), 0.5)

    @hookimpl
    def register_models(register):
        register("no-fingerprint", NoFingerprint)
"""
NO_FINGERPRINT_ANNOTATED = NO_FINGERPRINT_CLASS.replace(
    'register("no-fingerprint", NoFingerprint)',
    "def make(arg, ctx) -> NoFingerprint:\n            return NoFingerprint(arg, ctx)\n\n"
    '        register("no-fingerprint", make)',
)
NO_FINGERPRINT_UNDECLARED = NO_FINGERPRINT_CLASS.replace(
    'register("no-fingerprint", NoFingerprint)',
    'register("no-fingerprint", lambda arg, ctx: NoFingerprint(arg, ctx))',
)


@pytest.mark.parametrize("source", [NO_FINGERPRINT_CLASS, NO_FINGERPRINT_ANNOTATED])
def test_strict_mode_checks_the_declared_product_of_a_factory_without_building_it(source):
    with pytest.raises(PluginLoadError) as error:
        _ = host_with(plugin(source), strict=True).registries
    message = str(error.value)
    assert "plugin 'broken'" in message and "model 'no-fingerprint'" in message
    assert "returns NoFingerprint, which has no fingerprint()" in message and "\n" not in message


def test_a_product_without_a_member_is_refused_where_it_is_built_naming_the_member(tmp_path):
    host = host_with(plugin(NO_FINGERPRINT_UNDECLARED), strict=True)  # nothing declared: built to be checked
    with pytest.raises(ContractError, match=r"returned NoFingerprint, which has no fingerprint\(\); it must"):
        build_model("no-fingerprint", {}, 0, tmp_path, backend_name="cpu", host=host)


def test_strict_harness_plugins_exits_non_zero_on_a_declared_product_without_a_member(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "harness_nofp.py").write_text(textwrap.dedent(NO_FINGERPRINT_CLASS))
    info = site / "harness_nofp-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-nofp\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[harness]\nnofp = harness_nofp\n")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    args = [sys.executable, "-m", "harness", "plugins"]
    lenient = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert lenient.returncode == 0 and "has no fingerprint()" in lenient.stdout
    strict = subprocess.run(
        args, capture_output=True, text=True, env={**env, "HARNESS_STRICT_PLUGINS": "1"}, cwd=tmp_path
    )
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    [line] = [line for line in strict.stderr.splitlines() if line.strip()]
    assert "plugin 'nofp'" in line and "has no fingerprint()" in line
