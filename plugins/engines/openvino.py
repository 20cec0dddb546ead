"""The OpenVINO engine: a classifier or a seq2seq encoder compiled for the CPU, in fp32, bf16 or int8 weights.

``openvino.convert_model`` reads the ``torch.export`` program directly; the
IR is saved once per checkpoint and precision (see ``engines.export``). bf16
is an inference precision OpenVINO applies at compile time, on AMX or
AVX-512 BF16 units; int8 compresses the linear layers' weights to int8 with
NNCF (per output channel) and OpenVINO quantizes their inputs on the fly. The
model is compiled with the throughput hint and scored with one infer request
per stream, each in its own thread, on length-sorted batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import HarnessError
from harness.plugins.engines.export import CLASSIFIER, Pass, batched_logits, build_once, quiet_export

HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def supported(precision: str) -> bool:
    """Whether this CPU runs `precision` natively (bf16 needs BF16 units, which OpenVINO lists)."""
    if precision != "bf16":
        return True
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class Engine:
    """A compiled OpenVINO model and one infer request per stream."""

    def __init__(self, directory: Path, precision: str, streams: int | None, pad_id: int) -> None:
        import openvino as ov

        if not supported(precision):
            raise HarnessError(f"engine=openvino precision={precision}: this CPU has no {precision} units")
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "THROUGHPUT",
            "INFERENCE_PRECISION_HINT": HINTS[precision],
        }
        if streams:
            config["NUM_STREAMS"] = str(streams)
        core = ov.Core()
        self.compiled = core.compile_model(str(directory / "model.xml"), "CPU", config)
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self.requests = [self.compiled.create_infer_request() for _ in range(self.streams)]
        self.pad_id = pad_id

    def run(self, inputs: dict[str, Any], worker: int) -> list[Any]:
        """The outputs of one padded batch, on the worker's own infer request."""
        return [output.copy() for output in self.requests[worker].infer(inputs).to_tuple()]

    def logits(self, windows: Sequence[Sequence[int]], batch_size: int) -> Any:
        """Logits [n, k] and [CLS] embeddings [n, d] of token-id windows, in their order."""
        return batched_logits(windows, batch_size, self.pad_id, self.run, self.streams)


def export(model: Any, max_length: int, target: Path, precision: str, graph: Pass = CLASSIFIER) -> Path:
    """The OpenVINO IR of `model`'s `graph` at `target` (written once): int8 weights for precision int8."""

    def write(folder: Path) -> None:
        import openvino as ov

        with quiet_export():
            converted = ov.convert_model(graph.trace(model, max_length))
            if precision == "int8":
                import nncf

                converted = nncf.compress_weights(converted, mode=nncf.CompressWeightsMode.INT8_SYM)
            ov.save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)

    return build_once(target, write)
