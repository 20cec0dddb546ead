"""The OpenVINO and ONNX Runtime engines against float32 torch, and engine=auto's measured, cached choice.

Tolerances, on tiny random models whose probabilities are far more sensitive
to rounding than a trained model's: fp32 engines run the same float32 graph
in another order of operations, so probabilities agree to 1e-5; bf16 keeps
8 bits of mantissa (0.02); int8 weights with per-batch activation scales move
them most (0.08, still far below the 0.5 a swapped label column would move).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.plugins.engines import choice as engine_choice
from harness.plugins.engines import export as engine_export
from harness.plugins.models.classifiers import make_hf_classifier
from tests.engine_runs import assert_measured_once_then_cached, run_twice_rows
from tests.tiny_encoders import FakeTask, build_bert, build_distilbert, build_electra, make_ctx

pytestmark = pytest.mark.engines
TEXTS = [
    "Great blender, crushes ice in seconds.",
    "It stopped working after a week and support never answered.",
    "ok",
    "The case fits my phone, the colour is a bit darker than the picture but I like it anyway.",
    "Terrible sound, the left speaker crackles at any volume and the cable is far too short to be useful.",
]
TOLERANCE = {"fp32": 1e-5, "bf16": 0.02, "int8": 0.08}
BUILDERS = {"distilbert": build_distilbert, "bert": build_bert, "electra": build_electra}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("engines")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model directory for the module: an export made by one test is reused by the next."""
    return tmp_path_factory.mktemp("models")


def probs(checkpoint: Path, workdir: Path, **options: str) -> np.ndarray:
    return make_hf_classifier(str(checkpoint), make_ctx(workdir, options)).predict(TEXTS, FakeTask()).probs


def embeddings(checkpoint: Path, workdir: Path, **options: str) -> np.ndarray:
    output = make_hf_classifier(str(checkpoint), make_ctx(workdir, options)).predict(TEXTS, FakeTask())
    assert output.embeddings is not None
    return output.embeddings


@pytest.mark.parametrize("architecture", sorted(BUILDERS))
@pytest.mark.parametrize("engine", ["openvino", "onnxruntime"])
def test_float32_engines_match_torch(
    models: dict[str, Path], model_dir: Path, architecture: str, engine: str
) -> None:
    reference = probs(models[architecture], model_dir, engine="torch")
    assert np.abs(reference[:, 0] - reference[:, 1]).max() > 0.5  # distinct answers, so a swap would show
    same = probs(models[architecture], model_dir, engine=engine, precision="fp32")
    np.testing.assert_allclose(same, reference, atol=TOLERANCE["fp32"])
    # The [CLS] embeddings routers learn from come out of the same exported pass.
    np.testing.assert_allclose(
        embeddings(models[architecture], model_dir, engine=engine, precision="fp32"),
        embeddings(models[architecture], model_dir, engine="torch"),
        atol=1e-4,
    )


@pytest.mark.parametrize(
    ("engine", "precision"), [("openvino", "bf16"), ("openvino", "int8"), ("onnxruntime", "int8")]
)
def test_reduced_precisions_stay_close_to_torch(
    models: dict[str, Path], model_dir: Path, engine: str, precision: str
) -> None:
    from harness.plugins.engines import openvino as openvino_engine

    if precision == "bf16" and not openvino_engine.supported("bf16"):
        pytest.skip("this CPU has no bf16 units")
    reference = probs(models["distilbert"], model_dir, engine="torch")
    changed = probs(models["distilbert"], model_dir, engine=engine, precision=precision)
    assert np.abs(changed - reference).max() > 0  # the precision was applied
    np.testing.assert_allclose(changed, reference, atol=TOLERANCE[precision])


def test_export_is_kept_per_checkpoint_and_settings(models: dict[str, Path], model_dir: Path) -> None:
    probs(models["electra"], model_dir, engine="onnxruntime", precision="fp32")
    exports = sorted(
        p.name for p in (model_dir / "exported").iterdir() if p.name.startswith("onnxruntime-fp32")
    )
    probs(models["electra"], model_dir, engine="onnxruntime", precision="fp32")
    assert (
        sorted(p.name for p in (model_dir / "exported").iterdir() if p.name.startswith("onnxruntime-fp32"))
        == exports
    )
    assert len(exports) == len(BUILDERS) and not any(
        p.name.startswith(".") for p in (model_dir / "exported").iterdir()
    )


def test_a_run_too_small_to_repay_measuring_scores_on_torch_at_once_and_says_why(
    models: dict[str, Path], tmp_path: Path
) -> None:
    from harness import RunSettings
    from harness.boards import Board, ModelEntry
    from harness.plugin_manager import PluginHost
    from harness.run import run_board

    board = Board(name="small", tasks=["polarity"], models=[ModelEntry(f"hf-classifier:{models['bert']}")],
                  data="demo", backend="cpu", limit=40, bootstrap=0, price_per_hour=3600.0,
                  task_options={"polarity": {"train_size": "0"}})  # fmt: skip
    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    [row] = run_board(host, board, tmp_path / "run", RunSettings(model_dir=tmp_path / "models"))["rows"]
    assert row["status"] == "ok", row["error"]
    assert (row["extra"]["engine"], row["extra"]["engine_choice"]) == ("torch-fp32", "budget")
    budget = row["extra"]["engine_budget"]
    assert budget["reviews"] == row["n"] == 40 and budget["measure"] is False
    assert budget["measuring_s_estimate"] > engine_choice.BUDGET_SHARE * budget["saving_s_at_most"]
    assert not (tmp_path / "models" / "engines").exists()  # nothing recorded: a larger run still measures
    # choosing is a one-off of its own: in neither the row's runtime nor its dollars
    assert row["choose_s"] > 0
    assert row["cost"]["usd"] == pytest.approx(row["runtime_s"] + row["fit_s"])


def test_the_budget_measures_where_the_run_repays_it() -> None:
    found = engine_choice.candidates("auto", "auto", "cpu", "float32")
    others = sum(1 for c in found if c.engine != "torch")
    minilm = 22_700_000
    small = engine_choice.Workload(reviews=300, parameters=minilm).budget(found, torch_s_per_review=0.005)
    assert small["measure"] is (others == 0)
    large = engine_choice.Workload(reviews=5_000_000, parameters=minilm).budget(found, 0.005)
    assert large["measure"] is True and large["saving_s_at_most"] > small["saving_s_at_most"]
    forced = engine_choice.Workload(reviews=300, parameters=minilm, always=True).budget(found, 0.005)
    assert forced["measure"] is True


def test_auto_measures_once_records_the_choice_and_reuses_it(
    models: dict[str, Path], model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = run_twice_rows(f"hf-classifier:{models['bert']}", tmp_path, model_dir, monkeypatch)
    chosen = assert_measured_once_then_cached(first, second, model_dir)
    on_disk = json.loads((tmp_path / "second" / "results.json").read_text())["rows"][0]["extra"]
    assert on_disk["engine"] == chosen and on_disk["engine_choice"] == "cached"


def test_an_engine_not_installed_is_one_line_and_auto_goes_without(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(engine_export.INSTALL, "openvino", ("openvino", "not_a_module_anywhere"))
    with pytest.raises(HarnessError, match=r"pip install 'review-harness\[openvino\]'"):
        make_hf_classifier(str(models["bert"]), make_ctx(tmp_path, {"engine": "openvino"}))
    auto = make_hf_classifier(str(models["bert"]), make_ctx(tmp_path, {}))
    assert {c.engine for c in auto.candidates} == {"torch", "onnxruntime"}
    monkeypatch.setattr(engine_choice, "AUTO_ENGINES", ("openvino",))
    alone = make_hf_classifier(str(models["bert"]), make_ctx(tmp_path, {}))
    alone.predict(TEXTS, FakeTask())
    assert alone.run_stats()["engine"] == "torch-fp32" and alone.run_stats()["engine_choice"] == "given"


def test_engine_options_refuse_what_cannot_run(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="has no precision bf16"):
        make_hf_classifier(
            str(models["bert"]), make_ctx(tmp_path, {"engine": "onnxruntime", "precision": "bf16"})
        )
    with pytest.raises(HarnessError, match="compile=true"):
        make_hf_classifier(str(models["bert"]), make_ctx(tmp_path, {"compile": "true"}))
    bf16 = make_ctx(tmp_path, {"engine": "openvino"})
    bf16.backend.dtype = "bfloat16"
    with pytest.raises(HarnessError, match="dtype float32"):
        make_hf_classifier(str(models["bert"]), bf16)


def test_the_default_path_prints_no_deprecation_warning(models: dict[str, Path], model_dir: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        probs(models["distilbert"], model_dir, precision="int8")
    deprecations = [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert deprecations == [], [str(w.message) for w in deprecations]
