"""The database: migrations match the models, durability settings, repository rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from configspec_opt.store import repo
from configspec_opt.store.database import Database
from configspec_opt.store.engine import default_db_url, make_engine, resolve_db_url
from configspec_opt.store.migrate import current_revision, head_revision, upgrade
from configspec_opt.store.models import Base


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    d.migrate()
    return d


def test_migrations_build_exactly_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    assert current_revision(db.engine) == head_revision()
    assert set(inspect(db.engine).get_table_names()) >= {"specs", "profiles", "results",
                                                          "jobs", "alembic_version"}


def test_migrating_twice_is_a_no_op(db: Database) -> None:
    upgrade(db.engine)
    assert current_revision(db.engine) == head_revision()


def test_sqlite_durability_settings(db: Database) -> None:
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        make_engine("sqlite:///:memory:")


def test_db_urls(tmp_path: Path) -> None:
    assert resolve_db_url(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path / 'a.db'}"
    assert resolve_db_url("postgresql+psycopg://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert resolve_db_url(None) == default_db_url()
    assert default_db_url().endswith("configspec-opt/configspec.sqlite3")


def test_spec_saved_once_per_hash(db: Database) -> None:
    with db.transaction() as s:
        repo.save_spec(s, "a" * 64, "first", "text")
        repo.save_spec(s, "a" * 64, "second", "text")
    with db.transaction() as s:
        spec = repo.get_spec(s, "a" * 64)
        assert spec is not None and spec.name == "first"


def test_newest_profile_per_key(db: Database) -> None:
    def p(device: str, tok: float) -> dict[str, object]:
        return {"device": device, "draft": "d", "quant": "q", "draft_tok_s": tok}

    with db.transaction() as s:
        repo.add_profiles(s, [p("a", 1.0), p("b", 2.0)])
        repo.add_profiles(s, [p("a", 3.0)])
    with db.transaction() as s:
        latest = repo.find_profiles(s)
        assert [(r.device, r.data["draft_tok_s"]) for r in latest] == [("a", 3.0), ("b", 2.0)]
        assert [r.data["draft_tok_s"] for r in repo.latest_profiles(s, ["a"])] == [3.0]
        assert [r.data["draft_tok_s"] for r in repo.latest_profiles(s)] == [2.0, 3.0]
        assert len(repo.find_profiles(s, history=True)) == 3


def test_claim_and_recover_jobs(db: Database) -> None:
    with db.transaction() as s:
        repo.save_spec(s, "b" * 64, "x", "text")
        first = repo.create_job(s, "b" * 64, {}, None).id
        second = repo.create_job(s, "b" * 64, {}, None).id
    with db.transaction() as s:
        job = repo.claim_next_job(s)
        assert job is not None and job.id == first and job.attempts == 1
    with db.transaction() as s:
        assert repo.recover_jobs(s, max_attempts=3) == (2, 0)
        assert repo.get_job(s, first).state == "queued"  # type: ignore[union-attr]
        assert repo.get_job(s, second).state == "queued"  # type: ignore[union-attr]
