"""validate / evaluate / solve / pareto / schema: the CLI's JSON over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ruamel.yaml import YAML

from tests.api.conftest import YAML_CT
from tests.api.helpers import assert_problem, cli_json, without_timing


@pytest.mark.parametrize(("endpoint", "cli_args"), [
    ("validate", ["validate"]),
    ("evaluate?sort=energy&top=3", ["evaluate", "--sort", "energy", "--top", "3"]),
    ("solve", ["solve"]),
    ("solve?objective=min:energy&device=rpi5", ["solve", "--objective", "min:energy",
                                                 "--device", "rpi5"]),
    ("pareto?x=goodput&y=cost&points=5", ["pareto", "--x", "goodput", "--y", "cost",
                                          "--points", "5"]),
])
def test_same_json_as_cli(client: TestClient, example_text: str, tmp_path: Path,
                          endpoint: str, cli_args: list[str]) -> None:
    r = client.post(f"/v1/{endpoint}", content=example_text, headers=YAML_CT)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    expected = cli_json(tmp_path, example_text, *cli_args)
    assert without_timing(r.json()) == without_timing(expected)


def test_json_body_gives_same_answer_as_yaml(client: TestClient, example_text: str,
                                             example_data: dict[str, Any]) -> None:
    as_yaml = client.post("/v1/solve", content=example_text, headers=YAML_CT).json()
    as_json = client.post("/v1/solve", json=example_data).json()
    assert as_json["assignments"] == as_yaml["assignments"]
    assert as_json["objective"] == as_yaml["objective"]


def test_solve_is_recorded(client: TestClient, example_text: str) -> None:
    r = client.post("/v1/solve?objective=max:cost_efficiency", content=example_text,
                    headers=YAML_CT)
    location = r.headers["content-location"]
    stored = client.get(location)
    assert stored.status_code == 200
    body = stored.json()
    assert body["kind"] == "solve"
    assert body["body"] == r.json()
    assert body["params"]["objective"] == "max:cost_efficiency"
    assert body["params"]["time_limit"] == 10.0  # the server default, recorded
    assert body["spec_sha256"] == r.json()["spec_sha256"]


def test_validate_and_evaluate_are_not_recorded(client: TestClient, example_text: str) -> None:
    for endpoint in ("validate", "evaluate"):
        r = client.post(f"/v1/{endpoint}", content=example_text, headers=YAML_CT)
        assert r.status_code == 200
        assert "content-location" not in r.headers


def test_unknown_result(client: TestClient) -> None:
    assert_problem(client.get("/v1/results/" + "0" * 32), 404, "not-found")
    assert_problem(client.get("/v1/results/abc"), 422, "invalid-request")
    assert_problem(client.get("/v1/results/1"), 422, "invalid-request")  # ids are random


def test_pareto_is_recorded(client: TestClient, example_text: str) -> None:
    r = client.post("/v1/pareto?points=3", content=example_text, headers=YAML_CT)
    assert r.status_code == 200
    assert len(r.json()["points"]) == 3
    assert client.get(r.headers["content-location"]).json()["kind"] == "pareto"


def test_infeasible_is_200_with_diagnosis(client: TestClient, spec_data: dict[str, Any],
                                          tmp_path: Path) -> None:
    spec_data["constraints"]["fleet"]["max_power_w"] = 100
    text = json.dumps(spec_data)
    r = client.post("/v1/solve", content=text, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "infeasible"
    assert body["assignments"] == []
    relax = {x["constraint"] for x in body["diagnosis"]["relaxations"]}
    assert "constraints.fleet.max_power_w" in relax
    assert without_timing(body) == without_timing(cli_json(tmp_path, text, "solve"))


def test_invalid_spec_has_cli_locations(client: TestClient, example_text: str,
                                        tmp_path: Path) -> None:
    bad = example_text.replace("draft_tok_s: 9.1", "draft_toks: 9.1").replace(
        "count: 20\n", "count: -3\n")
    r = client.post("/v1/validate", content=bad, headers=YAML_CT)
    body = assert_problem(r, 422, "invalid-spec")
    assert body["detail"] == "invalid spec (3 problems)"
    assert body["instance"] == "/v1/validate"
    cli = cli_json(tmp_path, bad, "validate")
    assert cli["status"] == "invalid"
    strip = [{k: v for k, v in e.items() if k != "file"} for e in cli["errors"]]
    assert [{k: v for k, v in e.items() if k != "file"} for e in body["errors"]] == strip
    assert {e["file"] for e in body["errors"]} == {"<request>"}
    unknown = next(e for e in body["errors"] if "unknown key" in e["message"])
    line = next(i for i, t in enumerate(bad.splitlines(), 1) if "draft_toks" in t)
    assert unknown["line"] == line
    assert unknown["hint"] == "did you mean 'draft_tok_s'?"


@pytest.mark.parametrize("endpoint", ["validate", "evaluate", "solve", "pareto"])
def test_every_spec_endpoint_rejects_invalid_specs(client: TestClient, endpoint: str) -> None:
    r = client.post(f"/v1/{endpoint}", content="version: 1\nname: x\n", headers=YAML_CT)
    body = assert_problem(r, 422, "invalid-spec")
    assert any("targets" in e["message"] for e in body["errors"])


def test_profiles_from_is_refused(client: TestClient, spec_data: dict[str, Any]) -> None:
    """Paths in a request are data: the server never opens /etc/passwd for anyone."""
    spec_data["profiles_from"] = ["/etc/passwd"]
    body = assert_problem(client.post("/v1/validate", json=spec_data), 422, "invalid-spec")
    assert "profiles_from" in body["errors"][0]["message"]
    assert "root:" not in json.dumps(body)


@pytest.mark.parametrize(("query", "needle"), [
    ("device=nope", "unknown device nope"),
    ("objective=max:speed", "unknown metric 'speed'"),
    ("objective=sideways:goodput", "unknown direction"),
])
def test_options_that_cannot_apply(client: TestClient, example_text: str, query: str,
                                   needle: str) -> None:
    r = client.post(f"/v1/solve?{query}", content=example_text, headers=YAML_CT)
    assert needle in assert_problem(r, 422, "invalid-request")["detail"]


def test_energy_without_power_data(client: TestClient, spec_data: dict[str, Any]) -> None:
    for p in spec_data["profiles"]:
        if p["device"] == "orin":
            del p["power_w"]
    del spec_data["constraints"]["per_device"]["max_energy_j_per_tok"]
    for scope in ("per_device", "fleet"):  # a power cap over unknown power is an error too
        spec_data["constraints"][scope].pop("max_power_w", None)
    r = client.post("/v1/solve?objective=min:energy", json=spec_data)
    assert "energy is not available for orin" in assert_problem(r, 422, "invalid-request")[
        "detail"]
    ok = client.post("/v1/solve?objective=min:energy&device=rpi5", json=spec_data)
    assert ok.status_code == 200


@pytest.mark.parametrize(("query", "path"), [
    ("bogus=1", "query.bogus"),
    ("time_limit=-1", "query.time_limit"),
    ("gap=2", "query.gap"),
    ("points=0", "query.points"),
])
def test_bad_query_parameters(client: TestClient, example_text: str, query: str,
                              path: str) -> None:
    endpoint = "pareto" if "points" in query else "solve"
    r = client.post(f"/v1/{endpoint}?{query}", content=example_text, headers=YAML_CT)
    body = assert_problem(r, 422, "invalid-request")
    assert [e["path"] for e in body["errors"]] == [path]


def test_time_limit_above_server_maximum(client: TestClient, example_text: str) -> None:
    r = client.post("/v1/solve?time_limit=61", content=example_text, headers=YAML_CT)
    assert "maximum of 60 s" in assert_problem(r, 422, "invalid-request")["detail"]
    ok = client.post("/v1/solve?time_limit=5", content=example_text, headers=YAML_CT)
    assert client.get(ok.headers["content-location"]).json()["params"]["time_limit"] == 5


def test_schema_is_the_cli_schema(client: TestClient, tmp_path: Path) -> None:
    from configspec_opt.operations import spec_schema

    r = client.get("/v1/schema")
    assert r.status_code == 200
    assert r.json() == spec_schema()
    assert "Profile" in r.json()["$defs"]


def test_responses_are_json_whatever_the_request(client: TestClient,
                                                   example_text: str) -> None:
    """Responses are JSON whatever the request was: one format for clients to parse."""
    r = client.post("/v1/validate", content=example_text, headers=YAML_CT)
    assert r.headers["content-type"] == "application/json"
    assert YAML(typ="safe").load(r.text) == r.json()


@pytest.mark.parametrize("query", ["x=min:cost&y=max:cost", "x=goodput&y=goodput"])
def test_pareto_of_one_metric_against_itself_is_refused(client: TestClient, example_text: str,
                                                        query: str) -> None:
    r = client.post(f"/v1/pareto?{query}", content=example_text, headers=YAML_CT)
    body = assert_problem(r, 422, "invalid-request")
    assert "two different metrics" in body["detail"]
