"""`harness bench` part `memory`: peak memory of scoring a 1,000,000-row TSV against a 10,000-row one.

The runner streams examples, so memory must not grow with the file. Each size
runs in its own process (peak RSS is per process) through the ordinary
runner, with a constant model so that the data path, not a model, is measured.
The peak is the child's own high-water mark (``VmHWM``, Linux), which unlike
``ru_maxrss`` does not inherit the parent's size across fork and exec.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

CHILD = """
import json, sys
from pathlib import Path
import numpy as np
from harness.boards import Board, ModelEntry
from harness import ModelFactory, PluginHost, Register, hookimpl, run_board

class Constant:
    name = "constant"
    batch_size = 512
    def predict(self, texts, task):
        return np.full((len(texts), len(task.labels)), 1.0 / len(task.labels))
    def fingerprint(self):
        return "constant"

class Plugin:
    @hookimpl
    def register_models(self, register: Register[ModelFactory]) -> None:
        register("constant", lambda arg, ctx: Constant())

data, out = sys.argv[1], Path(sys.argv[2])
host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
host.register(Plugin(), "bench-constant")
board = Board(name="memory", tasks=["polarity"], models=[ModelEntry("constant")], data=data,
              backend="cpu", bootstrap=0)
row = run_board(host, board, out)["rows"][0]
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"n": row["n"], "status": row["status"], "error": row["error"], "peak_rss_mb": peak_kb / 1024}))
"""


def write_tsv(source: Path, target: Path, rows: int) -> Path:
    """`rows` rows of the release TSV format: the source's rows repeated, each with a new review id."""
    with open(source, encoding="utf-8") as handle:
        header, *lines = handle.read().splitlines()
    body = [line.split("\t") for line in lines if line.count("\t") == 14]
    with open(target, "w", encoding="utf-8") as out:
        out.write(header + "\n")
        for index in range(rows):
            fields = body[index % len(body)]
            out.write("\t".join([fields[0], fields[1], f"R{index:09d}", *fields[3:]]) + "\n")
    return target


def peak_rss(data: Path, run_dir: Path) -> dict[str, Any]:
    """Score `data` in a fresh process and return its row count and peak resident memory in MB."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(run_dir)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the memory run on {data} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != "ok":
        raise RuntimeError(f"the memory run on {data} failed: {result['error']}")
    return result


def memory(source: Path | None, workdir: Path, small_rows: int, large_rows: int) -> dict[str, Any]:
    """Peak RSS for both sizes and their difference (target: within 300 MB); rows from the demo sample by default."""
    from importlib import resources

    with resources.as_file(resources.files("harness.tasks") / "data" / "sample.tsv") as demo:
        rows = source or demo
        small = peak_rss(write_tsv(rows, workdir / f"rows-{small_rows}.tsv", small_rows), workdir / "small")
        large = peak_rss(write_tsv(rows, workdir / f"rows-{large_rows}.tsv", large_rows), workdir / "large")
    return {
        "small_rows": small_rows,
        "large_rows": large_rows,
        "small_scored": small["n"],
        "large_scored": large["n"],
        "small_peak_rss_mb": small["peak_rss_mb"],
        "large_peak_rss_mb": large["peak_rss_mb"],
        "difference_mb": large["peak_rss_mb"] - small["peak_rss_mb"],
    }
