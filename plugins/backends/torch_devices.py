"""Hardware backends: where models run, with timings that measure the device's work."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import HarnessError
from harness.hookspecs import hookimpl
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


def _threads(options: Mapping[str, str]) -> int | None:
    value = options.get("threads")
    return int(value) if value else None


def make_cpu(options: Mapping[str, str]) -> TorchBackend:
    return TorchBackend("cpu", "cpu", options.get("dtype", "float32"), _threads(options))


def make_cuda(options: Mapping[str, str]) -> TorchBackend:
    import torch

    if not torch.cuda.is_available():
        raise HarnessError("CUDA is not available on this machine; use --backend cpu (or auto)")
    return TorchBackend("cuda", "cuda", options.get("dtype", "bfloat16"))


def make_mps(options: Mapping[str, str]) -> TorchBackend:
    import torch

    if not torch.backends.mps.is_available():
        raise HarnessError("Apple MPS is not available on this machine; use --backend cpu (or auto)")
    return TorchBackend("mps", "mps", options.get("dtype", "float32"))


def make_auto(options: Mapping[str, str]) -> TorchBackend:
    """CUDA when present, then MPS, then CPU."""
    import torch

    if torch.cuda.is_available():
        return make_cuda(options)
    if torch.backends.mps.is_available():
        return make_mps(options)
    return make_cpu(options)


@hookimpl
def register_backends(register):
    register("cpu", make_cpu, description="CPU; options: threads, dtype (float32 default, bfloat16)")
    register("cuda", make_cuda, description="NVIDIA GPU; dtype bfloat16 default, float32 or float16")
    register("mps", make_mps, description="Apple GPU (Metal)")
    register("auto", make_auto, description="cuda if available, then mps, then cpu")
