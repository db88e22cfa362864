"""The OpenAPI document says what the service does: bodies, problems, docs."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

SPEC_ROUTES = ("/v1/validate", "/v1/evaluate", "/v1/solve", "/v1/pareto", "/v1/jobs")


def doc(client: TestClient) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    data: dict[str, Any] = r.json()
    return data


def test_spec_bodies_are_yaml_or_json(client: TestClient) -> None:
    d = doc(client)
    for path in SPEC_ROUTES:
        content = d["paths"][path]["post"]["requestBody"]["content"]
        assert {"application/json", "application/yaml"} <= set(content)
        assert content["application/yaml"]["schema"] == {"$ref": "#/components/schemas/Spec"}
    upload = d["paths"]["/v1/profiles"]["post"]["requestBody"]["content"]
    assert upload["application/json"]["schema"]["$ref"].endswith("/ProfilesIn")
    assert {"Spec", "ProfilesIn", "Problem", "Profile"} <= set(d["components"]["schemas"])


def test_every_error_is_problem_json(client: TestClient) -> None:
    d = doc(client)
    seen = 0
    for item in d["paths"].values():
        for op in item.values():
            for code, response in op["responses"].items():
                if code[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"]
                    seen += 1
    assert seen > 20
    assert "HTTPValidationError" not in d["components"]["schemas"]


def test_docs_page(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert "swagger" in r.text.lower()
