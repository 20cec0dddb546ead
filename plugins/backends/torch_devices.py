"""Hardware backends: where models run, with timings that measure the device's work."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import BackendFactory, HarnessError, Option, OptionSet, Register, hookimpl
from harness.provenance import cpu_name

DTYPES = ("float32", "bfloat16", "float16")


class TorchBackend:
    """A torch device with a dtype and (on CPU) a thread count."""

    def __init__(self, name: str, device: str, dtype: str, threads: int | None = None) -> None:
        if dtype not in DTYPES:
            raise HarnessError(
                f"unknown dtype {dtype!r} for backend {name!r}; choose one of {', '.join(DTYPES)}"
            )
        self.name = name
        self.device = device
        self.dtype = dtype
        self.threads = threads

    def setup(self) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
        elif self.device == "mps":
            import torch

            torch.mps.synchronize()

    def describe(self) -> dict[str, Any]:
        import torch

        if self.device == "cuda":
            device_name = torch.cuda.get_device_name(0)
        elif self.device == "mps":
            device_name = "Apple GPU (mps)"
        else:
            device_name = cpu_name()
        return {
            "backend": self.name,
            "device": self.device,
            "device_name": device_name,
            "dtype": self.dtype,
            "threads": torch.get_num_threads() if self.device == "cpu" else None,
        }


OPTIONS = OptionSet(
    Option(
        "dtype",
        str,
        None,
        "weights' dtype [default: float32 on cpu and mps, bfloat16 on cuda]",
        choices=DTYPES,
    ),
    Option("threads", int, None, "intra-op threads on the cpu [default: torch's]", minimum=1),
)


def _values(options: Mapping[str, str], backend: str) -> dict[str, Any]:
    return OPTIONS.parse(options, strict=True, owner=f"backend {backend!r}")


def make_cpu(options: Mapping[str, str]) -> TorchBackend:
    values = _values(options, "cpu")
    return TorchBackend("cpu", "cpu", values["dtype"] or "float32", values["threads"])


def make_cuda(options: Mapping[str, str]) -> TorchBackend:
    import torch

    values = _values(options, "cuda")
    if not torch.cuda.is_available():
        raise HarnessError("CUDA is not available on this machine; use --backend cpu (or auto)")
    return TorchBackend("cuda", "cuda", values["dtype"] or "bfloat16")


def make_mps(options: Mapping[str, str]) -> TorchBackend:
    import torch

    values = _values(options, "mps")
    if not torch.backends.mps.is_available():
        raise HarnessError("Apple MPS is not available on this machine; use --backend cpu (or auto)")
    return TorchBackend("mps", "mps", values["dtype"] or "float32")


def make_auto(options: Mapping[str, str]) -> TorchBackend:
    """CUDA when present, then MPS, then CPU."""
    import torch

    if torch.cuda.is_available():
        return make_cuda(options)
    if torch.backends.mps.is_available():
        return make_mps(options)
    return make_cpu(options)


@hookimpl
def register_backends(register: Register[BackendFactory]) -> None:
    register("cpu", make_cpu, options=OPTIONS, description="CPU; float32 weights by default, or bfloat16")
    register("cuda", make_cuda, options=OPTIONS, description="NVIDIA GPU; bfloat16 weights by default")
    register("mps", make_mps, options=OPTIONS, description="Apple GPU (Metal)")
    register("auto", make_auto, options=OPTIONS, description="cuda if available, then mps, then cpu")
