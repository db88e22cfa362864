"""The database: migrations match the models, durability settings, repository rules."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, update
from sqlalchemy.exc import IntegrityError

from configspec_opt.store import repo
from configspec_opt.store.database import Database
from configspec_opt.store.engine import default_db_url, make_engine, resolve_db_url
from configspec_opt.store.migrate import current_revision, head_revision, upgrade
from configspec_opt.store.models import Base, JobRecord, utcnow


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated database of each kind (tests/conftest.py: SQLite and PostgreSQL)."""
    d = Database(db_url)
    d.migrate()
    yield d
    d.close()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
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


def test_sqlite_durability_settings(sqlite_db: Database) -> None:
    with sqlite_db.engine.connect() as conn:
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


def _jobs(db: Database, n: int) -> list[str]:
    with db.transaction() as s:
        repo.save_spec(s, "b" * 64, "x", "text")
        return [repo.create_job(s, "b" * 64, {}, None).id for _ in range(n)]


def _expire(db: Database, job_id: str) -> None:
    with db.transaction() as s:
        s.execute(update(JobRecord).where(JobRecord.id == job_id)
                  .values(lease_until=utcnow() - timedelta(seconds=1)))


def test_a_live_lease_is_never_taken(db: Database) -> None:
    """The double-run bug: a second server starting re-queued the first one's running job."""
    first, second = _jobs(db, 2)
    with db.transaction() as s:
        job = repo.claim_next_job(s, "w1", 30.0, 3)
        assert job is not None and (job.id, job.attempts, job.worker) == (first, 1, "w1")
    with db.transaction() as s:
        job = repo.claim_next_job(s, "w2", 30.0, 3)
        assert job is not None and job.id == second
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w3", 30.0, 3) is None  # both leases alive
        assert repo.renew_lease(s, first, 1, 30.0)


def test_an_expired_lease_is_claimed_again_and_fences_the_old_holder(db: Database) -> None:
    (job_id,) = _jobs(db, 1)
    with db.transaction() as s:
        assert repo.claim_next_job(s, "dead", 30.0, 3) is not None
    _expire(db, job_id)
    with db.transaction() as s:
        job = repo.claim_next_job(s, "alive", 30.0, 3)
        assert job is not None and (job.attempts, job.worker) == (2, "alive")
    with db.transaction() as s:  # the presumed-dead worker wakes up: refused
        assert not repo.renew_lease(s, job_id, 1, 30.0)
        assert not repo.finish_job(s, job_id, attempt=1, error={"late": True})
        assert repo.finish_job(s, job_id, attempt=2)
        assert not repo.finish_job(s, job_id, attempt=2)  # written once
    with db.transaction() as s:
        done = repo.get_job(s, job_id)
        assert done is not None and (done.state, done.error) == ("succeeded", None)


def test_a_job_that_keeps_losing_its_worker_is_failed(db: Database) -> None:
    (job_id,) = _jobs(db, 1)
    for attempt in (1, 2):
        with db.transaction() as s:
            job = repo.claim_next_job(s, "w", 30.0, 2)
            assert job is not None and job.attempts == attempt
        _expire(db, job_id)
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w", 30.0, 2) is None
        job = repo.get_job(s, job_id)
        assert job is not None and job.state == "failed"
        assert job.error is not None and "stopped 2 times" in job.error["detail"]


def test_concurrent_claims_take_each_job_once(db: Database) -> None:
    ids = _jobs(db, 24)
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while True:
            with db.transaction() as s:
                job = repo.claim_next_job(s, name, 30.0, 3)
                got = None if job is None else job.id
            if got is None:
                return
            with lock:
                claimed.append(got)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert sorted(claimed) == sorted(ids)


def test_a_job_starts_after_it_was_queued_even_when_its_worker_waited_for_it(
        db: Database) -> None:
    """A worker begins claiming while the queueing transaction holds SQLite's write lock
    (PostgreSQL: before the job is visible) and gets the job once it is committed: its
    start, and then its end, are stamped no earlier than its creation."""
    got: list[JobRecord] = []

    def worker() -> None:
        for _ in range(500):
            with db.transaction() as s:
                job = repo.claim_next_job(s, "w", 30.0, 3)
                if job is not None:
                    assert repo.finish_job(s, job.id, attempt=job.attempts)
                    got.append(job)
                    return
            time.sleep(0.01)

    with db.transaction() as s:
        repo.save_spec(s, "c" * 64, "x", "text")  # SQLite: the write lock is ours from here
        th = threading.Thread(target=worker)
        th.start()
        time.sleep(0.2)  # the worker is waiting for the lock, or finding no job
        job_id = repo.create_job(s, "c" * 64, {}, None).id
    th.join(timeout=60)
    assert got and got[0].id == job_id
    with db.transaction() as s:
        done = repo.get_job(s, job_id)
        assert done is not None and done.started_at is not None
        assert done.finished_at is not None
        assert done.created_at <= done.started_at <= done.finished_at


def test_a_job_result_is_stored_once(db: Database) -> None:
    (job_id,) = _jobs(db, 1)
    with db.transaction() as s:
        repo.add_result(s, "solve", "b" * 64, {}, {"status": "optimal"}, job_id=job_id)
    with pytest.raises(IntegrityError), db.transaction() as s:
        repo.add_result(s, "solve", "b" * 64, {}, {"status": "optimal"}, job_id=job_id)


def test_idempotency_keys_remember_the_first_answer(db: Database) -> None:
    with db.transaction() as s:
        assert repo.remember_response(s, "", "k1", "a" * 64)
        repo.store_response(s, "", "k1", 201, {"profiles": [1]})
        assert repo.remember_response(s, "fp", "k1", "a" * 64)  # another writer's key
    with db.transaction() as s:
        assert not repo.remember_response(s, "", "k1", "b" * 64)
        first = repo.get_remembered(s, "", "k1")
        assert first is not None and (first.status, first.response) == (201, {"profiles": [1]})
        assert first.request_sha256 == "a" * 64


def test_replicas_migrating_together(db_url: str) -> None:
    """Three processes' worth of engines upgrade one fresh database at once: one migrates,
    the others wait on the lock and find it at head."""
    engines = [make_engine(db_url) for _ in range(3)]
    errors: list[BaseException] = []

    def migrate(engine: Engine) -> None:
        try:
            upgrade(engine)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(e,)) for e in engines]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    assert current_revision(engines[0]) == head_revision()
    for e in engines:
        e.dispose()
