"""`harness bench` on tiny inputs: the report's structure and the equalities it relies on, never timings."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pytest

from harness.errors import HarnessError
from harness.plugins.bench import _memory as bench_memory
from harness.plugins.bench import _sample as bench_sample
from harness.plugins.bench import _small as bench_small
from harness.plugins.bench import command as bench
from harness.plugins.models.classifiers import make_hf_classifier
from tests.tiny_encoders import FakeTask, build_distilbert, make_ctx

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BLITZER = DATA / "blitzer_multidomain_sentiment.jsonl"
GIFT_CARDS = DATA / "amazon_reviews_us_Gift_Card_v1_00.tsv"
TEXTS = [
    "Great blender, crushes ice in seconds.",
    "It stopped working after a week and support never answered.",
    "ok",
    "The case fits my phone, the colour is a bit darker than the picture but I like it anyway.",
]
needs_data = pytest.mark.skipif(not BLITZER.is_file(), reason="the shared review data is not here")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_distilbert(tmp_path_factory.mktemp("distilbert"))


def probs(directory: Path, tmp_path: Path, dtype: str = "float32", **options: str) -> np.ndarray:
    ctx = make_ctx(tmp_path, options)
    ctx.backend.dtype = dtype
    return make_hf_classifier(str(directory), ctx).predict(TEXTS, FakeTask()).probs


def test_speed_up_switches_stay_close_to_float32(tiny_dir: Path, tmp_path: Path) -> None:
    reference = probs(tiny_dir, tmp_path, engine="torch")
    assert np.abs(reference - reference.mean(axis=0)).max() > 0.1
    np.testing.assert_allclose(probs(tiny_dir, tmp_path, "bfloat16"), reference, atol=0.08)
    for streams in ("1", "2"):
        same = probs(tiny_dir, tmp_path, engine="torch", batch_size="1", streams=streams)
        np.testing.assert_allclose(same, reference, atol=1e-5)


def test_variants_pass_engines_streams_and_compile_to_the_classifier() -> None:
    openvino = bench_small.VARIANTS["ov-bf16-b8"].options()
    assert openvino["engine"] == "openvino" and openvino["precision"] == "bf16" and "streams" not in openvino
    assert bench_small.VARIANTS["fp32-b1"].options()["engine"] == "torch"
    compiled = {
        key for key, variant in bench_small.VARIANTS.items() if variant.options()["compile"] == "true"
    }
    assert compiled == {"bf16-compile"}
    assert bench_small.VARIANTS["bf16-compile"].dtype == "bfloat16"
    precisions = {variant.precision_name for variant in bench_small.VARIANTS.values()}
    engines = {variant.engine for variant in bench_small.VARIANTS.values()}
    assert precisions == {"fp32", "bf16", "int8"} and engines == {"torch", "openvino", "onnxruntime"}


@pytest.mark.parametrize("encoder_layers", ["stock", "fast"])
def test_flop_count_matches_the_products_the_model_runs(tiny_dir: Path, encoder_layers: str) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from harness.plugins.engines.encoder_layers import use_inference_layers

    model = AutoModelForSequenceClassification.from_pretrained(tiny_dir).eval()
    if encoder_layers == "fast":
        assert use_inference_layers(model)
    inputs = AutoTokenizer.from_pretrained(tiny_dir)(TEXTS[3], return_tensors="pt")
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(**inputs)
    n, d, layers = inputs["input_ids"].shape[1], model.config.dim, model.config.n_layers
    # The counter sees the linear layers; attention's two products are added by hand (queries x keys).
    queries = [n] * layers if encoder_layers == "stock" else [n] * (layers - 1) + [1]
    attention = sum(4 * d * rows * n for rows in queries)
    assert (
        bench_small.model_flops(tiny_dir, [TEXTS[3]], encoder_layers) == counter.get_total_flops() + attention
    )
    both = bench_small.model_flops(tiny_dir, TEXTS[:2], encoder_layers)
    assert both == sum(bench_small.model_flops(tiny_dir, [text], encoder_layers) for text in TEXTS[:2])


def test_peak_is_taken_on_the_kernel_the_fast_path_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bench_small.int8_matmul_peak(size=128, repeats=1) > 0
    monkeypatch.setattr(bench_small, "int8_matmul_peak", lambda: 300.0)
    monkeypatch.setattr(bench_small, "matmul_peak", lambda dtype: {"float32": 90.0, "bfloat16": 200.0}[dtype])
    variants = bench_small.VARIANTS
    assert bench_small.kernel_peak(variants["ort-int8-b8"]) == ("int8 matmul", 300.0)
    assert bench_small.kernel_peak(variants["ov-int8-b8"]) == ("int8 matmul", 300.0)
    assert bench_small.kernel_peak(variants["ov-bf16-b8"]) == ("bf16 matmul", 200.0)
    assert bench_small.kernel_peak(variants["bf16-b8"]) == ("bf16 matmul", 200.0)
    assert bench_small.kernel_peak(variants["fp32-b16"]) == ("fp32 matmul", 90.0)


def test_share_of_peak_names_its_kernel() -> None:
    small = {
        "fast_path": "ov-int8-b8",
        "speedup": 5.5,
        "share_of_peak": 0.6,
        "fp32_harness_agrees_with_study": 1.0,
    }
    checks = bench.checks_for({"small": {**small, "peak_kernel": "int8 matmul"}})
    assert checks[1].figure == "GFLOP/s share of int8 matmul peak" and checks[1].passed
    table = bench.render(checks)
    rows = table.splitlines()
    assert len({row.index(" PASS") if "PASS" in row else row.index(" result") for row in rows}) == 1
    assert "GFLOP/s share of int8 matmul peak" in table


def test_speed_target_is_the_machines() -> None:
    target, basis = bench_small.speed_target()
    amx = "amx_bf16" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else False
    assert (target, "AMX" in basis.split(":")[1] and "without" not in basis) == (
        (5.0, True) if amx else (4.0, False)
    )
    small = {"fast_path": "bf16-b8", "share_of_peak": 0.6, "fp32_harness_agrees_with_study": 1.0}
    at_five = {c.figure: c for c in bench.checks_for({"small": {**small, "speedup": 4.5, "target": 5.0}})}
    at_four = {c.figure: c for c in bench.checks_for({"small": {**small, "speedup": 4.5, "target": 4.0}})}
    figure = "reviews/s, harness (bf16-b8) / study's pipeline"
    assert (at_five[figure].passed, at_five[figure].target) == (False, ">= 5x")
    assert (at_four[figure].passed, at_four[figure].target) == (True, ">= 4x")


def test_checks_and_table_flag_each_target() -> None:
    report = {
        "small": {
            "fast_path": "bf16-b8",
            "speedup": 4.5,
            "share_of_peak": 0.4,
            "fp32_harness_agrees_with_study": 1.0,
        },
        "scoring": {"speedup": 2.0, "max_rel_loglik_diff": 2e-6},
        "overhead": {"overhead_share": 0.04},
        "memory": {"difference_mb": 12.0},
    }
    checks = {check.figure: check.passed for check in bench.checks_for(report)}
    assert checks["reviews/s, harness (bf16-b8) / study's pipeline"] is True
    assert checks["GFLOP/s share of matmul peak"] is False
    assert checks["shared encoder / full pass per label"] is False
    assert checks["max relative log-likelihood difference"] is True
    assert checks["run time outside forward, tokenizing, loading"] is False  # 4% is over the 3% target
    table = bench.render(bench.checks_for(report))
    assert table.count("PASS") == 4 and table.count("FAIL") == 3


def test_unknown_parts_are_refused() -> None:
    with pytest.raises(click.BadParameter, match="choose from"):
        bench.parse_parts(None, None, "small,gpu")


def test_register_commands_adds_bench() -> None:
    group = click.Group()
    bench.register_commands(group)
    assert "bench" in group.commands


def test_missing_data_is_a_one_line_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from harness.cli import HarnessGroup

    group = HarnessGroup()
    bench.register_commands(group)
    missing = tmp_path / "missing.jsonl"
    result = CliRunner().invoke(group, ["bench", "--data", str(missing), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and f"no review data at {missing}" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


@needs_data
def test_tsv_copies_keep_the_release_format_with_new_ids(tmp_path: Path) -> None:
    path = bench_memory.write_tsv(GIFT_CARDS, tmp_path / "rows.tsv", 2000)
    header, *rows = path.read_text().splitlines()
    assert header.split("\t")[2] == "review_id" and len(rows) == 2000
    assert all(row.count("\t") == 14 for row in rows)
    assert len({row.split("\t")[2] for row in rows}) == 2000


@pytest.mark.slow
@pytest.mark.long
@needs_data
def test_small_part_harness_fp32_matches_the_study_pipeline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bench_small, "build_distilbert_base", lambda d, seed=0: build_distilbert(d))
    sample = bench_sample.draw(str(BLITZER), 6, 0, 0, tmp_path)
    passing = set(bench_small.VARIANTS) - {"ort-int8-b1"}
    report = bench_small.speed(
        [e.text for e in sample.scored], 6, tmp_path, lambda speeds: bench_small.choose_fast(passing, speeds)
    )
    assert report["reviews"] == 6 and len(report["variants"]) == len(bench_small.VARIANTS)
    assert report["fp32_harness_agrees_with_study"] == 1.0
    assert report["speedup"] > 0 and report["share_of_peak"] > 0 and report["fp32_matmul_peak_gflops"] > 0
    assert report["fast_path"] in passing
    assert {v["variant"] for v in report["variants"]} == {v.name for v in bench_small.VARIANTS.values()}
    compiled = [v for v in report["variants"] if "torch.compile" in v["variant"]]
    compiling = [v for v in bench_small.VARIANTS.values() if "torch.compile" in v.name]
    assert len(compiled) == len(compiling) >= 1 and all("graphs_compiled_while_timed" in v for v in compiled)


def sorted_reviews(path: Path, per_label: int) -> Path:
    """A JSON-lines file stored in blocks by label, as the Blitzer file is: all negatives, then positives."""
    import json

    with open(path, "w", encoding="utf-8") as out:
        for label, stars in enumerate((1, 5)):
            for index in range(per_label):
                words = ("awful", "lovely")[label]
                record = {
                    "review_id": f"r{label}-{index}",
                    "review_body": f"{words} {index}",
                    "star_rating": stars,
                }
                out.write(json.dumps(record) + "\n")
    return path


def test_samples_are_balanced_seeded_and_keep_train_apart(tmp_path: Path) -> None:
    data = str(sorted_reviews(tmp_path / "sorted.jsonl", 60))
    sample = bench_sample.draw(data, 20, 30, 0, tmp_path)
    assert sample.counts() == {
        "scored": {"negative": 10, "positive": 10},
        "train": {"negative": 15, "positive": 15},
        "available": {"negative": 60, "positive": 60},
    }
    assert [e.label for e in sample.scored[:4]] == [0, 1, 0, 1]
    assert not {e.id for e in sample.scored} & {e.id for e in sample.train}
    assert sample == bench_sample.draw(data, 20, 30, 0, tmp_path)
    assert sample.scored != bench_sample.draw(data, 20, 30, 1, tmp_path).scored
    smaller = bench_sample.draw(data, 10, 0, 0, tmp_path)
    assert {e.id for e in smaller.scored} <= {e.id for e in sample.scored} and smaller.train == []
    assert "10 negative + 10 positive scored, 15 negative + 15 positive train" in sample.describe()


def test_a_small_file_shrinks_both_splits_alike(tmp_path: Path) -> None:
    demo = bench_sample.draw("demo", 1000, 500, 0, tmp_path)
    counts = demo.counts()
    negatives = counts["available"]["negative"]
    assert negatives < counts["available"]["positive"]
    assert counts["scored"]["negative"] == counts["scored"]["positive"] == round(negatives * 500 / 750)
    assert (
        counts["train"]["negative"] == counts["train"]["positive"] == negatives - counts["scored"]["negative"]
    )


def test_data_without_both_labels_or_missing_is_refused(tmp_path: Path) -> None:
    path = sorted_reviews(tmp_path / "sorted.jsonl", 5)
    one_label = tmp_path / "negative.jsonl"
    one_label.write_text("".join(path.read_text().splitlines(keepends=True)[:5]))
    with pytest.raises(HarnessError, match="holds no positive reviews"):
        bench_sample.draw(str(one_label), 4, 0, 0, tmp_path)
    with pytest.raises(HarnessError, match="no review data at"):
        bench_sample.draw(str(tmp_path / "missing.jsonl"), 4, 0, 0, tmp_path)


def test_scored_reviews_written_for_a_run_read_back_unchanged(tmp_path: Path) -> None:
    sample = bench_sample.draw("demo", 12, 0, 0, tmp_path)
    path = sample.write_scored(tmp_path / "scored.jsonl")
    again = bench_sample.draw(str(path), 12, 0, 0, tmp_path)
    assert sorted(again.scored, key=lambda e: e.id) == sorted(sample.scored, key=lambda e: e.id)


def test_accuracy_of_a_one_label_classifier_is_not_better_than_chance() -> None:
    gold = np.array([0, 1] * 50)
    one_label = np.tile([0.2, 0.8], (100, 1))
    result = bench_small.accuracy(gold, one_label)
    assert result["accuracy"] == 0.5 and result["per_label"] == {"negative": 0.0, "positive": 1.0}
    assert result["answers"] == {"negative": 0, "positive": 100}
    assert not result["better_than_chance"]
    assert bench_small.accuracy(gold, np.eye(2)[gold])["better_than_chance"]


def test_fast_path_is_the_fastest_path_within_the_agreement_bar() -> None:
    speeds = {"ort-int8-b1": 30.0, "bf16-b8": 20.0, "bf16-b1": 18.0, "fp32-b1": 9.0}
    chosen, why = bench_small.choose_fast({"bf16-b8", "bf16-b1", "fp32-b1"}, speeds)
    assert chosen.key == "bf16-b8" and "fastest" in why
    assert bench_small.choose_fast({"ort-int8-b1", "fp32-b1"}, speeds)[0].key == "ort-int8-b1"
    assert bench_small.choose_fast(None, speeds)[0].key == bench_small.FALLBACK_FAST
    assert (
        bench_small.choose_fast({"fp32-b1", bench_small.FALLBACK_FAST}, {})[0].key
        == bench_small.FALLBACK_FAST
    )
    assert bench_small.choose_fast({"fp32-b1"}, {})[0].key == "fp32-b1"


def test_agreement_with_a_classifier_no_better_than_chance_picks_no_path() -> None:
    rows = {"ov-int8-b8": {"passes": False}, "bf16-b8": {"passes": True}}
    quality = {"accuracy": {"better_than_chance": True}, "by_variant": rows}
    assert bench_small.passing_paths(quality) == {bench_small.REFERENCE, "bf16-b8"}
    assert bench_small.passing_paths({**quality, "accuracy": {"better_than_chance": False}}) is None


def quality_report(fast: str, agreement: float) -> dict:
    row = {
        "argmax_agreement": agreement,
        "flipped": round((1 - agreement) * 1000),
        "passes": agreement >= 0.995,
    }
    return {
        "fast_path": {"key": fast},
        "small": {
            "fast_path": fast,
            "speedup": 4.5,
            "share_of_peak": 0.6,
            "fp32_harness_agrees_with_study": 1.0,
        },
        "quality": {
            "reviews": 1000,
            "agreement_bar": 0.995,
            "accuracy": {"interval": [0.8, 0.86], "better_than_chance": True},
            "by_variant": {fast: row},
        },
    }


def test_speed_target_fails_on_a_path_that_flips_answers() -> None:
    checks = {c.figure: c.passed for c in bench.checks_for(quality_report("ort-int8-b1", 0.917))}
    assert checks["fast path (ort-int8-b1) argmax agreement with fp32"] is False
    assert checks["reviews/s, harness (ort-int8-b1) / study's pipeline"] is False
    assert checks["fine-tuned MiniLM accuracy, 95% interval low"] is True
    kept = {c.figure: c.passed for c in bench.checks_for(quality_report("bf16-b8", 1.0))}
    assert all(kept.values())


def perturbed_fast_layers(use_inference_layers):
    """The fast encoder layers with every linear weight perturbed by noise of a tenth of its spread: a damaged path."""
    import torch

    def damaged(model):
        converted = use_inference_layers(model)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.Linear):
                    weight = module.weight
                    weight += 0.1 * weight.std() * torch.randn(weight.shape, generator=generator)
        return converted

    return damaged


def test_quality_check_fails_for_a_damaged_path_on_balanced_data(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.plugins.models import classifiers

    sample = bench_sample.draw("demo", 24, 0, 0, tmp_path)
    paths = {key: bench_small.VARIANTS[key] for key in (bench_small.REFERENCE, "fp32-b1")}
    monkeypatch.setattr(bench_small, "VARIANTS", paths)
    intact = bench_small.quality(sample, tmp_path, tiny_dir)
    assert sum(e.label for e in sample.scored) == 12
    assert min(intact["accuracy"]["answers"].values()) > 0  # the reference answers both labels
    assert intact["by_variant"]["fp32-b1"]["passes"] and intact["by_variant"]["fp32-b1"]["flipped"] == 0

    monkeypatch.setattr(
        classifiers, "use_inference_layers", perturbed_fast_layers(classifiers.use_inference_layers)
    )
    report = bench_small.quality(sample, tmp_path, tiny_dir)
    damaged = report["by_variant"]["fp32-b1"]
    assert not damaged["passes"] and damaged["flipped"] > 0.005 * report["reviews"]
    passing = {bench_small.REFERENCE, *(key for key, row in report["by_variant"].items() if row["passes"])}
    assert bench_small.choose_fast(passing, {"fp32-b1": 9.0, bench_small.REFERENCE: 8.0})[0].key != "fp32-b1"
    forced = {"fast_path": {"key": "fp32-b1"}, "quality": report}
    assert [c.passed for c in bench.checks_for(forced) if "agreement" in c.figure] == [False]


def test_llama_part_checks_category_speed_and_agreement_per_task_and_weights() -> None:
    figures = {"speedup": 3.2, "argmax_agreement": 0.98}
    by_task = {"labels": 11, "reviews_per_s": {}, "llama_cpp_by_weights": {"float32": figures}}
    slower = {**by_task, "llama_cpp_by_weights": {"float32": {**figures, "speedup": 0.9}}}
    report = {"llama": {"by_task": {"category": by_task, "polarity": slower}}}
    checks = {check.figure: check.passed for check in bench.checks_for(report)}
    assert checks == {
        "category: reviews/s, llama.cpp float32 / transformers": True,
        "category: llama.cpp float32 argmax agreement with transformers": False,
        "polarity: reviews/s, llama.cpp float32 / transformers": False,
        "polarity: llama.cpp float32 argmax agreement with transformers": False,
    }
    assert bench.parse_parts(None, None, "llama") == ["llama"]  # type: ignore[arg-type]


def test_overhead_part_counts_forward_tokenizing_and_load_seconds_from_the_run(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    shutil.copytree(tiny_dir, tmp_path / "distilbert-base")
    sample = bench_sample.draw("demo", 24, 0, 0, tmp_path)
    report = bench_small.overhead(sample, tmp_path, bench_small.VARIANTS["fp32-b16"])
    assert report["reviews"] == 24
    model_s = report["forward_s"] + report["tokenize_s"] + report["load_s"]
    assert report["forward_s"] > 0 and report["tokenize_s"] > 0 and report["load_s"] > 0
    assert 0 < report["overhead_share"] == pytest.approx((report["wall_s"] - model_s) / report["wall_s"])
    assert report["overhead_share"] < report["overhead_with_tokenizing_share"] < 1
    assert report["overhead_share"] < report["overhead_with_load_share"] < 1
    assert report["first_run_overhead_s"] > 0
    assert (tmp_path / "overhead-warm-up" / "results.json").is_file()  # the warm-up is a run of its own


def test_reading_the_checkpoints_label_names_counts_as_loading(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from transformers import AutoConfig

    read = AutoConfig.from_pretrained.__func__  # type: ignore[attr-defined]
    pause = 1.5
    reads = []

    def slow_read(cls: type, *args: object, **kwargs: object) -> object:
        reads.append(args)
        time.sleep(pause)
        return read(cls, *args, **kwargs)

    monkeypatch.setattr(AutoConfig, "from_pretrained", classmethod(slow_read))
    model = make_hf_classifier(str(tiny_dir), make_ctx(tmp_path, {"engine": "torch"}))
    model.predict(TEXTS, FakeTask())
    # Two reads at least: the label map's and the loading's own.
    assert model.run_stats()["load_s"] >= pause * len(reads) >= 2 * pause
