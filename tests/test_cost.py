"""Dollars and latency percentiles on every row, from hardware time or from tokens."""

from __future__ import annotations

import json

import pytest

from harness.boards import Board, ModelEntry
from harness.cost import HourlyPrice, hourly_price, latency_summary, price_file, row_cost, token_price
from harness.leaderboard._table import build_tables
from harness.run import run_board


def test_the_price_file_names_its_source_and_date():
    prices = price_file()
    assert prices["source"] and prices["date"]
    assert all(e["usd_per_hour"] > 0 for e in prices["cpu"] + prices["gpu"])


def test_hosted_models_are_priced_by_the_longest_listed_name_their_name_starts_with():
    tokens = price_file()["tokens"]
    assert tokens["source"] and tokens["date"]
    snapshot = token_price("gpt-4o-mini-2024-07-18")  # not gpt-4o's price, though it starts with that too
    assert snapshot is not None and (snapshot.usd_per_million_in, snapshot.usd_per_million_out) == (
        0.15,
        0.60,
    )
    assert tokens["date"] in snapshot.source and snapshot.source.startswith("gpt-4o-mini:")
    assert token_price("smollm2") is None


def test_a_listed_hosted_model_costs_its_tokens_unless_prices_are_given(tmp_path):
    from harness.plugins.models.openai_endpoint import make_endpoint
    from tests.tiny_t5 import make_context

    record = json.dumps({"mode": "generate", "parsed": True, "prompt_tokens": 1_000_000,
                         "completion_tokens": 100_000, "seconds": 0.1})  # fmt: skip
    listed = make_endpoint("gpt-4o-mini", make_context(tmp_path)).stats_from_raw([record])
    assert listed["token_cost_usd"] == pytest.approx(0.15 + 0.06)
    assert "2025-04" in listed["token_price_source"]
    assert row_cost(1, 1.0, listed, None)["source"] == listed["token_price_source"]
    given = make_endpoint("gpt-4o-mini", make_context(tmp_path, price_in="1")).stats_from_raw([record])
    assert given["token_cost_usd"] == pytest.approx(1.0) and given["token_price_source"] == "model options"
    local = make_endpoint("smollm2", make_context(tmp_path)).stats_from_raw([record])
    assert "token_cost_usd" not in local  # a local server: its hardware time is the cost


def test_a_given_price_per_hour_wins_over_the_list():
    assert hourly_price({"device": "cuda", "device_name": "NVIDIA H100"}, 2.5) == HourlyPrice(
        2.5, "--price-per-hour"
    )


def test_cpu_runs_are_priced_as_the_cheapest_instance_with_enough_cores():
    prices = sorted((e for e in price_file()["cpu"]), key=lambda e: e["usd_per_hour"])
    two = hourly_price({"device": "cpu"}, None, cpus=2)
    three = hourly_price({"device": "cpu"}, None, cpus=3)
    assert two is not None and three is not None
    assert two.usd_per_hour == min(e["usd_per_hour"] for e in prices if e["vcpus"] >= 2)
    assert three.usd_per_hour == min(e["usd_per_hour"] for e in prices if e["vcpus"] >= 3) > two.usd_per_hour
    assert price_file()["date"] in two.source


def test_gpus_are_priced_by_name_and_unknown_devices_get_no_price():
    h100 = next(e for e in price_file()["gpu"] if e["gpu"] == "H100")
    found = hourly_price({"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3"}, None)
    assert found is not None and found.usd_per_hour == h100["usd_per_hour"]
    assert hourly_price({"device": "cuda", "device_name": "Some Future GPU"}, None) is None
    assert "--price-per-hour" in row_cost(10, 1.0, {}, None)["note"]


def test_token_cost_wins_over_hardware_time():
    price = HourlyPrice(3.6, "test")
    assert row_cost(200, 10.0, {}, price)["usd"] == pytest.approx(0.01)
    assert row_cost(200, 10.0, {}, price)["usd_per_1000_reviews"] == pytest.approx(0.05)
    by_tokens = row_cost(200, 10.0, {"token_cost_usd": 0.4}, price)
    assert by_tokens["usd"] == 0.4 and by_tokens["usd_per_1000_reviews"] == pytest.approx(2.0)


def test_latency_is_per_request_when_the_model_timed_requests():
    local = latency_summary([0.1] * 19 + [1.0], {})
    assert local["p50_s"] == pytest.approx(0.1) and local["p95_s"] > 0.1 and local["per"].startswith("review")
    served = latency_summary([0.1], {"request_latency_p50_s": 0.3, "request_latency_p95_s": 0.9})
    assert served == {"p50_s": 0.3, "p95_s": 0.9, "per": "request"}


def test_every_row_and_the_table_carry_cost_and_latency(host, tmp_path):
    board = Board(name="c", tasks=["toy"], models=[ModelEntry("words")], data="toy:20", backend="cpu",
                  bootstrap=0, price_per_hour=3600.0)  # fmt: skip
    results = run_board(host, board, tmp_path / "run")
    [row] = results["rows"]
    assert results["pricing"] == {"usd_per_hour": 3600.0, "source": "--price-per-hour"}
    assert row["cost"]["usd"] == pytest.approx(row["runtime_s"] + row["fit_s"])
    assert row["cost"]["usd_per_1000_reviews"] == pytest.approx(1000 * row["cost"]["usd"] / row["n"])
    assert row["latency"]["p50_s"] <= row["latency"]["p95_s"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["rows"][0]["cost"] == row["cost"]
    [table] = build_tables(results["rows"])
    headers = [c.header for c in table.columns]
    assert {"cost ($)", "$ per 1,000 reviews", "latency p50/p95 (s)"} <= set(headers)
    assert table.rows[0][headers.index("cost ($)")].value == pytest.approx(row["cost"]["usd"])


def test_price_per_hour_on_the_command_line_prices_the_printed_table(tmp_path):
    from click.testing import CliRunner

    from harness.cli import cli

    run_dir = tmp_path / "run"
    args = ["run", "--task", "polarity", "--model", "vader", "--data", "demo", "--limit", "20",
            "--task-option", "train_size=0", "--bootstrap", "0", "--price-per-hour", "3600", "--out", str(run_dir), "--wide"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "cost ($)" in result.output and "$ per 1,000 reviews" in result.output
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["pricing"]["source"] == "--price-per-hour" and saved["config"]["price_per_hour"] == 3600.0
    assert saved["rows"][0]["cost"]["source"] == "--price-per-hour"
