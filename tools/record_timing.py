"""Run a command, time it, and record the figure with the machine, date and load under docs/results/.

    python tools/record_timing.py -- make run
    python tools/record_timing.py --keep runs/bench/bench.json --as bench -- harness bench --out runs/bench

The command's wall time goes into docs/results/timings.json (one record per command, replacing the
previous record of the same command). With --keep FILE --as NAME, the file the command produced (a
bench.json, a results.json) is also recorded whole as docs/results/NAME.json beside the command, its
wall time and the machine. The documentation renders its tables from these files, so re-measuring
a figure is rerunning this line, never editing prose. The command's exit status is passed on, and a
command that fails records nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def cpu_name() -> str:
    """The processor's model name as /proc/cpuinfo gives it (the platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * page_size / 2**30, 1)


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def git_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def timed(command: list[str]) -> dict[str, Any]:
    """Run `command` in the foreground; its wall and CPU time, peak memory and the load before and after."""
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    start = time.perf_counter()
    code = subprocess.run(command, check=False).returncode
    wall = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "command": shlex.join(command),
        "exit_code": code,
        "wall_s": round(wall, 1),
        # the largest resident set of any one process the command ran (Linux counts KiB), and its CPU time
        "peak_rss_mib": round(children.ru_maxrss / 1024),
        "cpu_s": round(children.ru_utime + children.ru_stime, 1),
        "date": started.isoformat(timespec="seconds"),
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "machine": machine(),
        "git_commit": git_commit(),
    }


def write_json(path: Path, content: Any) -> None:
    """Write through a temporary file, so an interrupted write leaves the previous record whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(content, indent=2) + "\n")
    partial.replace(path)


def record_timing(record: dict[str, Any], results: Path) -> Path:
    path = results / "timings.json"
    records = json.loads(path.read_text())["records"] if path.exists() else []
    records = [r for r in records if r["command"] != record["command"]] + [record]
    write_json(path, {"records": records})
    return path


def record_result(record: dict[str, Any], kept: Path, name: str, results: Path) -> Path:
    path = results / f"{name}.json"
    write_json(path, {**record, "result_file": str(kept), "result": json.loads(kept.read_text())})
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="a result file the command writes, recorded whole")
    parser.add_argument("--as", dest="name", help="the record's name under docs/results/ (with --keep)")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where records go (default: %(default)s)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to time after --")
    if (args.keep is None) != (args.name is None):
        parser.error("--keep and --as go together")
    record = timed(command)
    if record["exit_code"] != 0:
        print(
            f"record_timing: {record['command']!r} exited {record['exit_code']}; nothing recorded",
            file=sys.stderr,
        )
        return int(record["exit_code"])
    if args.keep is not None and not args.keep.is_file():
        print(f"record_timing: {args.keep} was not written by the command; nothing recorded", file=sys.stderr)
        return 1
    paths = [record_timing(record, args.results)]
    if args.keep is not None:
        paths.append(record_result(record, args.keep, args.name, args.results))
    print(
        f"record_timing: {record['command']} took {record['wall_s']} s; recorded in {', '.join(map(str, paths))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
