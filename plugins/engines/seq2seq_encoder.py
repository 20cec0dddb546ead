"""The engine that runs a seq2seq model's encoder pass in label scoring, chosen like a classifier's.

Label scoring reads each review once with the encoder and then scores the
short label words with the decoder, so the encoder carries most of the work
on long reviews. Its pass is exported to OpenVINO or ONNX Runtime with the
classifiers' machinery (``engines.export``) and the decoder stays in torch,
reading the engine's encoder states. ``engine=auto`` measures whole label
scoring, encoder and decoder together, on the run's first reviews, keeps the
fastest engine whose top label agrees with float32 torch on 99.5% of them
and remembers the decision per processor, checkpoint and label words (see
``engines.choice``), where the run's reviews repay the measuring
(``measure=always``: whatever the run's size).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.options import Option, OptionSet
from harness.plugins.engines import choice as engines
from harness.plugins.engines.choice import ENGINES, Candidate, Decision

# Encoder states of padded, length-sorted batches: each batch's indices into the inputs and its states.
Encoder = Callable[[Sequence[Sequence[int]]], Iterator[tuple[list[int], Any]]]
Score = Callable[[Sequence[Sequence[int]], Encoder | None], Any]

ENGINE_OPTIONS = OptionSet(
    # Fingerprinted by `engine_mark`: auto keeps float32 torch's answers, so it keeps earlier predictions.
    Option(
        "engine",
        str,
        "auto",
        "encoder pass of label scoring; auto: the fastest installed engine that keeps fp32 torch's answers",
        choices=ENGINES,
        affects_output=False,
    ),
    Option(
        "precision",
        str,
        "auto",
        "fp32, bf16 or int8 on openvino/onnxruntime (torch: the backend's dtype); auto: measured",
        choices=("auto", "fp32", "bf16", "int8"),
        affects_output=False,
    ),
    engines.MEASURE_OPTION,
)


def engine_mark(values: Mapping[str, Any]) -> str:
    """The fingerprint's part for an engine or precision given explicitly (none for auto, as before engines)."""
    if values["engine"] == values["precision"] == "auto":
        return ""
    return f"|engine={values['engine']}|precision={values['precision']}"


class EncoderEngines:
    """The encoder engine for each set of label words: given, read from an earlier decision, or measured."""

    def __init__(
        self, values: Mapping[str, Any], mode: str, device: str, dtype: str, workdir: Path, batch_size: int
    ) -> None:
        if mode != "score" and engine_mark(values):
            raise HarnessError(
                "engine and precision choose the encoder engine of mode=score; generate runs torch"
            )
        self.candidates = engines.candidates(values["engine"], values["precision"], device, dtype)
        self.always = values["measure"] == "always"
        self.workdir = Path(workdir)
        self.batch_size = batch_size
        self.decisions: dict[tuple[str, ...], Decision] = {}
        self.encoders: dict[str, Encoder] = {}
        self.last: Decision | None = None

    def stats(self) -> dict[str, Any]:
        """The last decision's engine, how it was chosen and its timings, for the row's results."""
        return self.last.stats() if self.last else {}

    def choose(
        self,
        model: Any,
        identity: dict[str, Any],
        pad_id: int,
        sample: Sequence[Sequence[int]],
        label_words: Sequence[str],
        score: Score,
        reviews: int,
    ) -> None:
        """Decide the engine for `label_words` on `sample` (the run's first inputs), unless decided before.

        `score(inputs, encoder)` is label scoring with that encoder; `reviews`
        is how many the run scores, which the measuring must pay for.
        """
        key = tuple(label_words)
        if key in self.decisions or not sample:
            return
        path = self._decision_file(identity, key)
        decision = engines.cached(self.candidates, path)
        if decision is None:

            def build(candidate: Candidate) -> Callable[[Sequence[Sequence[int]]], Any]:
                encoder = self._built(candidate, model, identity, pad_id)
                return lambda rows: (score(rows, encoder), None)

            parameters = sum(p.numel() for p in model.get_encoder().parameters())
            workload = engines.Workload(reviews, parameters, self.always)
            reference = build(Candidate("torch", "fp32"))
            decision = engines.choose(
                self.candidates, sample, build, reference, range(len(key)), path, workload
            )
        self.decisions[key] = decision

    def encoder(
        self, model: Any, identity: dict[str, Any], pad_id: int, label_words: Sequence[str]
    ) -> Encoder | None:
        """The encoder to score with (None: torch's own): the one chosen, else an earlier run's decision."""
        key = tuple(label_words)
        decision = self.decisions.get(key) or engines.cached(
            self.candidates, self._decision_file(identity, key)
        )
        if decision is None:
            return None
        self.decisions[key] = self.last = decision
        return self._built(decision.choice, model, identity, pad_id)

    def _decision_file(self, identity: dict[str, Any], key: tuple[str, ...]) -> Path:
        settings = {"identity": identity, "label_words": list(key), "batch_size": self.batch_size}
        return engines.cache_file(self.workdir, self.candidates, settings)

    def _built(
        self, candidate: Candidate, model: Any, identity: dict[str, Any], pad_id: int
    ) -> Encoder | None:
        """`candidate`'s encoder, exported and loaded once per scorer; None for torch."""
        if candidate.engine == "torch":
            return None
        if candidate.key not in self.encoders:
            from harness.plugins.engines import export as engine_export

            max_length = int(identity["max_length"])
            # OpenVINO 2026.4 stops the process (SIGFPE) compiling T5's encoder in bf16 on several streams.
            streams = 1 if candidate.key == "openvino-bf16" else None
            engine = engine_export.load(
                candidate.engine, candidate.precision, model, max_length, self.workdir, identity, streams,
                pad_id, engine_export.ENCODER,
            )  # fmt: skip

            def encode(inputs: Sequence[Sequence[int]]) -> Iterator[tuple[list[int], Any]]:
                import torch

                outputs = engine_export.batched_outputs(
                    inputs, self.batch_size, pad_id, engine.run, engine.streams
                )
                for batch, (states,) in outputs:
                    yield batch, torch.from_numpy(states)

            self.encoders[candidate.key] = encode
        return self.encoders[candidate.key]
