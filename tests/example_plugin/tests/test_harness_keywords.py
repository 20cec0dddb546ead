"""The plugin's own tests: the harness' conformance checks, then a real run on the demo reviews."""

from harness.testing import check_model_plugin, run_model_plugin

import harness_keywords


def test_the_model_keeps_the_plugin_contract(tmp_path):
    check_model_plugin(harness_keywords, "keywords", workdir=tmp_path)


def test_the_model_scores_the_demo_reviews(tmp_path):
    row = run_model_plugin(harness_keywords, "keywords", task="polarity", limit=50, workdir=tmp_path)
    assert row["status"] == "ok" and row["n"] == 50
    assert row["metrics"]["accuracy"] > 0.5
