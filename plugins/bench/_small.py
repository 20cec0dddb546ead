"""`harness bench` parts `small`, `quality`, `overhead`: the small model's inference against the study's way.

The study called a transformers ``text-classification`` pipeline once per
review in float32. Here the same DistilBERT-base architecture (random weights:
speed does not depend on them) scores the same reviews both ways; each speed-up
switch is timed on its own (``torch.compile`` variants after a warm-up that
compiles them, so compile time is not counted), and its effect on predictions is
measured on a MiniLM fine-tuned on balanced reviews, where agreement means
something. The variants cover every engine (torch, OpenVINO, ONNX Runtime;
those not installed are left out and listed) and precision. A path that flips
more than 0.5% of that model's answers is never the fast path the targets are
checked on: the fast path is what ``engine=auto`` would choose, the fastest
within the bar. The GFLOP/s share is taken against the peak of a square matrix
product in the fast path's precision (int8 with int32 accumulation for int8);
the fp32 matmul peak is reported too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ModelContext
from harness.errors import HarnessError
from harness.plugins.bench._sample import LABELS, Sample

AGREEMENT_BAR = 0.995  # the share of fp32's answers a speed-up path must keep
REFERENCE = "fp32-b1-stock"  # the whole float32 model, transformers' own layers


@dataclass(frozen=True)
class Variant:
    """One inference configuration of the harness' classifier.

    Engine and its precision (torch: the weights' dtype), batch size, streams
    (None: the engine's default), ``torch.compile``, and the harness' fast
    encoder layers or transformers' stock ones.
    """

    key: str
    name: str
    dtype: str = "float32"
    batch_size: int = 1
    engine: str = "torch"
    precision: str = "auto"
    streams: int | None = None
    compile: bool = False
    encoder_layers: str = "fast"

    def options(self) -> dict[str, str]:
        options = {
            "engine": self.engine,
            "precision": self.precision,
            "batch_size": str(self.batch_size),
            "compile": "true" if self.compile else "false",
            "truncation": "head",
            "encoder_layers": self.encoder_layers,
        }
        if self.streams is not None:
            options["streams"] = str(self.streams)
        return options

    @property
    def precision_name(self) -> str:
        """fp32, bf16 or int8: the engine's precision, or for torch the weights' dtype."""
        return DTYPE_NAMES.get(self.dtype, self.dtype) if self.engine == "torch" else self.precision

    def available(self) -> bool:
        """Whether this variant's engine is installed here."""
        from harness.plugins.engines.export import missing

        return not missing(self.engine)


VARIANTS = {
    variant.key: variant
    for variant in (
        Variant("fp32-b1-stock", "torch fp32, batch 1, transformers' stock layers", encoder_layers="stock"),
        Variant("fp32-b1", "torch fp32, batch 1 (no padding)"),
        Variant("fp32-b16", "torch fp32, batch 16 (length-sorted)", batch_size=16),
        Variant("bf16-b1", "torch bf16 weights, batch 1", dtype="bfloat16"),
        Variant("bf16-b8", "torch bf16 weights, batch 8", dtype="bfloat16", batch_size=8),
        Variant(
            "bf16-compile", "torch bf16 weights + torch.compile, batch 1", dtype="bfloat16", compile=True
        ),
        Variant("ov-fp32-b8", "OpenVINO fp32, batch 8", batch_size=8, engine="openvino", precision="fp32"),
        Variant("ov-bf16-b8", "OpenVINO bf16, batch 8", batch_size=8, engine="openvino", precision="bf16"),
        Variant(
            "ov-int8-b8", "OpenVINO int8 weights, batch 8", batch_size=8, engine="openvino", precision="int8"
        ),
        Variant(
            "ort-fp32-b8", "ONNX Runtime fp32, batch 8", batch_size=8, engine="onnxruntime", precision="fp32"
        ),
        Variant("ort-int8-b1", "ONNX Runtime int8, batch 1", engine="onnxruntime", precision="int8"),
        Variant(
            "ort-int8-b8", "ONNX Runtime int8, batch 8", batch_size=8, engine="onnxruntime", precision="int8"
        ),
    )
}
FALLBACK_FAST = "bf16-b8"
AUTO = "auto"


class BinaryTask:
    """Polarity as the benchmark needs it: labels and a fingerprint (examples come from the bench)."""

    name = "bench-polarity"
    labels: tuple[str, ...] = LABELS
    label_words: tuple[str, ...] = LABELS
    prompt = "{text}"

    def split(self, reviews: Any, *, limit: int | None, seed: int) -> Any:
        raise NotImplementedError("the benchmark feeds examples directly")

    def metrics(self, gold: Any, probs: Any) -> dict[str, float]:
        return {}

    def fingerprint(self) -> str:
        return self.name


def build_distilbert_base(directory: Path, seed: int = 0) -> Path:
    """DistilBERT-base (6 layers, hidden 768) with random weights and the uncased WordPiece vocabulary."""
    import torch
    from transformers import (  # type: ignore[attr-defined]  # BertTokenizerFast is exported lazily
        BertTokenizerFast,
        DistilBertConfig,
        DistilBertForSequenceClassification,
    )

    from harness.plugins.models.classifiers import _minilm_path

    torch.manual_seed(seed)
    config = DistilBertConfig(id2label=dict(enumerate(LABELS)), label2id={v: i for i, v in enumerate(LABELS)})
    DistilBertForSequenceClassification(config).save_pretrained(directory)
    vocab = Path(_minilm_path()) / "vocab.txt"
    BertTokenizerFast(vocab_file=str(vocab), model_max_length=512).save_pretrained(directory)
    return directory


def context(workdir: Path, dtype: str, options: Mapping[str, str]) -> ModelContext:
    from harness.plugins.backends.torch_devices import make_cpu

    def nothing_nested(spec: str) -> Any:
        raise ValueError(f"the benchmark builds no nested model ({spec})")

    return ModelContext(
        backend=make_cpu({"dtype": dtype}),
        workdir=workdir,
        seed=0,
        options=dict(options),
        build_model=nothing_nested,
        build_router=nothing_nested,
    )


def classifier(checkpoint: Path, variant: Variant, workdir: Path) -> Any:
    from harness.plugins.models.classifiers import make_hf_classifier

    return make_hf_classifier(str(checkpoint), context(workdir, variant.dtype, variant.options()))


def timed_predict(model: Any, texts: Sequence[str]) -> tuple[Any, float]:
    """Probabilities and seconds for `texts`, after an untimed warm-up on two of them."""
    probs, seconds, _ = timed_run(model, texts)
    return probs, seconds


def timed_run(model: Any, texts: Sequence[str], count_compiles: bool = False) -> tuple[Any, float, int]:
    """`timed_predict`, plus how many graphs ``torch.compile`` compiled in the timed pass (if counted).

    The warm-up compiles a ``torch.compile`` model, so compile time stays out of
    the timing; a count above 0 means shapes in the timed pass still compiled.
    """
    task = BinaryTask()
    model.predict(list(texts[:2]), task)
    compiled = graphs_compiled() if count_compiles else 0
    began = time.perf_counter()
    probs = model.predict(list(texts), task).probs
    seconds = time.perf_counter() - began
    return probs, seconds, (graphs_compiled() - compiled if count_compiles else 0)


def graphs_compiled() -> int:
    """How many graphs ``torch.compile`` has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def pipeline_way(checkpoint: Path, texts: Sequence[str]) -> tuple[Any, float]:
    """The study's way: one pipeline call per review, float32, truncation on; probabilities [n, 2]."""
    import numpy as np
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(checkpoint), device="cpu", top_k=None)
    pipe(list(texts[:2]), truncation=True)
    rows = []
    began = time.perf_counter()
    for text in texts:
        answer = pipe(text, truncation=True)
        items = answer[0] if isinstance(answer[0], list) else answer
        scores = {item["label"]: item["score"] for item in items}
        rows.append([scores[label] for label in LABELS])
    return np.array(rows), time.perf_counter() - began


DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def matmul_peak(dtype: str, size: int = 2048, repeats: int = 5) -> float:
    """The machine's matrix-multiply rate in GFLOP/s for `dtype`: best of `repeats` square products."""
    import torch

    torch_dtype = getattr(torch, dtype)
    a = torch.randn(size, size).to(torch_dtype)
    b = torch.randn(size, size).to(torch_dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - began)
    return 2 * size**3 / best / 1e9


def int8_matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """The machine's int8 matrix-multiply rate in GOP/s (int32 accumulation): best of `repeats` square products."""
    import torch

    a = torch.randint(-128, 128, (size, size), dtype=torch.int8)
    b = torch.randint(-128, 128, (size, size), dtype=torch.int8)
    torch._int_mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        torch._int_mm(a, b)
        best = min(best, time.perf_counter() - began)
    return 2 * size**3 / best / 1e9


def kernel_peak(variant: Variant) -> tuple[str, float]:
    """The kernel that does most of `variant`'s work, named, and its peak rate in G(FL)OP/s."""
    precision = variant.precision_name
    if precision == "int8":
        return "int8 matmul", int8_matmul_peak()
    return f"{precision} matmul", matmul_peak({"bf16": "bfloat16"}.get(precision, "float32"))


def model_flops(checkpoint: Path, texts: Sequence[str], encoder_layers: str, max_length: int = 512) -> float:
    """Matrix-multiply FLOPs of scoring `texts` unpadded, counting only the work the model does.

    Per layer and token, 2 * (4 d^2 + 2 d h) for the linear layers; attention
    adds 4 d n^2 per layer for a sequence of n tokens; the head 2 * (d^2 + d k)
    per sequence. The fast encoder layers' last layer projects keys and values
    for every token and everything else for one.
    """
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    lengths = [
        len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    ]
    d, hidden, layers = config.dim, config.hidden_dim, config.n_layers
    layer_per_token = 4 * d * d + 2 * d * hidden
    head = d * d + d * config.num_labels
    whole_layers = layers - 1 if encoder_layers == "fast" else layers
    total = 0.0
    for n in lengths:
        total += 2 * (whole_layers * layer_per_token * n + head) + whole_layers * 4 * d * n * n
        if whole_layers < layers:
            total += 2 * (2 * d * d * n + layer_per_token - 2 * d * d) + 4 * d * n
    return total


def installed() -> list[Variant]:
    """The variants whose engine is installed here."""
    return [variant for variant in VARIANTS.values() if variant.available()]


def agreement(reference: Any, other: Any) -> float:
    return float((reference.argmax(1) == other.argmax(1)).mean())


def passing_paths(quality: Mapping[str, Any]) -> set[str] | None:
    """The paths within the agreement bar, the reference among them.

    None when the fine-tuned classifier is no better than chance: its
    answers barely depend on the review, so agreement with them shows nothing.
    """
    if not quality["accuracy"]["better_than_chance"]:
        return None
    return {REFERENCE, *(key for key, row in quality["by_variant"].items() if row["passes"])}


def speed_target() -> tuple[float, str]:
    """The speed-up the fast path must reach here, and why: 5x on an AMX processor, 4x on any other.

    5x is what the development machine (Intel Xeon with AMX-BF16 and AMX-INT8)
    reaches with its bf16 and int8 matrix units; a CPU without AMX has no such
    units, and 4x is the target that holds on any machine.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if "amx_bf16" in flags:
        return 5.0, "5x: an AMX processor, like the development machine"
    return 4.0, "4x: a processor without AMX (the target on any machine)"


def choose_fast(passing: Collection[str] | None, speeds: Mapping[str, float]) -> tuple[Variant, str]:
    """The fast path and why: the fastest timed variant among those that keep fp32's answers.

    `passing` holds the variants within the agreement bar on the fine-tuned
    MiniLM; None when the run measured no agreement that means something (no
    quality part, or a classifier no better than chance): then the fallback
    path, within the bar on the development machine, is the only candidate.
    Without timings: the fallback path if it passes, else fp32.
    """
    if passing is None:
        return VARIANTS[FALLBACK_FAST], "the fallback path (no agreement measured in this run)"
    timed = [key for key in VARIANTS if key in passing and key in speeds]
    if timed:
        return VARIANTS[max(timed, key=lambda key: speeds[key])], "the fastest timed path within the bar"
    if FALLBACK_FAST in passing:
        return VARIANTS[FALLBACK_FAST], "the fallback path, within the bar (no path timed in this run)"
    return VARIANTS["fp32-b1"], "fp32: the fallback path fails the agreement bar (no path timed in this run)"


def speed(
    texts: Sequence[str],
    variant_reviews: int,
    workdir: Path,
    choose: Callable[[Mapping[str, float]], tuple[Variant, str]],
) -> dict[str, Any]:
    """Reviews/s of the study's way and of every variant, then of the fast path `choose` picks from them."""
    checkpoint = build_distilbert_base(workdir / "distilbert-base")
    base_probs, base_s = pipeline_way(checkpoint, texts)
    base_rate = len(texts) / base_s
    variants: list[dict[str, Any]] = []
    for variant in installed():
        subset = texts[:variant_reviews]
        model = classifier(checkpoint, variant, workdir)
        probs, seconds, compiled = timed_run(model, subset, count_compiles=variant.compile)
        row = {
            "key": variant.key,
            "variant": variant.name,
            "reviews_per_s": len(subset) / seconds,
            "speedup_vs_study": len(subset) / seconds / base_rate,
            "argmax_agreement_with_study": agreement(base_probs[: len(subset)], probs),
        }
        if variant.compile:
            row["graphs_compiled_while_timed"] = compiled
        variants.append(row)
    fast, reason = choose({row["key"]: row["reviews_per_s"] for row in variants})
    fast_probs, fast_s = timed_predict(classifier(checkpoint, fast, workdir), texts)
    fp32_probs, _ = timed_predict(classifier(checkpoint, VARIANTS["fp32-b16"], workdir), texts)
    flops = model_flops(checkpoint, texts, fast.encoder_layers)
    kernel, peak = kernel_peak(fast)
    target, basis = speed_target()
    return {
        "reviews": len(texts),
        "target": target,
        "target_basis": basis,
        "not_installed": [variant.key for variant in VARIANTS.values() if not variant.available()],
        "study_reviews_per_s": base_rate,
        "fast_path": fast.key,
        "fast_path_chosen_as": reason,
        "fast_reviews_per_s": len(texts) / fast_s,
        "speedup": (len(texts) / fast_s) / base_rate,
        "fast_agrees_with_study": agreement(base_probs, fast_probs),
        "fp32_harness_agrees_with_study": agreement(base_probs, fp32_probs),
        "study_gflops": flops / base_s / 1e9,
        "fast_gflops": flops / fast_s / 1e9,
        "peak_kernel": kernel,
        "peak_gflops": peak,
        "fp32_matmul_peak_gflops": peak if kernel == "fp32 matmul" else matmul_peak("float32"),
        "share_of_peak": flops / fast_s / 1e9 / peak,
        "variants": variants,
    }


def finetuned_minilm(sample: Sample, workdir: Path) -> Path:
    """MiniLM fine-tuned for two epochs on the sample's balanced train reviews (never scored)."""
    from harness.plugins.models.classifiers import make_minilm

    options = {"epochs": "2", "min_steps": "1", "train_max_length": "128", "engine": "torch"}
    model = make_minilm(None, context(workdir, "float32", options))
    model.fit(sample.train, BinaryTask())
    result = model.finetuned(BinaryTask())
    if result is None:
        raise HarnessError("MiniLM was not fine-tuned for the bench; its labels should not have fitted")
    return Path(result.path)


def accuracy(gold: Any, probs: Any) -> dict[str, Any]:
    """Accuracy overall and per label with the overall bootstrap 95% interval.

    On balanced reviews chance is 50%, so an interval above it shows a
    classifier whose answers a speed-up could flip, not one that answers a single label.
    """
    import numpy as np

    from harness.intervals import bootstrap_intervals

    def metric(gold: Any, probs: Any) -> dict[str, float]:
        return {"accuracy": float((probs.argmax(1) == gold).mean())}

    gold = np.asarray(gold)
    low, high = bootstrap_intervals(metric, gold, probs)["accuracy"]
    answers = probs.argmax(1)
    return {
        **metric(gold, probs),
        "interval": [low, high],
        "per_label": {name: float((answers == gold)[gold == i].mean()) for i, name in enumerate(LABELS)},
        "answers": {name: int((answers == i).sum()) for i, name in enumerate(LABELS)},
        "better_than_chance": low > 0.5,
    }


def path_agreement(reference: Any, probs: Any) -> dict[str, Any]:
    """How often a path keeps the reference's answer, the answers it flips, and whether it passes the bar."""
    share = agreement(reference, probs)
    return {
        "argmax_agreement": share,
        "flipped": int((reference.argmax(1) != probs.argmax(1)).sum()),
        "max_abs_prob_diff": float(abs(reference - probs).max()),
        "passes": share >= AGREEMENT_BAR,
    }


def quality(sample: Sample, workdir: Path, minilm_dir: Path | None) -> dict[str, Any]:
    """Each path's argmax agreement with the whole float32 model, on a MiniLM shown better than chance."""
    import numpy as np

    checkpoint = minilm_dir or finetuned_minilm(sample, workdir)
    texts = [e.text for e in sample.scored]
    reference, _ = timed_predict(classifier(checkpoint, VARIANTS[REFERENCE], workdir), texts)
    rows = {}
    for variant in installed():
        if variant.key != REFERENCE:
            probs, _ = timed_predict(classifier(checkpoint, variant, workdir), texts)
            rows[variant.key] = path_agreement(reference, probs)
    return {
        "checkpoint": str(checkpoint),
        "reviews": len(texts),
        "reference": REFERENCE,
        "agreement_bar": AGREEMENT_BAR,
        "accuracy": accuracy(np.array([e.label for e in sample.scored]), reference),
        "by_variant": rows,
    }


def overhead(sample: Sample, workdir: Path, fast: Variant) -> dict[str, Any]:
    """Share of a `run_board` run's wall time spent outside the model's own work (target < 3%).

    The run reads the sample's scored reviews from a JSON-lines file of their
    own, as the text the sample holds (markup kept), and its model directory is
    the bench's, where the speed part left the fast path's export. The model's
    work is the classifier's own count of seconds: its engine on padded
    batches (``forward_s`` in the row), every engine alike, its tokenizer
    cutting reviews into windows (``tokenize_s``), and loading the weights and
    compiling the engine (``load_s``). The overhead checked is what remains,
    what the harness adds to scoring reviews with the model: reading,
    caching, writing predictions, metrics, intervals, and the run's report and
    plots. Loading is left out as the study's pipeline timing leaves it out,
    and tokenizing because the study's pipeline and any script calling the
    model pay it too; the shares with each are reported beside
    (``overhead_with_tokenizing_share``, ``overhead_with_load_share``).

    The timed run follows an untimed warm-up run on two of the reviews in the
    same process, as every speed figure here is timed after a warm-up: what a
    process pays once (importing the plotting library, reading its fonts) is
    left out, and reported as the warm-up's seconds outside the model's work
    (``first_run_overhead_s``).
    """
    from dataclasses import replace

    from harness import PluginHost
    from harness.boards import Board, ModelEntry

    checkpoint = workdir / "distilbert-base"
    if not checkpoint.is_dir():
        build_distilbert_base(checkpoint)
    board = Board(
        name="bench-overhead",
        tasks=["polarity"],
        models=[ModelEntry(f"hf-classifier:{checkpoint}", options=fast.options())],
        data=str(sample.write_scored(workdir / "overhead-reviews.jsonl")),
        backend="cpu",
        backend_options={"dtype": fast.dtype},
        bootstrap=200,
        task_options={"polarity": {"sample": "first", "train_size": "0", "markup": "keep"}},
    )
    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    warm_up, warm_up_wall = _timed_run(host, replace(board, limit=2), workdir / "overhead-warm-up", workdir)
    row, wall = _timed_run(host, board, workdir / "overhead-run", workdir)
    forward, tokenize, load = (row["extra"][key] for key in ("forward_s", "tokenize_s", "load_s"))
    return {
        "reviews": row["n"],
        "wall_s": wall,
        "forward_s": forward,
        "tokenize_s": tokenize,
        "load_s": load,
        "overhead_share": (wall - forward - tokenize - load) / wall,
        "overhead_with_tokenizing_share": (wall - forward - load) / wall,
        "overhead_with_load_share": (wall - forward - tokenize) / wall,
        "first_run_overhead_s": warm_up_wall
        - sum(warm_up["extra"][key] for key in ("forward_s", "tokenize_s", "load_s")),
    }


def _timed_run(host: Any, board: Any, run_dir: Path, model_dir: Path) -> tuple[dict[str, Any], float]:
    """The run's one row and its wall time; a failed row fails the part."""
    from harness import RunSettings, run_board

    began = time.perf_counter()
    results = run_board(host, board, run_dir, RunSettings(model_dir=model_dir))
    wall = time.perf_counter() - began
    row = results["rows"][0]
    if row["status"] != "ok":
        raise RuntimeError(f"the overhead run failed: {row['error']}")
    return row, wall
