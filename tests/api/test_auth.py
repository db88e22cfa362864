"""Bearer-token auth, and the refusal to serve the network without it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from configspec_opt.api.settings import token_from_env
from configspec_opt.cli.serve import check_exposure, is_loopback, parse_size
from configspec_opt.errors import UsageError
from tests.api.conftest import YAML_CT, MakeClient
from tests.api.helpers import assert_problem

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def c(make_client: MakeClient) -> Iterator[TestClient]:
    with make_client(token=TOKEN) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/validate"), ("POST", "/v1/solve"), ("POST", "/v1/profiles"),
    ("GET", "/v1/profiles"), ("GET", "/v1/schema"), ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/" + "0" * 32), ("GET", "/v1/results/1"),
])
def test_every_v1_route_needs_the_token(c: TestClient, example_text: str, method: str,
                                        path: str) -> None:
    r = c.request(method, path, content=example_text, headers=YAML_CT)
    body = assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in body["detail"]
    r = c.request(method, path, content=example_text,
                  headers={**YAML_CT, "Authorization": "Bearer wrong"})
    assert_problem(r, 401, "unauthorized")
    r = c.request(method, path, content=example_text,
                  headers={**YAML_CT, "Authorization": f"Basic {TOKEN}"})
    assert_problem(r, 401, "unauthorized")


def test_right_token_passes(c: TestClient, example_text: str) -> None:
    r = c.post("/v1/solve", content=example_text,
               headers={**YAML_CT, "Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200


def test_health_and_docs_are_open(c: TestClient) -> None:
    assert c.get("/healthz").status_code == 200
    doc = c.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert c.get("/docs").status_code == 200


def test_no_token_no_security_scheme(client: TestClient) -> None:
    assert "securitySchemes" not in client.get("/openapi.json").json()["components"]


def test_token_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIGSPEC_API_TOKEN", "  abc  ")
    assert token_from_env() == "abc"
    monkeypatch.setenv("CONFIGSPEC_API_TOKEN", "   ")
    assert token_from_env() is None  # a blank token would let anyone in
    monkeypatch.delenv("CONFIGSPEC_API_TOKEN")
    assert token_from_env() is None


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.0.2.10", False),
    ("no-such-host.invalid", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_exposure_rules() -> None:
    check_exposure("127.0.0.1", None, allow_remote=False)
    check_exposure("0.0.0.0", "token", allow_remote=False)
    check_exposure("0.0.0.0", None, allow_remote=True)
    with pytest.raises(UsageError, match="CONFIGSPEC_API_TOKEN"):
        check_exposure("0.0.0.0", None, allow_remote=False)


@pytest.mark.parametrize(("text", "size"), [("4MiB", 4 << 20), ("512KiB", 512 << 10),
                                            ("1048576", 1 << 20), ("2m", 2 << 20),
                                            ("1.5MB", 3 << 19)])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_rejects_nonsense() -> None:
    with pytest.raises(UsageError):
        parse_size("lots")
