"""Served against in-process: SmolLM2 on vLLM's CPU server beside the in-process `smollm2`, same reviews,
same settings, recorded as docs/results/served-parity.json (docs/served.md renders it).

    .venv/bin/python tools/served_parity.py --data ../shared/data/marc_en_dev.jsonl

Without --base-url it starts vLLM's OpenAI server from .venv-vllm (`make .venv-vllm/.installed`) on the
packaged SmolLM2 saved as a float32 folder, exactly as the served tests do, and stops it at the end; with
--base-url it uses a server already serving the packaged SmolLM2 as `smollm2`. Both models run in one
`harness run` with 4 demonstrations and calibration fitted on the train split (the in-process defaults).
The record holds each row's metrics, scoring mode and latency (per request for the served model, per
review for both), how many reviews the two answer alike, the command lines, the server's version, the
machine and the date. A run that fails records nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
SERVED = "openai:smollm2"
LOCAL = "smollm2"
# the in-process defaults, given to both models: 4 demonstrations, calibration fitted on the train split
SETTINGS = {"shots": "4", "calibrate": "train"}
ROW_FIELDS = (
    "scoring_mode",
    "shots",
    "calibration",
    "requests",
    "request_latency_p50_s",
    "request_latency_p95_s",
    "review_seconds_p50",
    "review_seconds_p95",
)


def harness_command(data: str, limit: int, out: Path, base_url: str) -> list[str]:
    """The one run both rows come from: options given once reach both models, the rest are scoped."""
    return ["harness", "run", "--task", "polarity", "--data", data, "--limit", str(limit), "--out", str(out),
            "--model", LOCAL, "--model", SERVED,
            *[word for name, value in SETTINGS.items() for word in ("--model-option", f"{name}={value}")],
            "--model-option", "smollm2.engine=transformers",
            "--model-option", "openai.tokenizer=smollm2", "--model-option", f"openai.base_url={base_url}"]  # fmt: skip


def summary(run_dir: Path) -> dict[str, Any]:
    """The two rows of the run and how alike their answers are, review by review."""
    rows = {row["model"]: row for row in json.loads((run_dir / "results.json").read_text())["rows"]}
    predictions: dict[str, dict[str, dict[str, Any]]] = {LOCAL: {}, SERVED: {}}
    for line in (run_dir / "predictions.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["model"] in predictions:
            predictions[record["model"]][record["id"]] = record
    local, served = predictions[LOCAL], predictions[SERVED]
    shared = sorted(local.keys() & served.keys())
    differences = sorted(
        max(abs(a - b) for a, b in zip(local[i]["probs"], served[i]["probs"], strict=True)) for i in shared
    )
    same = sum(local[i]["pred"] == served[i]["pred"] for i in shared)
    return {
        "reviews": len(shared),
        "agreement": {"same": same, "share": round(same / len(shared), 6) if shared else None},
        "probability_difference": {
            "p95": round(differences[int(0.95 * (len(differences) - 1))], 6) if differences else None,
            "largest": round(differences[-1], 6) if differences else None,
        },
        "rows": [
            {
                "model": name,
                "label": rows[name].get("label") or name,
                "status": rows[name]["status"],
                "n": rows[name]["n"],
                "metrics": rows[name]["metrics"],
                "intervals": rows[name].get("intervals", {}),
                "latency": rows[name].get("latency", {}),
                # what the model reports of its protocol (a served one does), else the options it was given
                "shots": int(SETTINGS["shots"]),
                "calibration": SETTINGS["calibrate"],
                **{key: rows[name]["extra"][key] for key in ROW_FIELDS if key in rows[name]["extra"]},
            }
            for name in (LOCAL, SERVED)
        ],
    }


def server_version(base_url: str) -> str | None:
    """vLLM's version as its /version route gives it (None where the server has no such route)."""
    try:
        with urllib.request.urlopen(base_url.removesuffix("/v1") + "/version", timeout=10) as answer:
            return str(json.loads(answer.read())["version"])
    except (OSError, ValueError, KeyError):
        return None


def run_against(base_url: str, args: argparse.Namespace, argv: list[str]) -> dict[str, Any] | None:
    from record_timing import timed

    command = harness_command(args.data, args.limit, args.out, base_url)
    measured = timed([str(Path(sys.executable).with_name("harness")), *command[1:]])
    if measured["exit_code"] != 0:
        print(f"served_parity: harness run exited {measured['exit_code']}; nothing recorded", file=sys.stderr)
        return None
    return {
        "command": shlex.join(["python", "tools/served_parity.py", *argv]),
        "harness_command": shlex.join(command),
        "server": {
            "program": "vLLM (CPU build)",
            "version": server_version(base_url),
            "served_name": "smollm2",
        },
        **{key: measured[key] for key in ("wall_s", "date", "load_average", "machine", "git_commit")},
        "result": summary(args.out),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the reviews (a file harness run reads)")
    parser.add_argument("--limit", type=int, default=200, help="reviews scored (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("runs/served-parity"), help="the run directory")
    parser.add_argument("--base-url", help="a running server's /v1 URL (default: start vLLM's)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the record goes")
    args = parser.parse_args(argv)
    if args.base_url:
        record = run_against(args.base_url, args, argv)
    else:
        sys.path.insert(0, str(ROOT))
        from tests.openai_servers import packaged_smollm2_folder, vllm_server

        with tempfile.TemporaryDirectory(prefix="served-parity-") as folder:
            server = vllm_server(packaged_smollm2_folder(Path(folder)))
            server.start()
            try:
                record = run_against(server.base_url, args, argv)
            finally:
                server.stop()
    if record is None:
        return 1
    from record_timing import write_json

    path = args.results / "served-parity.json"
    write_json(path, record)
    agreement = record["result"]["agreement"]
    print(
        f"served_parity: {agreement['same']} of {record['result']['reviews']} answers alike; recorded in {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
