"""Declared options: one parser for models, tasks, routers and backends."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.options import Option, OptionError, OptionSet

DECLARED = OptionSet(
    Option("epochs", int, 3, "epochs", minimum=1),
    Option("min_steps", int, 120, "steps", minimum=0),
    Option("encoder_layers", str, "fast", "layers", choices=("fast", "stock")),
    Option("learning_rate", float, 2e-5, "rate", minimum=0),
    Option("compile", bool, False, "compile", affects_output=False),
)


def test_absent_or_empty_is_the_default_and_values_are_typed():
    assert DECLARED.parse({})["epochs"] == 3
    assert DECLARED.parse({"epochs": ""})["epochs"] == 3
    values = DECLARED.parse({"epochs": "5", "learning_rate": "1e-4", "encoder_layers": "stock"})
    assert (values["epochs"], values["learning_rate"], values["encoder_layers"]) == (5, 1e-4, "stock")


def test_zero_is_accepted_where_the_minimum_allows_it():
    assert DECLARED.parse({"min_steps": "0"})["min_steps"] == 0


@pytest.mark.parametrize(
    "given,message",
    [
        ({"epochs": "x"}, "epochs='x' must be a whole number"),
        ({"epochs": "0"}, "epochs='0' must be at least 1"),
        ({"learning_rate": "fast"}, "learning_rate='fast' must be a number"),
        ({"encoder_layers": "quick"}, "encoder_layers='quick': choose one of fast, stock"),
        ({"compile": "maybe"}, "compile='maybe' must be true or false"),
    ],
)
def test_bad_values_are_clear_errors_of_both_kinds(given, message):
    with pytest.raises(OptionError, match=message) as error:
        DECLARED.parse(given)
    assert isinstance(error.value, HarnessError) and isinstance(error.value, ValueError)


@pytest.mark.parametrize(
    "word,value", [("on", True), ("yes", True), ("1", True), ("OFF", False), ("no", False)]
)
def test_every_yes_and_no_word_means_the_same_everywhere(word, value):
    assert DECLARED.parse({"compile": word})["compile"] is value


def test_an_unknown_name_is_refused_with_the_closest_and_the_list_when_strict():
    assert "epohcs" not in DECLARED.parse({"epohcs": "2"})  # lenient: another plugin's option
    with pytest.raises(
        OptionError, match=r"minilm has no option 'epohcs'; did you mean 'epochs'\? \(options: "
    ):
        DECLARED.parse({"epohcs": "2"}, strict=True, owner="minilm")


def test_only_options_that_change_predictions_are_fingerprinted():
    values = DECLARED.parse({"compile": "true"})
    assert "compile" not in DECLARED.fingerprinted(values)
    assert DECLARED.fingerprinted(values)["epochs"] == 3


def test_minilm_accepts_min_steps_zero(tmp_path):
    from harness.plugins.models.classifiers import make_minilm
    from tests.tiny_encoders import make_ctx

    model = make_minilm(None, make_ctx(tmp_path, {"min_steps": "0"}))
    assert model.min_steps == 0


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (lambda: Option("weight_negation", bool, "yes", "h"), "'weight_negation' has the default 'yes', which is not a bool"),
        (lambda: Option("negate", bool, "false", "h"), "which is not a bool"),
        (lambda: Option("bias", float, "0.5", "h"), "'bias' has the default '0.5', which is not a number"),
        (lambda: Option("epochs", int, 2.5, "h"), "which is not a whole number"),
        (lambda: Option("epochs", int, True, "h"), "which is not a whole number"),
        (lambda: Option("layers", str, "slow", "h", choices=("fast", "stock")), "not one of its choices (fast, stock)"),
        (lambda: Option("epochs", int, 0, "h", minimum=1), "which is below its minimum 1"),
        (lambda: Option("words", list, "not,never", "h"), "which is not a list of strings"),
        (lambda: Option("words", list, ["not", 3], "h"), "which is not a list of strings"),
    ],
)  # fmt: skip
def test_a_default_that_does_not_fit_its_declaration_is_refused_when_declared(declared, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        declared()
    assert "\n" not in str(error.value)


def test_a_default_of_none_and_an_int_for_a_float_are_accepted():
    assert Option("base", str, None, "h").default is None
    assert Option("bias", float, 1, "h", minimum=0).parse("") == 1


def test_a_word_list_option_parses_a_comma_list_and_shows_its_default():
    words = Option("negations", list, ["not", "never"], "words that negate")
    assert words.default == ("not", "never")
    assert words.parse(" no , nor,, ") == ("no", "nor")
    assert words.parse("") == ("not", "never")
    assert words.describe() == "negations (comma list) [default: not,never]: words that negate"
    fingerprinted = OptionSet(words).fingerprinted(OptionSet(words).parse({"negations": "no"}))
    assert fingerprinted == {"negations": ("no",)}


def test_a_board_file_gives_a_word_list_as_a_toml_list(tmp_path):
    from harness.boards import load_board

    path = tmp_path / "b.toml"
    path.write_text(
        'tasks = ["polarity"]\n[[models]]\nspec = "vader"\noptions = { negations = ["not", "never"] }\n'
    )
    options = load_board(path).models[0].options
    assert Option("negations", list, (), "h").parse(options["negations"]) == ("not", "never")


def test_a_plugin_declaring_a_bad_default_fails_to_load_with_one_line_naming_plugin_and_option():
    import types
    import warnings

    from harness.hookspecs import hookimpl
    from harness.plugin_manager import PluginHost

    def register_models(register):
        register("yes", lambda arg, ctx: None, options=OptionSet(Option("weight_negation", bool, "yes", "h")))

    module = types.SimpleNamespace(register_models=hookimpl(register_models))
    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    host.register(module, "bad-defaults")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert "yes" not in host.registries.models
    [error] = host.plugins["bad-defaults"].errors
    assert "'weight_negation' has the default 'yes', which is not a bool" in error and "\n" not in error
    assert "test_options.py:" in error  # where the plugin declared it, not where it was checked
