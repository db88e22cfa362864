"""Small helpers shared by the API tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from configspec_opt.cli import app as cli_app

TIMING_KEYS = frozenset({"time_s", "build_s"})


def without_timing(data: Any) -> Any:
    """The JSON with wall-clock fields removed (they differ run to run)."""
    if isinstance(data, dict):
        return {k: without_timing(v) for k, v in data.items() if k not in TIMING_KEYS}
    if isinstance(data, list):
        return [without_timing(v) for v in data]
    return data


def cli_json(tmp_path: Path, text: str, *args: str) -> Any:
    """What `configspec <args> SPEC --json` prints for this spec text."""
    spec = tmp_path / "cli-spec.yaml"
    spec.write_text(text)
    result = CliRunner().invoke(cli_app, [args[0], str(spec), "--json", *args[1:]])
    return json.loads(result.stdout)


def assert_problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of this status and type; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == f"urn:configspec-opt:problem:{kind}"
    assert body["title"]
    return body
