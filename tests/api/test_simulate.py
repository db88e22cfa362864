"""`POST /v1/solve?simulate=J`: the step simulation of an answer's batched verifiers."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.conftest import YAML_CT
from tests.api.helpers import assert_problem

SHARED = Path(__file__).resolve().parents[2] / "examples" / "fleet-verifier" / \
    "shared-verifier.yaml"


def test_solve_with_simulate_adds_the_simulation_to_each_verifier(client: TestClient) -> None:
    r = client.post("/v1/solve?simulate=0.25&explain=false", content=SHARED.read_text(),
                    headers=YAML_CT)
    assert r.status_code == 200, r.text
    (ver,) = r.json()["fleet"]["verifiers"]
    sim = ver["simulated"]
    assert sim["jitter"] == 0.25 and sim["devices"] == 50
    lo, hi = sim["goodput_range_tok_s"]
    assert lo <= sim["goodput_tok_s"] * (1 + 1e-9) <= hi * (1 + 1e-9) ** 2


def test_simulate_out_of_range_or_with_load_blind_is_a_4xx(client: TestClient) -> None:
    text = SHARED.read_text()
    assert_problem(client.post("/v1/solve?simulate=1.5", content=text, headers=YAML_CT), 422,
                   "invalid-request")
    body = assert_problem(client.post("/v1/solve?simulate=0.2&load_blind=true", content=text,
                                      headers=YAML_CT), 422, "invalid-request")
    assert "a load-blind solve models none" in body["detail"]
