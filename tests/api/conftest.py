"""Fixtures for the HTTP service: real apps on real SQLite files, real solver processes.

Starting an app spawns its solver processes (about a second), so most tests
share one module-scoped app; tests that need other limits build their own
with `make_client`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ruamel.yaml import YAML

from configspec_opt.api import create_app
from configspec_opt.api.deps import Service
from configspec_opt.api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llama70b-edge.yaml"
YAML_CT = {"Content-Type": "application/yaml"}

MakeClient = Callable[..., AbstractContextManager[TestClient]]


def service(client: TestClient) -> Service:
    svc: Service = client.app.state.service  # type: ignore[attr-defined]
    return svc


def settings_for(db: Path | str, **overrides: Any) -> Settings:
    """`db`: a SQLite file, or a database URL (the PostgreSQL fixture's)."""
    url = db if isinstance(db, str) and "://" in db else f"sqlite:///{db}"
    base: dict[str, Any] = {"db_url": url, "workers": 1, "backlog": 2}
    base.update(overrides)
    return Settings(**base)


@pytest.fixture(scope="session")
def example_text() -> str:
    return EXAMPLE.read_text()


@pytest.fixture(scope="session")
def example_data() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(EXAMPLE.read_text())
    return data


@pytest.fixture
def spec_data(example_data: dict[str, Any]) -> dict[str, Any]:
    """A private deep copy of the example, for tests that change it."""
    return copy.deepcopy(example_data)


@pytest.fixture
def make_client(tmp_path: Path) -> MakeClient:
    """`with make_client(token=..., workers=...) as client:` -- a fresh app and database."""

    @contextmanager
    def _make(db: Path | str | None = None, raise_server_exceptions: bool = True,
              **overrides: Any) -> Iterator[TestClient]:
        app = create_app(settings_for(db or tmp_path / "api.sqlite3", **overrides))
        with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
            yield client

    return _make


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for a whole test module (2 solver processes, default limits)."""
    db = tmp_path_factory.mktemp("api") / "shared.sqlite3"
    app = create_app(settings_for(db, workers=2, backlog=4))
    with TestClient(app) as c:
        yield c
