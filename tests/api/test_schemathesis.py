"""Schemathesis against the OpenAPI document, sent to a live server, with every check.

The server is `configspec serve` in a real process (real lifespan, real
solver processes, the request guard on, a bearer token set, so
`ignored_auth` has something to check).  Schemathesis's pytest plugin does
not run under this pytest, so each operation is driven through its
Hypothesis strategy directly, in positive (schema-valid) and negative
(schema-violating) modes, and every response goes through every check
schemathesis registers: no 5xx, status codes, content types, headers and
bodies as documented, schema-violating requests refused, schema-valid ones
accepted, 405 with a correct `Allow` for other methods, auth not ignored.

One honest exception: a spec can be valid per JSON Schema yet break a rule
no JSON Schema can state (unique names, references between sections, one
field bounded by another).  The OpenAPI document lists those rules
(`openapi.UNSTATED_RULES`, in the spec body's description); a schema-valid
request refused with a 422 whose every error is one of them is counted
here as a documented refusal, not a failure.  Anything else refused fails.
Example counts are modest (`API_FUZZ_EXAMPLES`, default 25 per operation), and the
cases are the same on every run (Hypothesis's `derandomize`), so the suite passes or
fails for the code, not for the draw: every fresh draw used to find one more unstated
rule, a real finding but a flaky CI.  `API_FUZZ_RANDOM=1` (or the suite's
`HYPOTHESIS_PROFILE=explore`, tests/conftest.py) draws new cases: run it (with more
examples) after changing the API or the spec's rules, and state what it finds.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.specs.openapi.checks import positive_data_acceptance

from configspec_opt.api import create_app
from configspec_opt.api.openapi import UNSTATED_RULES
from configspec_opt.api.settings import Settings
from configspec_opt.drift.observations import UNSTATED_RULES as OBSERVATION_RULES
from tests.api.live import LiveServer

MAX_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))
RANDOM_DRAWS = (os.environ.get("API_FUZZ_RANDOM") == "1"
                or os.environ.get("HYPOTHESIS_PROFILE") == "explore")
TOKEN = "schemathesis-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(
    db_url="sqlite:///unused", token=TOKEN, default_time_limit=5.0)).openapi())
SEEN: Counter[int] = Counter()  # status codes answered, over the whole module
DOCUMENTED: Counter[str] = Counter()  # schema-valid requests refused by an unstated rule
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}  # type: ignore[union-attr]

# each rule of UNSTATED_RULES, as the messages that report it
RULE_MESSAGES = (
    r"^duplicate name '",
    r"^unknown (device|draft|target) '|has no quant '|cannot pair with target|"
    r"^second profile for |^acceptance_by_class names target ",
    r"k\.max \(\d+\) is below k\.min|^k=\d+ is outside search\.k \(\d+\.\.\d+\)$|"
    r"replicas\.max \(\d+\) is below replicas\.min|every row must list the same K",
    r"^no power data for ",
    r"per-device cost efficiency is n/a on replica-priced target",
    r"^unknown device .+ \(known: |both name \w+: a front needs two different metrics",
    r"^Input should be a valid integer \(got -?\d+\.0\)$",
    r"^under a batched verifier the y axis must be one of ",
    r"^the simulation plays batched verifiers' load forward and a load-blind solve models none",
    r"^min_goodput can only be maximised",
)
assert len(RULE_MESSAGES) == len(UNSTATED_RULES)
# the same for observation bodies (their rules are in ObservationsIn's description)
OBSERVATION_MESSAGES = (
    r"is more than num_draft_tokens|num_draft_tokens counted without a draft round",
    r"went backwards, from \d+ to \d+|tokens accepted since the last report but only",
)
assert len(OBSERVATION_MESSAGES) == len(OBSERVATION_RULES)


def _documented_rule(message: str) -> str | None:
    for pattern, rule in zip((*RULE_MESSAGES, *OBSERVATION_MESSAGES),
                             (*UNSTATED_RULES, *OBSERVATION_RULES)):
        if re.search(pattern, message, re.S):
            return rule
    return None


def positive_data_acceptance_or_documented(ctx: Any, response: Any, case: Any) -> bool | None:
    """`positive_data_acceptance`, except for 422s that only name unstated rules."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except AssertionError as exc:
        if response.status_code != 422:
            raise
        body = response.json()
        messages = [e["message"] for e in body.get("errors") or []
                    if not re.match(r"\.\.\. and [\d,]+ more problems? ", e["message"])] \
            or [body.get("detail", "")]
        unstated = [m for m in messages if _documented_rule(m) is None]
        if unstated:
            exc.add_note(f"refused for a rule neither the schema nor UNSTATED_RULES states: "
                         f"{unstated[:3]}")
            raise
        DOCUMENTED[_documented_rule(messages[0]) or ""] += 1
        return None


@schemathesis.serializer("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
def yaml_1_2(ctx: Any, value: Any) -> bytes:
    """YAML as the server reads it (1.2).  Schemathesis's own serializer is PyYAML's 1.1,
    which writes the string '1e+100' bare, and YAML 1.2 reads that as a number.  What
    ruamel cannot write (lone surrogates) goes as JSON, which is YAML 1.2 too."""
    buf = io.StringIO()
    yaml = YAML(typ="safe")
    yaml.width = 10**9
    try:
        yaml.dump(value, buf)
        return buf.getvalue().encode()
    except Exception:
        return json.dumps(value).encode()


load_all_checks()
CHECKS_USED = [c for c in CHECKS.get_all() if c is not positive_data_acceptance] + [
    positive_data_acceptance_or_documented]


def auth_for(case: Any) -> dict[str, str] | None:
    """The real token, unless the case is about a bad Authorization header: then it goes
    as generated (missing or malformed) and must be refused."""
    components = case.meta.components if case.meta is not None else {}
    for location, info in components.items():
        if getattr(location, "value", location) == "header" and \
                info.mode is GenerationMode.NEGATIVE:
            return None
    return AUTH


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    with LiveServer(tmp / "st.sqlite3", tmp / "server.log", "--workers", "2",
                    "--time-limit", "5", "--backlog", "16",
                    env={"CONFIGSPEC_API_TOKEN": TOKEN}) as server:
        yield server
        server.stop()
        assert "Traceback" not in (tmp / "server.log").read_text()


def test_every_operation_and_check_is_covered() -> None:
    assert len(OPERATIONS) >= 12  # 11 paths at first; /v1/profiles has GET and POST
    names = {getattr(c, "__name__", type(c).__name__) for c in CHECKS_USED}
    assert {"not_a_server_error", "negative_data_rejection", "ignored_auth",
            "unsupported_method", "response_schema_conformance",
            "positive_data_acceptance_or_documented"} <= names


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_check_holds(live: LiveServer, label: str) -> None:
    op = OPERATIONS[label]
    strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE),
                         op.as_strategy(GenerationMode.NEGATIVE))

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              derandomize=not RANDOM_DRAWS, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
        response = case.call_and_validate(base_url=live.url, checks=CHECKS_USED,
                                          headers=auth_for(case), timeout=60)
        SEEN[response.status_code] += 1

    check()


def test_fuzzing_reached_success_and_rejection() -> None:
    """Guards against a fuzzer that only ever hits one wall (all 415s, or all documented
    refusals, say)."""
    print(f"\nstatuses {dict(SEEN)}, documented refusals {dict(DOCUMENTED)}")
    assert any(200 <= code < 300 for code in SEEN), SEEN
    assert SEEN[422] > 0, SEEN
    assert not any(code >= 500 for code in SEEN), SEEN
    assert sum(DOCUMENTED.values()) < sum(SEEN.values()) / 2, (DOCUMENTED, SEEN)
