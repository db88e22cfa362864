"""Send measured profiles to the configspec HTTP service (`--push URL`).

Contract with the service: POST `{"profiles": [...]}` (the entries exactly
as written into the spec) to `URL/v1/profiles`, bearer token from
`CONFIGSPEC_API_TOKEN` when set; any 2xx is success.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from profiler.http import HttpPolicy, request_json

TOKEN_ENV = "CONFIGSPEC_API_TOKEN"


def jsonable(value: Any) -> Any:
    """YAML-ish data (int keys of alpha tables) as JSON data (string keys)."""
    return json.loads(json.dumps(value, allow_nan=False, default=str))


PUSH_POLICY = HttpPolicy(timeout_s=30.0)


def push_profiles(url: str, profiles: Sequence[Mapping[str, Any]],
                  policy: HttpPolicy = PUSH_POLICY) -> Any:
    """POST profile entries to a `configspec serve` at `url`; returns the server's JSON answer.

    The bearer token comes from CONFIGSPEC_API_TOKEN when set.  Transient
    failures are retried (see `HttpPolicy`); others raise EndpointError.
    """
    token = os.environ.get(TOKEN_ENV) or None
    target = url.rstrip("/") + "/v1/profiles"
    body = {"profiles": [jsonable(dict(p)) for p in profiles]}
    return request_json("POST", target, body, HttpPolicy(policy.timeout_s, policy.retries,
                                                         policy.backoff_s, token))
