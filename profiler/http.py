"""JSON over HTTP with the standard library only: the edge has no httpx.

Used for remote targets and for `--push`.  Every call has a timeout;
connection failures, timeouts, 429 and 5xx are retried with exponential
backoff; anything else, and a body that is not JSON, ends in an
`EndpointError` that names the URL and what came back.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from profiler.errors import EndpointError

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class HttpPolicy:
    """How `request_json` talks to a server: per-attempt timeout (s), retries and bearer token.

    Retries cover connection errors and the transient statuses in
    `RETRY_STATUS`, with a doubling pause from `backoff_s`; other HTTP errors
    fail at once.
    """

    timeout_s: float = 60.0
    retries: int = 3
    backoff_s: float = 0.5
    token: str | None = None


def request_json(method: str, url: str, body: Any | None = None,
                 policy: HttpPolicy = HttpPolicy()) -> Any:
    """Send `body` as JSON (if any) and return the decoded JSON answer (None if empty)."""
    data = None if body is None else json.dumps(body, allow_nan=False).encode("utf-8")
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if policy.token:
        headers["Authorization"] = f"Bearer {policy.token}"
    last = ""
    for attempt in range(policy.retries + 1):
        if attempt:
            time.sleep(policy.backoff_s * 2 ** (attempt - 1))
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=policy.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = _snippet(exc.read())
            last = f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
            if exc.code in RETRY_STATUS:
                continue
            raise EndpointError(f"{method} {url} failed: {last}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last = f"{reason}"
            continue
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise EndpointError(f"{method} {url} answered something that is not JSON: "
                                f"{_snippet(raw)!r}") from None
    raise EndpointError(f"{method} {url} failed after {policy.retries + 1} attempts: {last} "
                        "(is the server running and the URL right?)")


def _snippet(raw: bytes, n: int = 200) -> str:
    text = raw.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:n] + ("..." if len(text) > n else "")
