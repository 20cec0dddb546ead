"""Whole-number options: one parser for models, tasks and backends."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.options import OptionError, choice_option, int_option


def test_absent_or_empty_is_the_default_and_values_are_parsed():
    assert int_option({}, "epochs", 3, minimum=1) == 3
    assert int_option({"epochs": ""}, "epochs", 3, minimum=1) == 3
    assert int_option({"epochs": "5"}, "epochs", 3, minimum=1) == 5


def test_zero_is_accepted_where_the_minimum_allows_it():
    assert int_option({"min_steps": "0"}, "min_steps", 120, minimum=0) == 0


@pytest.mark.parametrize("raw,message", [("x", "must be a whole number"), ("0", "must be at least 1")])
def test_bad_values_are_clear_errors_of_both_kinds(raw, message):
    with pytest.raises(OptionError, match=message) as error:
        int_option({"batch_size": raw}, "batch_size", 8, minimum=1)
    assert isinstance(error.value, HarnessError) and isinstance(error.value, ValueError)


def test_minilm_accepts_min_steps_zero(tmp_path):
    from harness.plugins.models.classifiers import make_minilm
    from tests.tiny_encoders import make_ctx

    model = make_minilm(None, make_ctx(tmp_path, {"min_steps": "0"}))
    assert model.min_steps == 0


def test_choice_is_one_of_the_choices_and_absent_or_empty_is_the_first():
    choices = ("fast", "stock")
    assert choice_option({}, "encoder_layers", choices) == "fast"
    assert choice_option({"encoder_layers": ""}, "encoder_layers", choices) == "fast"
    assert choice_option({"encoder_layers": "stock"}, "encoder_layers", choices) == "stock"
    with pytest.raises(OptionError, match="encoder_layers='quick': choose one of fast, stock"):
        choice_option({"encoder_layers": "quick"}, "encoder_layers", choices)
