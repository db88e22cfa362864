"""Profiles pushed from the edge: stored, listed, and used by solves that ask for them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import YAML_CT, MakeClient
from tests.api.helpers import assert_problem

FAST_ORIN = {"device": "orin", "draft": "llama-3.2-1b-instruct", "quant": "Q4_K_M",
             "draft_tok_s": 400.0, "power_w": 44.1,
             "acceptance": {"llama-3.1-70b": {"2": 0.7, "3": 0.65, "4": 0.6, "5": 0.546,
                                              "6": 0.52, "7": 0.48, "8": 0.44, "9": 0.41,
                                              "10": 0.38}},
             "provenance": {"tool": "configspec profile", "llama_cpp": "0.3.2"}}


@pytest.fixture
def c(make_client: MakeClient) -> Iterator[TestClient]:
    with make_client() as client:
        yield client


def push(c: TestClient, *profiles: dict[str, Any]) -> Any:
    return c.post("/v1/profiles", json={"profiles": list(profiles)})


def test_push_contract_of_the_profiler(c: TestClient) -> None:
    """Exactly what `configspec profile --push` sends: JSON {"profiles": [...]}."""
    r = push(c, FAST_ORIN)
    assert r.status_code == 201
    [stored] = r.json()["profiles"]
    assert stored["id"] >= 1
    assert stored["received_at"].endswith("Z")
    assert stored["profile"]["draft_tok_s"] == 400.0
    assert stored["profile"]["provenance"] == FAST_ORIN["provenance"]
    assert "idle_power_w" not in stored["profile"]  # unset stays unset
    assert c.get(f"/v1/profiles/{stored['id']}").json() == stored


def test_push_yaml(c: TestClient) -> None:
    text = ("profiles:\n  - device: rpi5\n    draft: d\n    quant: Q4_0\n"
            "    draft_tok_s: 12.5\n    acceptance: {t: {per_token: 0.8}}\n")
    r = c.post("/v1/profiles", content=text, headers=YAML_CT)
    assert r.status_code == 201
    assert r.json()["profiles"][0]["profile"]["acceptance"] == {"t": {"per_token": 0.8}}


def test_newest_per_key_and_history(c: TestClient) -> None:
    push(c, {**FAST_ORIN, "draft_tok_s": 100.0})
    push(c, {**FAST_ORIN, "draft_tok_s": 200.0},
         {**FAST_ORIN, "device": "rpi5", "draft_tok_s": 15.0})
    latest = c.get("/v1/profiles?device=orin").json()["profiles"]
    assert [p["profile"]["draft_tok_s"] for p in latest] == [200.0]
    history = c.get("/v1/profiles?device=orin&history=true").json()["profiles"]
    assert [p["profile"]["draft_tok_s"] for p in history] == [200.0, 100.0]
    assert len(c.get("/v1/profiles").json()["profiles"]) == 2
    assert c.get("/v1/profiles?device=jetson").json()["profiles"] == []
    assert len(c.get("/v1/profiles?history=true&limit=2&offset=1").json()["profiles"]) == 2
    assert c.get("/v1/profiles?quant=Q8_0").json()["profiles"] == []


def test_invalid_entry_is_located(c: TestClient) -> None:
    text = ("profiles:\n  - device: rpi5\n    draft: d\n    quant: Q4_0\n"
            "    draft_tok_s: -3\n    acceptance: {}\n    colour: red\n")
    r = c.post("/v1/profiles", content=text, headers=YAML_CT)
    body = assert_problem(r, 422, "invalid-profiles")
    by_path = {e["path"]: e for e in body["errors"]}
    assert by_path["profiles[0].draft_tok_s"]["line"] == 5
    assert by_path["profiles[0].colour"]["line"] == 7
    assert c.get("/v1/profiles").json()["profiles"] == []  # nothing half-stored


@pytest.mark.parametrize("body", [
    [FAST_ORIN],
    {"profiles": []},
    {"profiles": [FAST_ORIN], "extra": 1},
    {"profile": [FAST_ORIN]},
    {"profiles": FAST_ORIN},
])
def test_wrong_upload_shape(c: TestClient, body: Any) -> None:
    r = c.post("/v1/profiles", content=json.dumps(body),
               headers={"Content-Type": "application/json"})
    assert_problem(r, 422, "invalid-profiles")


def test_unknown_profile_is_404(c: TestClient) -> None:
    assert_problem(c.get("/v1/profiles/999"), 404, "not-found")
    assert_problem(c.get("/v1/profiles/0"), 422, "invalid-request")


def test_solve_with_stored_profiles(c: TestClient, example_text: str,
                                    spec_data: dict[str, Any]) -> None:
    inline = c.post("/v1/solve", content=example_text, headers=YAML_CT).json()
    stored_id = push(c, FAST_ORIN).json()["profiles"][0]["id"]
    r = c.post("/v1/solve?profiles=stored", content=example_text, headers=YAML_CT)
    assert r.status_code == 200
    body = r.json()
    assert body["stored_profiles"] == [{"id": stored_id, "device": "orin",
                                        "draft": "llama-3.2-1b-instruct", "quant": "Q4_K_M"}]
    assert any("inline entries were used" in w for w in body["warnings"])
    # the same as putting the measured entry into the spec by hand
    for p in spec_data["profiles"]:
        if (p["device"], p["draft"], p["quant"]) == ("orin", "llama-3.2-1b-instruct",
                                                      "Q4_K_M"):
            p["draft_tok_s"] = 400.0
    by_hand = c.post("/v1/solve", json=spec_data).json()
    assert body["objective"]["value"] == pytest.approx(by_hand["objective"]["value"])
    assert body["objective"]["value"] > inline["objective"]["value"]
    assert body["assignments"] == by_hand["assignments"]


def test_stored_profiles_for_other_specs_are_ignored(c: TestClient, example_text: str) -> None:
    push(c, {**FAST_ORIN, "device": "pi-zero"}, {**FAST_ORIN, "draft": "qwen"},
         {**FAST_ORIN, "acceptance": {"other-target": {"per_token": 0.9},
                                      "llama-3.1-70b": {"per_token": 0.5}}})
    body = c.post("/v1/validate?profiles=stored", content=example_text,
                  headers=YAML_CT).json()
    assert [p["device"] for p in body["stored_profiles"]] == ["orin"]


def test_stored_profile_that_breaks_the_spec_is_named(c: TestClient,
                                                      spec_data: dict[str, Any]) -> None:
    """A stored entry without power makes an energy limit impossible: say which entry."""
    no_power = {k: v for k, v in FAST_ORIN.items() if k != "power_w"}
    pid = push(c, no_power).json()["profiles"][0]["id"]
    r = c.post("/v1/solve?profiles=stored", json=spec_data)
    body = assert_problem(r, 422, "invalid-spec")
    assert "no power data" in body["errors"][0]["message"]
    r = c.post("/v1/evaluate?profiles=stored&top=1", json=spec_data)
    assert r.status_code == 422
    del spec_data["constraints"]["per_device"]["max_energy_j_per_tok"]
    r = c.post("/v1/evaluate?profiles=stored&top=1", json=spec_data)
    assert "max_power_w" in str(assert_problem(r, 422, "invalid-spec")["errors"])
    for scope in ("per_device", "fleet"):  # power caps need power data too
        spec_data["constraints"][scope].pop("max_power_w", None)
    ok = c.post("/v1/evaluate?profiles=stored&top=1", json=spec_data).json()
    assert ok["stored_profiles"][0]["id"] == pid


def test_no_matching_stored_profile_warns(c: TestClient, example_text: str) -> None:
    body = c.post("/v1/validate?profiles=stored", content=example_text,
                  headers=YAML_CT).json()
    assert body["stored_profiles"] == []
    assert any("no stored profile matches" in w for w in body["warnings"])
