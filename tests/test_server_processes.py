"""The test servers' process handling: stopping a server stops every process it started."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.openai_servers import Server, free_port

# An HTTP server that first starts a worker of its own, as vLLM starts its engine core, and records its pid.
SERVER_WITH_A_WORKER = """
import http.server, subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[2], "w").write(str(worker.pid))
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.BaseHTTPRequestHandler).serve_forever()
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")  # a zombie has ended


def test_stopping_a_server_stops_the_workers_it_started(tmp_path):
    port = free_port()
    pid_file = tmp_path / "worker.pid"
    command = [sys.executable, "-c", SERVER_WITH_A_WORKER, str(port), str(pid_file)]
    server = Server(command, "none", tmp_path / "server.log", port, start_s=30)
    server.start()
    worker = int(pid_file.read_text())
    assert alive(worker)
    server.stop()
    deadline = time.monotonic() + 10
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(worker)
