"""Seeded fine-tuning of a sequence classifier on a task's train split, saved once and reused.

Fine-tuning is the slow part of a small-model run, so its result is kept under
``workdir/finetuned/<fingerprint>``: a later run with the same base checkpoint,
task, train data, hyper-parameters and seed loads the saved weights instead of
training again. The fingerprint also identifies the model in the prediction
cache, so predictions of two differently trained models never mix.

Training is a plain PyTorch loop (AdamW, linear warm-up and decay, length-
grouped batches with dynamic padding) so it runs on CPU without extra packages.
Where the processor has bfloat16 units (AVX-512 BF16 or AMX on a CPU, a GPU
that supports it), the forward and backward passes run under bf16 autocast
with fp32 weights and optimizer state: several times faster there, and the
precision is part of the fingerprint, so bf16- and fp32-trained weights never mix.
Its loss is cross-entropy against a probability row per example: the one-hot
gold label, or a teacher's probabilities when a small model is distilled from
a large one (``targets``), so a teacher's doubt is taught along with its answer.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness import Example, HarnessError
from harness.plugins.models._checkpoints import checkpoint_identity
from harness.plugins.models._truncation import fit_tokens

DONE_FILE = "finetune.json"


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that changes the fine-tuned weights besides the train data and the task."""

    base: str
    labels: tuple[str, ...]
    epochs: int = 3
    min_steps: int = 0
    max_epochs: int = 10  # the most passes min_steps may add (epochs itself is never cut)
    learning_rate: float = 5e-5
    batch_size: int = 16
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 512
    truncation: str = "head+tail"
    seed: int = 0
    precision: str = "fp32"


@dataclass(frozen=True)
class FinetuneResult:
    """Where the fine-tuned checkpoint lies, and whether this call trained it or found it saved."""

    path: Path
    fingerprint: str
    trained: bool


def digest(value: Any) -> str:
    """A short stable hash of a JSON-serialisable value."""
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_data_hash(train: Sequence[Example]) -> str:
    """Hash of the train texts and labels, in order (order matters to seeded shuffling)."""
    sha = hashlib.sha256()
    for example in train:
        sha.update(example.text.encode())
        sha.update(b"\x00%d\x00" % example.label)
    return sha.hexdigest()[:16]


def targets_hash(targets: Sequence[Sequence[float]]) -> str:
    """Hash of soft targets, rounded so that the float noise of a recomputed teacher changes nothing."""
    return digest([[round(float(p), 6) for p in row] for row in targets])


def finetune_fingerprint(
    config: FinetuneConfig,
    task_fingerprint: str,
    train: Sequence[Example],
    targets: Sequence[Sequence[float]] | None = None,
) -> str:
    """Identity of a fine-tuned model: base weights, task, train data, soft targets, hyper-parameters, seed."""
    settings = asdict(config)
    settings["base"] = checkpoint_identity(config.base)
    identity = {"config": settings, "task": task_fingerprint, "train": train_data_hash(train)}
    if targets is not None:
        identity["targets"] = targets_hash(targets)
    return digest(identity)


def training_precision(requested: str, device: str) -> str:
    """`fp32` or `bf16`; `auto` is bf16 where the device has bfloat16 units and fp32 elsewhere.

    Without the units bf16 autocast is emulated and slower than fp32, so the
    choice follows the hardware, not a measurement.
    """
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device == "cpu" and cpu_has_bf16_units() else "fp32"


def cpu_has_bf16_units() -> bool:
    """Whether the processor lists AVX-512 BF16 or AMX among its features (Linux; False where unknown)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def special_token_frame(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after one text, found by encoding a probe.

    Texts are tokenized without special tokens so that long ones can be cut or
    windowed first; this frame is then put around each window.
    """
    probe = "review"
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    framed = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(framed) - len(bare) + 1):
        if framed[start : start + len(bare)] == bare:
            return list(framed[:start]), list(framed[start + len(bare) :])
    raise HarnessError("cannot tell where this tokenizer puts its special tokens around a text")


def encode_windows(
    tokenizer: Any, texts: Sequence[str], max_length: int, policy: str
) -> tuple[list[list[list[int]]], list[bool]]:
    """Token windows (special tokens included) for each text, and whether each text was cut.

    Every text yields at least one window, so no review is ever dropped.
    """
    prefix, suffix = special_token_frame(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"] if texts else []
    windows, truncated = [], []
    for text_ids in ids:
        parts, cut = fit_tokens(text_ids, budget, policy)
        windows.append([prefix + part + suffix for part in parts])
        truncated.append(cut)
    return windows, truncated


def window_limit(model_config: Any, tokenizer: Any, requested: int | None = None) -> int:
    """The longest input the model takes: the smallest of the request, 512, its positions and its tokenizer."""
    limits = [requested or 512]
    positions = getattr(model_config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        limits.append(tokenizer_limit)
    return min(limits)


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding stays small."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, device: str) -> dict[str, Any]:
    """Right-pad token lists to the longest one: input ids and attention mask as tensors."""
    import torch

    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


def _shuffled_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> Iterator[list[int]]:
    """One epoch of batches: shuffled, grouped by length within large chunks, batch order shuffled."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: -lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    yield from batches


def finetune(
    config: FinetuneConfig,
    train: Sequence[Example],
    task_fingerprint: str,
    workdir: Path,
    *,
    targets: Sequence[Sequence[float]] | None = None,
    device: str = "cpu",
    load_kwargs: Mapping[str, Any] | None = None,
) -> FinetuneResult:
    """Fine-tune `config.base` on `train`, or reuse the checkpoint an identical earlier run saved.

    `targets` gives each train example a probability row over the labels to
    learn instead of its one-hot label (distillation's soft targets).
    `load_kwargs` go to every ``from_pretrained`` call (``trust_remote_code``,
    ``use_safetensors``). The checkpoint is written to a temporary directory and
    renamed when complete, so an interrupted run never leaves a half-saved model
    that a later run would trust.
    """
    if not train:
        raise HarnessError(
            f"cannot fine-tune {config.base}: the task has no train split (no train examples were given)"
        )
    bad = sorted({e.label for e in train if not 0 <= e.label < len(config.labels)})
    if bad:
        raise HarnessError(f"train labels {bad} are outside the task's {len(config.labels)} labels")
    if targets is not None and (
        len(targets) != len(train) or any(len(row) != len(config.labels) for row in targets)
    ):
        raise HarnessError(
            f"soft targets must give {len(config.labels)} probabilities for each train example"
        )
    rows = (
        [list(map(float, row)) for row in targets] if targets is not None else one_hot(train, config.labels)
    )
    fingerprint = finetune_fingerprint(config, task_fingerprint, train, targets)
    target = Path(workdir) / "finetuned" / fingerprint
    if (target / DONE_FILE).is_file():
        return FinetuneResult(target, fingerprint, trained=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{fingerprint}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    report = _train(config, train, rows, staging, device, dict(load_kwargs or {}))
    report.update(
        fingerprint=fingerprint,
        task=task_fingerprint,
        config=asdict(config),
        soft_targets=targets is not None,
    )
    (staging / DONE_FILE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return FinetuneResult(target, fingerprint, trained=True)


def one_hot(train: Sequence[Example], labels: Sequence[str]) -> list[list[float]]:
    """Each example's gold label as a probability row: the targets of ordinary fine-tuning."""
    return [[float(i == example.label) for i in range(len(labels))] for example in train]


def _schedule(model: Any, config: FinetuneConfig, sequences: int) -> tuple[Any, Any, int, int]:
    """AdamW (no weight decay on biases and norms) with linear warm-up and decay: the optimizer, its
    scheduler, and how many epochs and steps train on `sequences` windows."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": config.weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    per_epoch = -(-sequences // config.batch_size)
    # A small train split (the demo sample's) gets more passes, so it still sees enough updates, but never
    # more than max_epochs: a few dozen reviews read thirty times over teach nothing the tenth pass did not.
    epochs = max(config.epochs, min(-(-config.min_steps // per_epoch), config.max_epochs))
    steps = epochs * per_epoch
    scheduler = get_linear_schedule_with_warmup(optimizer, int(steps * config.warmup_ratio), steps)
    return optimizer, scheduler, epochs, steps


def _train(
    config: FinetuneConfig,
    train: Sequence[Example],
    targets: Sequence[Sequence[float]],
    out_dir: Path,
    device: str,
    load_kwargs: dict[str, Any],
) -> dict[str, Any]:
    """The training loop proper; saves model and tokenizer to `out_dir` and returns a short report."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(
        config.base, trust_remote_code=load_kwargs.get("trust_remote_code", False)
    )
    model = AutoModelForSequenceClassification.from_pretrained(
        config.base,
        num_labels=len(config.labels),
        id2label=dict(enumerate(config.labels)),
        label2id={label: i for i, label in enumerate(config.labels)},
        ignore_mismatched_sizes=True,
        dtype=torch.float32,
        **load_kwargs,
    ).to(device)

    max_length = window_limit(model.config, tokenizer, config.max_length)
    windows, _ = encode_windows(tokenizer, [e.text for e in train], max_length, config.truncation)
    sequences = [w for text_windows in windows for w in text_windows]
    rows = [row for row, text_windows in zip(targets, windows, strict=True) for _ in text_windows]
    lengths = [len(s) for s in sequences]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    optimizer, scheduler, epochs, steps = _schedule(model, config, len(sequences))
    model.train()
    epoch_losses = []
    for _ in range(epochs):
        total, count = 0.0, 0
        for batch in _shuffled_batches(lengths, config.batch_size, rng):
            inputs = pad_batch([sequences[i] for i in batch], pad_id, device)
            target = torch.tensor([rows[i] for i in batch], dtype=torch.float32, device=device)
            with torch.autocast(
                device.split(":")[0], dtype=torch.bfloat16, enabled=config.precision == "bf16"
            ):
                logits = model(**inputs).logits
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            loss = -(target * log_probs).sum(dim=-1).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            total += loss.item() * len(batch)
            count += len(batch)
        epoch_losses.append(total / max(count, 1))
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {
        "examples": len(train),
        "sequences": len(sequences),
        "steps": steps,
        "epoch_losses": epoch_losses,
        "seconds": round(time.perf_counter() - started, 3),
        "device": device,
    }
