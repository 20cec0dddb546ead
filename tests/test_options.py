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
