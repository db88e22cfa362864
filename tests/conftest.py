"""Fixtures shared by every test package: a real PostgreSQL server when one is installed.

`postgres` starts one server per test session (tests/pg.py) the first time
a test asks for it; `db_url` is parametrised over SQLite and PostgreSQL, so
a test that takes it runs against both.  Without PostgreSQL the
PostgreSQL half is skipped with the reason, unless
CONFIGSPEC_REQUIRE_POSTGRES=1 (CI), where it fails instead.

Property tests draw the same examples on every run (Hypothesis's `derandomize`), so a
commit's suite passes or fails by its code alone: a fresh random draw that finds a new
counterexample is a finding, but it must not fail an unrelated change's CI.
`HYPOTHESIS_PROFILE=explore python -m pytest` draws afresh (run it when changing a model).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.pg import PostgresServer, Unavailable, require_postgres

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
        server.start()
    except Unavailable as exc:
        if require_postgres():
            pytest.fail(f"PostgreSQL is required (CONFIGSPEC_REQUIRE_POSTGRES=1) but cannot "
                        f"be started: {exc}")
        pytest.skip(f"PostgreSQL cannot be started here: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()
