"""Real OpenAI-compatible servers for the endpoint tests, each on a free local port.

- `transformers serve` (from transformers[serving]) answers /v1/completions
  and /v1/chat/completions but ignores `logprobs`: the generate-and-parse
  mode.
- llama-cpp-python's server (the `test-servers` extra, which `make test`
  installs) serves the packaged SmolLM2 GGUF itself and answers `echo` with
  prompt log-probabilities on /v1/completions and `top_logprobs` on
  /v1/chat/completions: the two log-probability modes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

SERVED_NAME = "smollm2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One server process pinned to a free port, restartable on the same port."""

    def __init__(self, command: list[str], model: str, log: Path, port: int) -> None:
        self.command = command
        self.model = model
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[:3]} exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"{self.command[:3]} did not start within 180 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
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
    from harness.plugins.models._llama_cpp import float32_copy
    from harness.plugins.models.causal_lm import packaged_smollm2

    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", float32_copy(str(packaged_smollm2())),
               "--model_alias", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", "2048", "--n_threads", "2", "--verbose", "false"]  # fmt: skip
    if api_key is not None:
        command += ["--api_key", api_key]
    return Server(command, SERVED_NAME, log_dir / "llama-server.log", port)


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
