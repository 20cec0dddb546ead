"""Router sweeps: replayed thresholds match real hybrids, nothing re-runs, calibration transfers."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from harness import plugin_manager
from harness.boards import Board, ModelEntry
from harness.errors import HarnessError
from harness.plugins.routing import _replay as replay
from harness.plugins.routing import sweep
from harness.run import run_board
from tests.toy_pair_models import PairPlugin, records


@pytest.fixture
def pair_plugin(host) -> PairPlugin:
    plugin = PairPlugin()
    host.register(plugin, "pair-plugin")
    return plugin


def sweep_board(**opts) -> Board:
    return sweep.board_for_sweep(
        ["cheap", "sharp"], "toy", {"data": "toy:300", "backend": "cpu", "bootstrap": 50, **opts}
    )


def settings(**overrides) -> sweep.SweepSettings:
    return sweep.SweepSettings(thresholds=sweep.parse_thresholds("0.5:0.99:0.01"), bootstrap=50, **overrides)


def test_parse_thresholds():
    grid = sweep.parse_thresholds("0.5:0.99:0.01")
    assert len(grid) == 50 and grid[0] == 0.5 and grid[-1] == 0.99
    assert sweep.parse_thresholds("0.9,0.6") == [0.6, 0.9]
    for bad in ("0.5:0.4:0.1", "0.5:1.5:0.5", "a,b", "0.1:0.2:0"):
        with pytest.raises(HarnessError):
            sweep.parse_thresholds(bad)
    assert sweep.parse_target_metric("macro_f1=0.9") == ("macro_f1", 0.9)
    with pytest.raises(HarnessError, match="METRIC=VALUE"):
        sweep.parse_target_metric("macro_f1")


def test_escalated_share_is_the_fraction_of_small_confidences_below_each_threshold(
    host, pair_plugin, tmp_path
):
    report, _ = sweep.run_sweep(host, sweep_board(), tmp_path, settings())
    confidence = np.array([max(r["probs"]) for r in records(tmp_path, "cheap")])
    assert report.n == len(confidence)
    shares = [p.share for p in report.curve]
    assert len(set(shares)) > 10  # the toy data gives the curve some shape
    for point in report.curve:
        assert point.share == pytest.approx(np.mean(confidence < point.threshold))
        assert point.escalated == np.sum(confidence < point.threshold)


def test_share_grid_spans_0_to_100_percent_escalated_for_an_over_confident_model(host, pair_plugin, tmp_path):
    board = sweep.board_for_sweep(
        ["boastful", "sharp"], "toy", {"data": "toy:300", "backend": "cpu", "bootstrap": 0}
    )
    report, _ = sweep.run_sweep(host, board, tmp_path, sweep.SweepSettings(bootstrap=0))
    confidence = np.array([max(r["probs"]) for r in records(tmp_path, "boastful")])
    assert np.mean(confidence > 0.99) > 0.6 and np.mean(confidence == 1.0) > 0.1
    raw, _ = sweep.run_sweep(host, board, tmp_path, settings())  # the old grid of raw thresholds, 0.5 to 0.99
    assert max(p.share for p in raw.curve) < 0.4
    shares = [p.share for p in report.curve]
    assert shares[0] == 0.0 and shares[-1] == 1.0
    assert report.curve[-1].metrics == report.large_only.metrics
    tied = np.mean(confidence == 1.0)  # escalated together, by threshold 1 only
    largest_tie = np.unique(confidence[confidence < 1.0], return_counts=True)[1].max()
    for share in sweep.SweepSettings().shares:  # each target share is met but for tied scores
        if share <= 1.0 - tied:
            assert min(abs(np.array(shares) - share)) <= (largest_tie + 1) / len(confidence)
    for point in report.curve:  # each point is still the hybrid at a raw threshold
        expected = np.ones_like(confidence, bool) if point.threshold >= 1 else confidence < point.threshold
        assert point.escalated == expected.sum()


def test_replayed_threshold_equals_a_hybrid_run_by_the_runner(host, pair_plugin, tmp_path):
    board = Board(name="t", tasks=["toy"], data="toy:300", backend="cpu", bootstrap=0,
                  models=[ModelEntry("cheap"), ModelEntry("sharp"), ModelEntry("hybrid:cheap>sharp@confidence:0.8")])  # fmt: skip
    run_board(host, board, tmp_path)
    task = host.registries.tasks.get("toy").obj({})
    pair = replay.read_pair(tmp_path / "predictions.jsonl", "toy", task.labels, "cheap", "sharp")
    escalate = pair.small.max(axis=1) < 0.8
    assert 0 < escalate.sum() < len(pair)
    hybrid = records(tmp_path, "hybrid:cheap>sharp@confidence:0.8")
    hybrid_probs = np.array([r["probs"] for r in hybrid])
    replayed = replay.hybrid_probs(pair, escalate)
    assert np.allclose(replayed, hybrid_probs, atol=1e-6)
    assert np.allclose(hybrid_probs[~escalate], pair.small[~escalate], atol=1e-6)
    assert np.allclose(hybrid_probs[escalate], pair.large[escalate], atol=1e-6)
    stages = [json.loads(r["raw_text"])["stage"] for r in hybrid]
    assert stages == escalate.astype(int).tolist()


def test_second_sweep_reruns_nothing(host, pair_plugin, tmp_path):
    first, results = sweep.run_sweep(host, sweep_board(), tmp_path, settings())
    n = first.n
    assert [(r["computed"], r["cached"]) for r in results["rows"]] == [(n, 0), (n, 0)]
    made = len(pair_plugin.made)
    second, results = sweep.run_sweep(host, sweep_board(), tmp_path, settings())
    assert [(r["computed"], r["cached"]) for r in results["rows"]] == [(0, n), (0, n)]
    assert [m.predicted for m in pair_plugin.made[made:]] == [0, 0]
    assert [p.metrics for p in second.curve] == [p.metrics for p in first.curve]
    assert [p.runtime_s for p in second.curve] == pytest.approx([p.runtime_s for p in first.curve])


def test_sweep_from_a_finished_run_builds_no_model(host, pair_plugin, tmp_path):
    first, _ = sweep.run_sweep(host, sweep_board(), tmp_path, settings())
    made = len(pair_plugin.made)
    replayed = sweep.sweep_from_run(host, tmp_path, "toy", {}, "cheap", "sharp", settings())
    assert len(pair_plugin.made) == made
    assert [p.metrics for p in replayed.curve] == [p.metrics for p in first.curve]
    with pytest.raises(HarnessError, match="no predictions.jsonl"):
        sweep.sweep_from_run(host, tmp_path / "nowhere", "toy", {}, "cheap", "sharp", settings())


def test_runtime_is_small_time_for_all_plus_large_time_for_the_escalated(host, pair_plugin, tmp_path):
    report, _ = sweep.run_sweep(host, sweep_board(), tmp_path, settings())
    small, large = records(tmp_path, "cheap"), records(tmp_path, "sharp")
    point = report.curve[25]
    expected = sum(r["latency_s"] for r in small) + sum(
        lr["latency_s"] for sr, lr in zip(small, large, strict=True) if max(sr["probs"]) < point.threshold
    )
    assert point.runtime_s == pytest.approx(expected)
    assert report.small_only.runtime_s == pytest.approx(sum(r["latency_s"] for r in small))
    assert report.large_only.runtime_s == pytest.approx(sum(r["latency_s"] for r in large))


def test_oracle_and_gap_summary(host, pair_plugin, tmp_path):
    report, _ = sweep.run_sweep(host, sweep_board(), tmp_path, settings())
    small_errors = np.mean([not r["correct"] for r in records(tmp_path, "cheap")])
    assert report.large_only.metrics["accuracy"] == 1.0 > report.small_only.metrics["accuracy"]
    exact = [p for p in report.oracle if p.share == pytest.approx(small_errors)]
    assert (
        exact and exact[0].metrics["accuracy"] == 1.0
    )  # the large model is right wherever the small one errs
    assert 0.0 < report.apgr < 1.0
    assert report.share_to_recover["50%"] <= report.share_to_recover["80%"]


def test_target_share_reports_achieved_share_and_quality_on_held_out_data(host, pair_plugin, tmp_path):
    report, _ = sweep.run_sweep(host, sweep_board(), tmp_path, settings(target_share=0.3, seed=3))
    target = report.target
    assert target.n_calibration + target.n_held_out == report.n
    assert target.calibration.share == pytest.approx(0.3, abs=0.05)
    small = records(tmp_path, "cheap")
    from harness.plugins.routing._calibration import calibration_mask

    held = ~calibration_mask([r["id"] for r in small], seed=3)
    confidence = np.array([max(r["probs"]) for r in small])[held]
    assert target.held_out.share == pytest.approx(np.mean(confidence < target.threshold))
    gold = np.array([r["gold"] == "positive" for r in small])[held]
    large_right = np.array([r["correct"] for r in records(tmp_path, "sharp")])[held]
    small_right = np.array([r["correct"] for r in small])[held]
    hybrid_right = np.where(confidence < target.threshold, large_right, small_right)
    assert len(gold) == target.n_held_out
    assert target.held_out.metrics["accuracy"] == pytest.approx(hybrid_right.mean())
    for name, value in (
        ("share_escalated", target.held_out.share),
        ("accuracy", target.held_out.metrics["accuracy"]),
    ):
        low, high = target.intervals[name]
        assert low <= value <= high and low < high


def test_target_metric_picks_the_cheapest_threshold_reaching_it(host, pair_plugin, tmp_path):
    report, _ = sweep.run_sweep(host, sweep_board(), tmp_path, settings(target_metric=("accuracy", 0.9)))
    target = report.target
    assert target.reached and target.calibration.metrics["accuracy"] >= 0.9
    assert target.target == "accuracy>=0.9"
    with pytest.raises(HarnessError, match="unknown metric"):
        sweep.run_sweep(host, sweep_board(), tmp_path, settings(target_metric=("f2", 0.9)))


def test_temperature_scaling_reports_ece_before_and_after(host, pair_plugin, tmp_path):
    from harness.plugins.routing._calibration import apply_temperature, calibration_mask, fit_temperature
    from harness.tasks.builtin_metrics import expected_calibration_error

    report, _ = sweep.run_sweep(host, sweep_board(), tmp_path, settings(temperature=True, seed=1))
    small = records(tmp_path, "cheap")
    probs = np.array([r["probs"] for r in small])
    gold = np.array([int(r["gold"] == "positive") for r in small])
    calib = calibration_mask([r["id"] for r in small], seed=1)
    t = report.temperature
    assert t.temperature == pytest.approx(fit_temperature(gold[calib], probs[calib]))
    assert t.temperature != pytest.approx(1.0, abs=0.05)
    assert t.ece_before == pytest.approx(expected_calibration_error(gold[~calib], probs[~calib]))
    scaled = apply_temperature(probs[~calib], t.temperature)
    assert t.ece_after == pytest.approx(expected_calibration_error(gold[~calib], scaled))
    assert any("temperature" in note for note in report.notes)


def test_guarantee_certifies_on_the_calibration_half_and_measures_the_held_out_half(
    host, pair_plugin, tmp_path
):
    from harness.plugins.routing._calibration import calibration_mask

    report, _ = sweep.run_sweep(
        host, sweep_board(), tmp_path, settings(guarantee=("accuracy", 0.9), deltas=[0.2, 0.05], seed=2)
    )
    loose, strict = report.certified
    assert loose.certificate.threshold is not None and strict.certificate.threshold is not None
    assert loose.certificate.share <= strict.certificate.share  # a smaller delta escalates more
    small, large = records(tmp_path, "cheap"), records(tmp_path, "sharp")
    held = ~calibration_mask([r["id"] for r in small], seed=2)
    confidence = np.array([max(r["probs"]) for r in small])
    escalate = confidence < loose.certificate.threshold
    right = np.where(escalate, [r["correct"] for r in large], [r["correct"] for r in small])
    assert loose.held_out_quality == pytest.approx(right[held].mean())
    assert loose.held_out.share == pytest.approx(escalate[held].mean())
    assert loose.certificate.bound >= 0.9
    assert (
        loose.best_on_calibration is not None and loose.best_on_calibration_share <= loose.certificate.share
    )


def test_coverage_counts_misses_over_random_splits(host, pair_plugin, tmp_path):
    report, _ = sweep.run_sweep(
        host, sweep_board(), tmp_path,
        settings(guarantee=("accuracy", 0.93), deltas=[0.1, 0.3], coverage_splits=40),
    )  # fmt: skip
    rows = report.coverage
    assert [row.delta for row in rows] == [0.1, 0.3] and all(row.splits == 40 for row in rows)
    assert rows[0].batch == report.n - report.n // 2
    assert 0 < rows[0].certified.promised <= rows[1].certified.promised <= 40
    assert 0 < rows[0].batch_certified.promised <= rows[0].certified.promised  # a batch promise asks for more
    assert rows[0].certified.missed <= rows[0].certified.promised and rows[0].certified.share <= 1.0
    assert rows[0].best_on_calibration is rows[1].best_on_calibration  # the same splits for every delta


def test_compare_routers_scores_every_router_on_the_held_out_half(host, pair_plugin, tmp_path):
    report, _ = sweep.run_sweep(host, sweep_board(), tmp_path, settings(compare_routers=True))
    assert [row.router for row in report.routers] == ["confidence", "margin", "entropy", "learned"]
    for row in report.routers:
        assert 0.0 < row.apgr <= 1.0 and row.share_for_50 <= row.share_for_80


def test_outputs_table_csv_json_and_png(host, pair_plugin, tmp_path):
    report, _ = sweep.run_sweep(host, sweep_board(), tmp_path, settings(target_share=0.2))
    csv_path, json_path, png_path = sweep.write_outputs(report, tmp_path)
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    curves = [r["curve"] for r in rows]
    assert curves.count("router") == 50 and curves.count("small-only") == curves.count("large-only") == 1
    assert float(rows[0]["share_escalated"]) == report.curve[0].share
    assert json.loads(json_path.read_text())["target"]["threshold"] == report.target.threshold
    bands = json.loads(json_path.read_text())["bands"]
    assert len(bands["low"]) == len(bands["high"]) == len(report.curve) and bands["clusters"] is None
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_command_end_to_end(host, pair_plugin, tmp_path, monkeypatch):
    import click

    monkeypatch.setattr(plugin_manager, "_host", host)

    @click.group()
    def cli():
        pass

    sweep.register_commands(cli)
    out = tmp_path / "run"
    args = ["sweep", "cheap", "sharp", "--task", "toy", "--data", "toy:100", "--backend", "cpu",
            "--thresholds", "0.6:0.9:0.1", "--target-share", "0.25", "--bootstrap", "20", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "APGR" in result.output and "held-out" in result.output
    assert "AIQ (area under the cost-quality hull)" in result.output and "CPT(80%)" in result.output
    for name in ("sweep.csv", "sweep.json", "sweep.png", "results.json", "predictions.jsonl"):
        assert f"wrote {out / name}" in result.output
        assert (out / name).exists()
    bigger = [*args[:6], "toy:400", *args[7:9]]
    certified = CliRunner().invoke(cli, [*bigger, "--guarantee", "accuracy>=0.9", "--delta", "0.1", "--batch", "50",
                                         "--coverage-splits", "10", "--out", str(out)])  # fmt: skip
    assert certified.exit_code == 0, certified.output
    assert "certified threshold" in certified.output and "coverage of accuracy>=0.9" in certified.output
    assert (
        "certified for a batch of" in certified.output and "on a batch of 50 new reviews" in certified.output
    )
    refused = CliRunner().invoke(cli, [*args[:9], "--guarantee", "macro_f1>=0.9", "--out", str(out)])
    assert refused.exit_code != 0 and "ratio of counts" in str(refused.exception)


def test_the_sweep_fits_the_terminal_and_columns_chooses_what_it_shows(host, tmp_path, monkeypatch):
    import click

    monkeypatch.setattr(plugin_manager, "_host", host)
    run = tmp_path / "run"
    run_board(host, Board(name="t", tasks=["polarity"], data="demo", backend="cpu", bootstrap=0, limit=80,
                          models=[ModelEntry("tfidf-logreg"), ModelEntry("vader")]), run)  # fmt: skip

    @click.group()
    def cli():
        pass

    sweep.register_commands(cli)
    args = ["sweep", "tfidf-logreg", "vader", "--task", "polarity", "--from-run", str(run), "--bootstrap", "20",
            "--out", str(tmp_path / "sweep")]  # fmt: skip

    def shown(*extra: str) -> tuple[list[str], str]:
        result = CliRunner().invoke(cli, [*args, *extra], env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        board = result.output[: result.output.index("wrote ")]
        return board.splitlines(), " ".join(board.split())

    lines, text = shown()
    assert max(len(line) for line in lines) <= 80 and "…" not in text
    assert "macro_f1" in text and "accuracy_neg" not in text and "--columns quality" in text
    metrics = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["small_only"]["metrics"]
    assert len(metrics) > 3
    for wanted in ("--columns", "quality"), ("--wide",):
        lines, text = shown(*wanted)
        assert "…" not in text and all(f" {metric} " in text for metric in metrics)
        assert (max(len(line) for line in lines) <= 80) == (wanted != ("--wide",))


def test_sweep_and_report_writes_the_sweep_and_replays_a_finished_run_without_a_model(
    host, pair_plugin, tmp_path
):
    from rich.console import Console

    console = Console(file=io.StringIO(), width=160)
    run_dir = tmp_path / "run"
    written = sweep.sweep_and_report(host, sweep_board(), settings(target_share=0.25), run_dir, console)
    names = ["sweep.csv", "sweep.json", "sweep.png", "results.json", "predictions.jsonl"]
    assert written == [run_dir / name for name in names] and all(path.is_file() for path in written)
    assert "APGR" in console.file.getvalue() and "held-out" in console.file.getvalue()
    scored = sum(made.predicted for made in pair_plugin.made)
    replay_dir = tmp_path / "replay"
    replayed = sweep.sweep_and_report(
        host, sweep_board(), settings(target_share=0.25), replay_dir, console, from_run=run_dir
    )
    assert replayed == [replay_dir / name for name in names[:3]]
    assert sum(made.predicted for made in pair_plugin.made) == scored
    first, second = (json.loads((d / "sweep.json").read_text()) for d in (run_dir, replay_dir))
    assert second["curve"] == first["curve"] and second["target"] == first["target"]


def test_sweep_flags_that_contradict_each_other_are_refused_before_anything_runs():
    sweep.check_sweep_flags(["a", "b"], {"thresholds": "0.5", "guarantee": "accuracy>=0.9"})
    for models, opts, message in [
        (["a"], {}, "two models"),
        (["a", "b"], {"target_share": 0.2, "target_metric": "accuracy=0.9"}, "not both"),
        (["a", "b"], {"batch": 10}, "need --guarantee"),
        (["a", "b"], {"write_board": True}, "give three models"),
        (["a", "b", "c"], {"temperature": True}, "--temperature need two models"),
    ]:
        with pytest.raises(HarnessError, match=message):
            sweep.check_sweep_flags(models, opts)
    board = sweep_board(seed=7, task_opts=("toy.shots=2", "other.x=1"))
    assert board.seed == 7 and board.task_options == {"toy": {"shots": "2"}}
    with pytest.raises(HarnessError, match="accuracy only"):
        sweep.settings_from_options({"guarantee": "class_accuracy>=0.8", "batch": 5}, board)
    chosen = sweep.settings_from_options({"shares": "0:0.5:0.25", "deltas": (0.05,)}, board)
    assert chosen.shares == [0.0, 0.25, 0.5] and chosen.deltas == [0.05] and chosen.seed == 7


@pytest.mark.slow
@pytest.mark.long
def test_real_minilm_smollm2_sweep_on_the_demo_sample_runs_each_model_once(tmp_path):
    pytest.importorskip("accelerate", reason="transformers needs accelerate to load SmolLM2's GGUF file")
    from harness.plugin_manager import PluginHost

    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    board = Board(name="sweep", tasks=["polarity"], data="demo", backend="cpu", limit=8, bootstrap=20,
                  models=[ModelEntry("minilm", options={"epochs": "1"}), ModelEntry("smollm2")],
                  task_options={"polarity": {"train_size": "16"}})  # fmt: skip
    first, results = sweep.run_sweep(host, board, tmp_path, settings(target_share=0.25))
    assert [r["computed"] for r in results["rows"]] == [8, 8]
    second, results = sweep.run_sweep(host, board, tmp_path, settings(target_share=0.25))
    assert [(r["computed"], r["cached"]) for r in results["rows"]] == [(0, 8), (0, 8)]
    assert json.dumps([p.metrics for p in second.curve]) == json.dumps([p.metrics for p in first.curve])
    confidence = np.array([max(r["probs"]) for r in records(tmp_path, "minilm")])
    assert [p.share for p in first.curve] == pytest.approx(
        [np.mean(confidence < t) for t in settings().thresholds]
    )
    assert {p.name for p in sweep.write_outputs(first, tmp_path)} == {"sweep.csv", "sweep.json", "sweep.png"}


def test_a_sweep_into_a_run_directory_keeps_that_runs_files_and_reuses_its_cache(
    host, pair_plugin, tmp_path, monkeypatch
):
    import click

    monkeypatch.setattr(plugin_manager, "_host", host)
    run_dir = tmp_path / "run"
    board = Board(name="five", tasks=["toy"], data="toy:100", backend="cpu", bootstrap=20,
                  models=[ModelEntry("cheap"), ModelEntry("sharp"), ModelEntry("words")])  # fmt: skip
    run_board(host, board, run_dir)
    before = {name: (run_dir / name).read_bytes() for name in ("results.json", "predictions.jsonl")}

    @click.group()
    def cli():
        pass

    sweep.register_commands(cli)
    args = ["sweep", "cheap", "sharp", "--task", "toy", "--data", "toy:100", "--backend", "cpu",
            "--thresholds", "0.6:0.9:0.1", "--bootstrap", "20", "--out", str(run_dir)]  # fmt: skip
    scored = sum(made.predicted for made in pair_plugin.made)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert {name: (run_dir / name).read_bytes() for name in before} == before
    own = run_dir / "sweep-toy-cheap-sharp"
    assert (own / "sweep.json").exists()
    assert json.loads((own / "results.json").read_text())["board"] == "sweep"
    assert sum(made.predicted for made in pair_plugin.made) == scored  # every prediction from the run's cache
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and {name: (run_dir / name).read_bytes() for name in before} == before


def test_a_sweep_with_a_misspelled_model_stops_before_running_the_other(
    host, pair_plugin, tmp_path, monkeypatch
):
    import click

    from harness.preflight_checks import PreflightError

    monkeypatch.setattr(plugin_manager, "_host", host)

    @click.group()
    def cli():
        pass

    sweep.register_commands(cli)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["sweep", "cheap", "shrap", "--task", "toy", "--data", "toy:50",
                                      "--backend", "cpu", "--out", str(out)])  # fmt: skip
    assert isinstance(result.exception, PreflightError) and "did you mean 'sharp'" in str(result.exception)
    assert result.exception.exit_code == 2
    assert all(made.predicted == 0 for made in pair_plugin.made) and not out.exists()
