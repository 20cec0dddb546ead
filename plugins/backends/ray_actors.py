"""The `ray` backend: one run spread over Ray actors that each hold a replica of the model.

The runner still reads the data, batches it, caches and times predictions;
each batch it hands to the model is split across the actors, which score
their shares in parallel on their own CPUs (on one machine or a cluster).
Every replica is built by `harness.runner.build_model` from the run's spec,
options, seed and workdir, so it is the model the `cpu` backend would build
and predicts the same probabilities.

Options: ``address`` (an existing cluster, e.g. ``auto`` or
``ray://head:10001``; without it the harness starts a local Ray),
``actors`` (default 2), ``threads_per_actor`` (default 1) and ``dtype``.
Fine-tuned weights are saved under the run's workdir by the first replica and
loaded by the others, so on a cluster the run directory must be on storage
every node can read (otherwise each replica fine-tunes itself with the same
seed).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import (
    BackendFactory,
    Example,
    HarnessError,
    Model,
    ModelOutput,
    Option,
    OptionSet,
    Register,
    Task,
    hookimpl,
)
from harness.plugins.backends.torch_devices import DTYPES
from harness.provenance import cpu_name

OPTIONAL_METHODS = ("row_stats",)


class Replica:
    """What runs inside one actor: a model built from its spec, with a CPU backend of its own."""

    def __init__(
        self,
        spec: str,
        options: Mapping[str, str],
        seed: int,
        workdir: str,
        backend_options: Mapping[str, str],
        seeds: Mapping[str, int],
    ) -> None:
        from harness import build_model
        from harness.plugins.backends.torch_devices import make_cpu

        backend = make_cpu(backend_options)
        backend.setup()
        self.model: Model = build_model(spec, options, seed, Path(workdir), backend=backend, seeds=seeds)

    def has(self, name: str) -> bool:
        return callable(getattr(self.model, name, None))

    def batch_size(self) -> int | None:
        size = getattr(self.model, "batch_size", None)
        return int(size) if size else None

    def fit(self, train: Sequence[Example], task: Task) -> None:
        fit = getattr(self.model, "fit", None)
        if callable(fit):
            fit(train, task)

    def choose(self, sample: Sequence[str], reviews: int, task: Task) -> None:
        choose = getattr(self.model, "choose", None)
        if callable(choose):
            choose(sample, reviews, task)

    def predict(self, texts: Sequence[str], task: Task) -> ModelOutput:
        output = self.model.predict(texts, task)
        return output if isinstance(output, ModelOutput) else ModelOutput(probs=output)

    def fingerprint(self) -> str:
        return self.model.fingerprint()

    def call(self, name: str, *args: Any) -> Any:
        return getattr(self.model, name)(*args)


class DistributedModel:
    """A model whose `predict` splits each batch across actors holding identical replicas.

    `fit` and `choose` run on the first replica before the others, so the
    fine-tuning and engine choice it saves under the workdir are found and
    reused by the rest instead of being repeated. The fingerprint is the replica's: predictions are the same as
    the local model's, so they may share a prediction cache.
    """

    def __init__(self, name: str, actors: list[Any]) -> None:
        import ray

        self.name = name
        self._actors = actors
        first = actors[0]
        per_replica = ray.get(first.batch_size.remote())
        if per_replica:
            self.batch_size = per_replica * len(actors)
        for method in OPTIONAL_METHODS:
            if ray.get(first.has.remote(method)):
                setattr(self, method, self._forward(method))
        self._finalizer = weakref.finalize(self, _kill, list(actors))

    def _forward(self, method: str) -> Any:
        def call(*args: Any) -> Any:
            import ray

            return ray.get(self._actors[0].call.remote(method, *args))

        return call

    def fit(self, train: Sequence[Example], task: Task) -> None:
        import ray

        first, *rest = self._actors
        ray.get(first.fit.remote(train, task))
        ray.get([actor.fit.remote(train, task) for actor in rest])

    def choose(self, sample: Sequence[str], reviews: int, task: Task) -> None:
        """The first replica chooses (and records a measured choice), then the rest read it or choose alike."""
        import ray

        first, *rest = self._actors
        ray.get(first.choose.remote(sample, reviews, task))
        ray.get([actor.choose.remote(sample, reviews, task) for actor in rest])

    def predict(self, texts: Sequence[str], task: Task) -> ModelOutput:
        import numpy as np
        import ray

        texts = list(texts)
        shares = [len(part) for part in np.array_split(np.arange(len(texts)), len(self._actors))]
        futures, start = [], 0
        for actor, size in zip(self._actors, shares, strict=True):
            if size:
                futures.append(actor.predict.remote(texts[start : start + size], task))
            start += size
        outputs: list[ModelOutput] = ray.get(futures)
        probs = np.concatenate([np.asarray(out.probs) for out in outputs])
        truncated = None
        if any(out.truncated is not None for out in outputs):
            truncated = [
                bool(flag)
                for out in outputs
                for flag in (out.truncated if out.truncated is not None else [False] * len(out.probs))
            ]
        raw_text = None
        if any(out.raw_text is not None for out in outputs):
            raw_text = [text for out in outputs for text in (out.raw_text or [""] * len(out.probs))]
        return ModelOutput(probs, truncated=truncated, raw_text=raw_text)

    def fingerprint(self) -> str:
        import ray

        fingerprint: str = ray.get(self._actors[0].fingerprint.remote())
        return fingerprint

    def close(self) -> None:
        """Stop the actors and give their CPUs back to the cluster."""
        self._finalizer()


def _kill(actors: list[Any]) -> None:
    try:
        import ray

        if ray.is_initialized():
            for actor in actors:
                ray.kill(actor)
    except Exception:  # the cluster may already be gone at interpreter exit
        pass


class RayBackend:
    """CPU replicas on Ray actors; a local Ray is started when no cluster address is given."""

    name = "ray"
    device = "cpu"

    def __init__(self, options: Mapping[str, str]) -> None:
        values = OPTIONS.parse(options, strict=True, owner="backend 'ray'")
        self.address: str | None = values["address"]
        self.actors: int = values["actors"]
        self.threads_per_actor: int = values["threads_per_actor"]
        self.dtype: str = values["dtype"]
        self._current: DistributedModel | None = None

    def setup(self) -> None:
        """Connect to the cluster, or start a local Ray with one CPU per actor thread."""
        try:
            import ray
        except ImportError:
            raise HarnessError("the ray backend needs Ray: pip install 'review-harness[ray]'") from None
        if ray.is_initialized():
            return
        if self.address:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(
                num_cpus=self.actors * self.threads_per_actor, include_dashboard=False, log_to_driver=False
            )

    def synchronize(self) -> None:
        """Nothing to wait for: `predict` returns only when every actor has answered."""

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "device": self.device,
            "device_name": cpu_name(),
            "dtype": self.dtype,
            "threads": self.threads_per_actor,
            "actors": self.actors,
            "address": self.address or "local",
        }

    def distribute(
        self, spec: str, options: Mapping[str, str], seed: int, workdir: Path, seeds: Mapping[str, int]
    ) -> DistributedModel:
        """Start `actors` replicas of `spec`; the previous model's actors are stopped first."""
        import ray

        self.setup()
        if self._current is not None:
            self._current.close()
        actor_class = ray.remote(num_cpus=self.threads_per_actor)(Replica)
        backend_options = {"threads": str(self.threads_per_actor), "dtype": self.dtype}
        actors = [
            actor_class.remote(spec, dict(options), seed, str(workdir), backend_options, dict(seeds))
            for _ in range(self.actors)
        ]
        self._current = DistributedModel(spec, actors)
        return self._current


OPTIONS = OptionSet(
    Option("address", str, None, "a running cluster (auto, or HEAD:6379) [default: start a local Ray]"),
    Option("actors", int, 2, "model replicas", minimum=1),
    Option("threads_per_actor", int, 1, "intra-op threads of each replica", minimum=1),
    Option("dtype", str, "float32", "weights' dtype on the replicas", choices=DTYPES),
)


def make_ray(options: Mapping[str, str]) -> RayBackend:
    """The ray backend; Ray itself is imported only when the run starts."""
    return RayBackend(options)


@hookimpl
def register_backends(register: Register[BackendFactory]) -> None:
    register(
        "ray",
        make_ray,
        options=OPTIONS,
        description="model replicas on Ray actors",
    )
