"""What a row costs in dollars, and how long its reviews waited: the figures a routing decision is made on.

Seconds on an unnamed machine are not a price. A local row costs the
hardware's hourly price times its measured fit and scoring time; the price
is `--price-per-hour` when given, else the list price of a common instance
matching the detected device (the packaged price file names its source
and date, and both are recorded with the row). A served or hosted model
with token prices (`price_in`, `price_out`, or the price file's for a listed
hosted model) costs its tokens instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class HourlyPrice:
    usd_per_hour: float
    source: str


@dataclass(frozen=True)
class TokenPrice:
    usd_per_million_in: float
    usd_per_million_out: float
    source: str


@cache
def price_file() -> dict[str, Any]:
    """The packaged list prices (CPU instances by vCPUs, GPUs by name), with their source and date."""
    text = resources.files("harness").joinpath("data/prices.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def hourly_price(
    backend: Mapping[str, Any], price_per_hour: float | None, cpus: int | None = None
) -> HourlyPrice | None:
    """The price per hour of the hardware a row ran on, or None when nothing known matches it.

    A CPU run is priced as the cheapest listed instance with at least this
    machine's cores; a CUDA run as the listed GPU whose name the device's
    name contains (one GPU's share of its instance).
    """
    if price_per_hour is not None:
        return HourlyPrice(float(price_per_hour), "--price-per-hour")
    prices = price_file()
    cite = f"{prices['source']}, {prices['date']}"
    device = str(backend.get("device", "cpu"))
    if device.startswith("cuda"):
        name = str(backend.get("device_name", "")).casefold()
        for entry in prices["gpu"]:
            if entry["gpu"].casefold() in name:
                return HourlyPrice(float(entry["usd_per_hour"]), f"{entry['instance']}: {cite}")
        return None
    if device != "cpu":
        return None
    cores = cpus or os.cpu_count() or 1
    fitting = [e for e in prices["cpu"] if e["vcpus"] >= cores]
    entry = (
        min(fitting, key=lambda e: e["usd_per_hour"])
        if fitting
        else max(prices["cpu"], key=lambda e: e["vcpus"])
    )
    return HourlyPrice(float(entry["usd_per_hour"]), f"{entry['instance']} ({entry['vcpus']} vCPUs): {cite}")


def token_price(model_name: str) -> TokenPrice | None:
    """The listed token prices of a hosted model, matched by the longest listed name its name starts with
    (a dated snapshot such as gpt-4o-mini-2024-07-18 is priced as gpt-4o-mini); None when none matches."""
    tokens = price_file()["tokens"]
    name = model_name.casefold()
    matches = [entry for entry in tokens["models"] if name.startswith(entry["model"].casefold())]
    if not matches:
        return None
    entry = max(matches, key=lambda e: len(e["model"]))
    return TokenPrice(
        float(entry["usd_per_million_in"]),
        float(entry["usd_per_million_out"]),
        f"{entry['model']}: {tokens['source']}, {tokens['date']}",
    )


def row_cost(n: int, seconds: float, extra: Mapping[str, Any], price: HourlyPrice | None) -> dict[str, Any]:
    """Dollars for the row and per 1,000 reviews: token cost when the model reports one, else hardware time."""
    token_cost = extra.get("token_cost_usd")
    if token_cost is not None:
        usd, basis, source = (
            float(token_cost),
            "tokens at price_in and price_out per million",
            str(extra.get("token_price_source", "model options")),
        )
    elif price is not None:
        usd = price.usd_per_hour * seconds / 3600
        basis, source = f"{seconds:.2f} s of fit and scoring at ${price.usd_per_hour:g}/hour", price.source
    else:
        return {"usd": None, "note": "no price known for this device; pass --price-per-hour"}
    return {
        "usd": usd,
        "usd_per_1000_reviews": 1000 * usd / n if n else None,
        "basis": basis,
        "source": source,
    }


def latency_summary(per_review_s: Sequence[float], extra: Mapping[str, Any]) -> dict[str, Any]:
    """p50 and p95 latency: per request when the model timed its requests, else per review (batch time shared)."""
    import numpy as np

    if "request_latency_p50_s" in extra:
        return {
            "p50_s": extra["request_latency_p50_s"],
            "p95_s": extra["request_latency_p95_s"],
            "per": "request",
        }
    if not per_review_s:
        return {}
    values = np.asarray(per_review_s, dtype=np.float64)
    return {
        "p50_s": float(np.percentile(values, 50)),
        "p95_s": float(np.percentile(values, 95)),
        "per": "review (a batch's time shared by its reviews)",
    }
