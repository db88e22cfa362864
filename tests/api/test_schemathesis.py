"""Schemathesis against the OpenAPI document, sent to a live server: no 5xx, ever.

The server is `configspec serve` in a real process (real lifespan, real
solver processes).  Schemathesis's pytest plugin does not run under this
pytest, so each operation is driven through its Hypothesis strategy
directly, in positive (schema-valid) and negative (schema-violating)
modes.  Example counts are modest: the module runs in about a minute.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from configspec_opt.api import create_app
from configspec_opt.api.settings import Settings
from tests.api.live import LiveServer

MAX_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(db_url="sqlite:///unused")).openapi())
SEEN: Counter[int] = Counter()  # status codes answered, over the whole module
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    with LiveServer(tmp / "st.sqlite3", tmp / "server.log", "--workers", "2",
                    "--time-limit", "5", "--backlog", "16") as server:
        yield server
        server.stop()
        assert "Traceback" not in (tmp / "server.log").read_text()


def test_every_operation_is_covered() -> None:
    assert len(OPERATIONS) == 12  # 11 paths, /v1/profiles has GET and POST


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_server_errors(live: LiveServer, label: str) -> None:
    op = OPERATIONS[label]
    strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE),
                         op.as_strategy(GenerationMode.NEGATIVE))

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
        response = case.call_and_validate(base_url=live.url, checks=CHECKS, timeout=60)
        SEEN[response.status_code] += 1

    check()


def test_fuzzing_reached_success_and_rejection() -> None:
    """Guards against a fuzzer that only ever hits one wall (all 415s, say)."""
    assert any(200 <= code < 300 for code in SEEN), SEEN
    assert SEEN[422] > 0, SEEN
    assert not any(code >= 500 for code in SEEN), SEEN
