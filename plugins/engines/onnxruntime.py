"""The ONNX Runtime engine: an optimized ONNX graph, in float32 or dynamic int8, in single-threaded sessions.

It runs a classifier, or a seq2seq model's encoder pass (see ``engines.export``).

``torch.onnx.export`` (the ``torch.export``-based exporter) writes the graph;
int8 quantizes its linear weights per output channel and their inputs per
batch on the fly (``quantize_dynamic``); ONNX Runtime's own optimizer then
fuses what it can (layer norm, GELU, attention where the pattern holds) and
that optimized graph is saved, so later sessions load it as it is. Several sessions of one intra-op thread each score
length-sorted batches side by side: independent sequences parallelise better
across cores than one sequence's small matrix products.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.plugins.engines.export import CLASSIFIER, Pass, batched_logits, build_once, quiet_export

MODEL_FILE = "model.onnx"


def _options(threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


class Engine:
    """One single-threaded ONNX Runtime session per stream."""

    def __init__(self, directory: Path, precision: str, streams: int | None, pad_id: int) -> None:
        import onnxruntime as ort

        self.streams = streams or os.cpu_count() or 1
        path = str(directory / MODEL_FILE)
        self.sessions = [
            ort.InferenceSession(path, _options(1), providers=["CPUExecutionProvider"])
            for _ in range(self.streams)
        ]
        self.pad_id = pad_id

    def run(self, inputs: dict[str, Any], worker: int) -> list[Any]:
        """The outputs of one padded batch, on the worker's own session."""
        return list(self.sessions[worker].run(None, inputs))

    def logits(self, windows: Sequence[Sequence[int]], batch_size: int) -> Any:
        """Logits [n, k] and [CLS] embeddings [n, d] of token-id windows, in their order."""
        return batched_logits(windows, batch_size, self.pad_id, self.run, self.streams)


def export(model: Any, max_length: int, target: Path, precision: str, graph: Pass = CLASSIFIER) -> Path:
    """The optimized (and for int8, quantized) ONNX graph of `model`'s `graph` in `target` (written once)."""

    def write(folder: Path) -> None:
        import onnxruntime as ort
        import torch

        raw = folder / "exported.onnx"
        with quiet_export():
            torch.onnx.export(
                graph.trace(model, max_length),
                f=str(raw),
                input_names=["input_ids", "attention_mask"],
                output_names=list(graph.outputs),
                dynamo=True,
                external_data=False,
                verbose=False,
                optimize=False,  # ONNX Runtime's optimizer below fuses the graph; the exporter's doubles the export time
            )
            if precision == "int8":
                import onnx
                from onnxruntime.quantization import QuantType, quantize_dynamic

                # The exporter annotates intermediate values with the shapes it traced, which the
                # quantizer's shape inference contradicts: it infers them afresh without the annotations.
                proto = onnx.load(str(raw))
                del proto.graph.value_info[:]
                onnx.save(proto, str(raw))
                quantized = folder / "quantized.onnx"
                quantize_dynamic(raw, quantized, per_channel=True, weight_type=QuantType.QInt8)
                quantized.replace(raw)
        options = _options(1)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(folder / MODEL_FILE)
        ort.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])
        raw.unlink()

    return build_once(target, write)
