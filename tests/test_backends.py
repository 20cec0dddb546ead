"""Hardware backends: auto selection, clear errors for absent devices, what results record."""

from __future__ import annotations

import pytest
import torch

from harness.errors import HarnessError
from harness.plugins.backends import torch_devices as backends


def registered() -> dict[str, object]:
    found: dict[str, object] = {}
    backends.register_backends(
        lambda name, factory, description="", **declared: found.setdefault(name, factory)
    )
    return found


def test_all_four_backends_are_registered() -> None:
    assert set(registered()) == {"cpu", "cuda", "mps", "auto"}


def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert backends.make_auto({}).device == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert backends.make_auto({}).device == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    chosen = backends.make_auto({})
    assert (chosen.device, chosen.dtype) == ("cuda", "bfloat16")


@pytest.mark.parametrize(("factory", "needle"), [(backends.make_cuda, "CUDA"), (backends.make_mps, "MPS")])
def test_absent_devices_fail_with_the_way_out(monkeypatch, factory, needle) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(HarnessError, match=f"{needle} is not available.*--backend cpu"):
        factory({})


def test_cpu_threads_and_dtype_are_applied_and_recorded() -> None:
    before = torch.get_num_threads()
    backend = backends.make_cpu({"threads": "1", "dtype": "bfloat16"})
    try:
        backend.setup()
        described = backend.describe()
    finally:
        torch.set_num_threads(before)
    assert described["backend"] == "cpu" and described["device"] == "cpu"
    assert described["dtype"] == "bfloat16" and described["threads"] == 1
    assert described["device_name"]


def test_unknown_dtype_or_option_is_refused() -> None:
    with pytest.raises(HarnessError, match="dtype='int3': choose one of float32, bfloat16, float16"):
        backends.make_cpu({"dtype": "int3"})
    with pytest.raises(HarnessError, match="backend 'cpu' has no option 'thread'; did you mean 'threads'"):
        backends.make_cpu({"thread": "2"})
