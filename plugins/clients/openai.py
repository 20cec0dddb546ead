"""HTTP calls to an OpenAI-compatible server: retries, a request-rate limit, and errors people can act on.

Servers under load answer 429 or 5xx and hosted APIs ask clients to slow
down with `Retry-After`, so those (and timeouts and refused connections,
as when a server restarts) are retried with exponential backoff; anything
else fails at once with one line that says what to fix. The API key is
sent in a header and appears in no message, record or file: a server or
gateway may echo the request's headers in its answers, so every byte it
sends back has the key (and any `Bearer ...` token) redacted before anything
reads it, and the server's error text loses its control characters.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from harness.errors import HarnessError

RETRIED_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
REDACTED = "[redacted]"
BEARER_TOKEN = re.compile(rb"(Bearer\s+)[^\s\"',;\\]+", re.IGNORECASE)
# Control characters (ESC starts terminal sequences) and bidi controls, as review text loses them on display.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]+")


class EndpointError(HarnessError):
    """A request the server refused or could not answer; `status` is None when no answer came."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimiter:
    """Spaces request starts at least 60/rpm seconds apart across threads (rpm 0: no limit)."""

    def __init__(self, requests_per_minute: float) -> None:
        self.interval = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        time.sleep(max(0.0, start - now))


class EndpointClient:
    """One server's base URL and key, shared by every worker thread (each request is its own connection).

    The standard library's urllib is enough here and keeps the harness free
    of an HTTP client dependency.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float,
        max_retries: int,
        requests_per_minute: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        self._secrets: list[bytes] = []
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
            self._secrets = [api_key.encode(), json.dumps(api_key)[1:-1].encode()]
        self.timeout = timeout
        self.max_retries = max_retries
        self.limiter = RateLimiter(requests_per_minute)

    def post(
        self, path: str, body: dict[str, Any], *, retries: int | None = None
    ) -> tuple[dict[str, Any], float]:
        """The JSON answer to one request and the seconds the successful attempt took."""
        retries = self.max_retries if retries is None else retries
        data = json.dumps(body).encode()
        delay = BACKOFF_START_S
        for attempt in range(retries + 1):
            self.limiter.wait()
            began = time.perf_counter()
            request = urllib.request.Request(self.base_url + path, data=data, headers=self._headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = self.redact(response.read())
                return _json(payload, path), time.perf_counter() - began
            except urllib.error.HTTPError as error:
                failure = self.refusal(error.code, self.redact(error.read()), path)
                if error.code not in RETRIED_STATUS:
                    raise failure from None
                wait = retry_after(error.headers.get("Retry-After"), delay)
            except TimeoutError:
                failure = EndpointError(
                    f"{self.base_url}{path}: no answer within request_timeout={self.timeout:g}s"
                )
                wait = delay
            except (urllib.error.URLError, ConnectionError, http.client.HTTPException) as error:
                reason = getattr(error, "reason", error)
                failure = EndpointError(f"cannot reach {self.base_url} ({reason}); is the server running?")
                wait = delay
            if attempt == retries:
                suffix = f" (after {retries} retries)" if retries else ""
                raise EndpointError(f"{failure}{suffix}", failure.status) from None
            time.sleep(min(wait, BACKOFF_MAX_S))
            delay *= 2
        raise AssertionError("unreachable")

    def model_names(self) -> list[str]:
        """The model names `GET /models` lists, or none when the server does not say."""
        request = urllib.request.Request(self.base_url + "/models", headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(self.redact(response.read()))
            return sorted(printable(str(item["id"])) for item in answer.get("data", []))
        except Exception:
            return []

    def redact(self, payload: bytes) -> bytes:
        """What the server sent, with the API key and any bearer token replaced, wherever they appear."""
        for secret in self._secrets:
            payload = payload.replace(secret, REDACTED.encode())
        return BEARER_TOKEN.sub(rb"\1" + REDACTED.encode(), payload)

    def refusal(self, status: int, payload: bytes, path: str) -> EndpointError:
        """One line for an HTTP error, with the fix for the ones people meet."""
        where = f"{self.base_url}{path}"
        if status == 401:
            return EndpointError(
                f"{where}: the server refused the API key (HTTP 401); check api_key_env", 401
            )
        if status == 403:
            return EndpointError(f"{where}: the API key may not use this model (HTTP 403)", 403)
        detail = _detail(payload)
        return EndpointError(f"{where}: HTTP {status}{': ' + detail if detail else ''}", status)


def retry_after(header: str | None, fallback: float) -> float:
    """Seconds a `Retry-After` header asks for (a number of seconds), else the backoff's own delay."""
    try:
        return max(0.0, float(header)) if header is not None else fallback
    except ValueError:
        return fallback


def _json(payload: bytes, path: str) -> dict[str, Any]:
    try:
        answer = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError):
        shown = printable(payload[:120].decode("utf-8", "replace"))
        raise EndpointError(f"{path}: the server's answer is not JSON: {shown!r}") from None
    if not isinstance(answer, dict):
        raise EndpointError(f"{path}: the server's answer is not a JSON object")
    return answer


def _detail(payload: bytes) -> str:
    """The server's own error message, short, on one line."""
    try:
        answer = json.loads(payload)
        error = answer.get("error", answer.get("detail", ""))
        text = error.get("message", "") if isinstance(error, dict) else str(error)
    except Exception:
        text = payload.decode("utf-8", "replace")
    return " ".join(printable(str(text)).split())[:200]


def printable(text: str) -> str:
    """Server text without control characters: it reaches the terminal and the leaderboard files."""
    return CONTROL.sub(" ", text)
