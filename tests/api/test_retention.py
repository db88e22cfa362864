"""Retention: `store.retention.prune` and `configspec db prune` on real SQLite files.

The policy (store/retention.py): finished jobs and results older than N
days, or beyond the newest M, go; a result a remaining job points to
stays; specs nothing refers to go once old; queued and running jobs and
every profile stay.  The server applies it at start-up (checked against a
live server in test_hardening_input.py).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from configspec_opt.cli import app as cli_app
from configspec_opt.store import repo
from configspec_opt.store.database import Database
from configspec_opt.store.models import JobRecord, ProfileRecord, ResultRecord, SpecRecord
from configspec_opt.store.retention import prune

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(f"sqlite:///{tmp_path / 'retention.sqlite3'}")
    d.migrate()
    return d


def counts(db: Database) -> dict[str, int]:
    with db.transaction() as s:
        return {name: int(s.scalar(select(func.count()).select_from(model)) or 0)
                for name, model in (("results", ResultRecord), ("jobs", JobRecord),
                                    ("specs", SpecRecord), ("profiles", ProfileRecord))}


def seed(db: Database) -> dict[str, Any]:
    """Rows of every kind and age; returns the ids the tests look for."""
    ids: dict[str, Any] = {}
    with db.transaction() as s:
        for sha, age in (("old", 90), ("new", 1), ("orphan-old", 90), ("orphan-new", 1)):
            repo.save_spec(s, sha.ljust(64, "0"), sha, "name: x")
            s.get(SpecRecord, sha.ljust(64, "0")).received_at = days_ago(age)  # type: ignore[union-attr]
        old, new = "old".ljust(64, "0"), "new".ljust(64, "0")

        def result(spec: str, age: float) -> ResultRecord:
            row = repo.add_result(s, "solve", spec, {}, {"status": "optimal"})
            row.created_at = days_ago(age)
            return row

        ids["old_result"] = result(old, 60).id
        ids["new_result"] = result(new, 2).id
        ids["old_result_of_new_job"] = result(old, 45).id

        def job(spec: str, state: str, age: float, result_id: int | None = None) -> str:
            row = repo.create_job(s, spec, {}, None)
            row.state, row.created_at, row.result_id = state, days_ago(age), result_id
            row.finished_at = days_ago(age) if state in ("succeeded", "failed") else None
            return row.id

        ids["old_finished_job"] = job(old, "failed", 60)
        ids["old_queued_job"] = job(old, "queued", 60)
        ids["old_running_job"] = job(old, "running", 60)
        ids["new_job"] = job(new, "succeeded", 3, ids["old_result_of_new_job"])
        repo.add_profiles(s, [{"device": "d", "draft": "x", "quant": "q", "draft_tok_s": 1.0}])
        s.get(ProfileRecord, 1).received_at = days_ago(400)  # type: ignore[union-attr]
    return ids


def test_prune_by_age(db: Database) -> None:
    ids = seed(db)
    with db.transaction() as s:
        pruned = prune(s, older_than_days=30, keep=None, now=NOW)
    assert (pruned.results, pruned.jobs, pruned.specs) == (1, 1, 1)
    with db.transaction() as s:
        assert repo.get_result(s, ids["old_result"]) is None
        assert repo.get_result(s, ids["new_result"]) is not None
        # older than 30 days, but the job that produced it is kept: its result_url works
        assert repo.get_result(s, ids["old_result_of_new_job"]) is not None
        assert repo.get_job(s, ids["old_finished_job"]) is None
        for kept in ("old_queued_job", "old_running_job", "new_job"):
            assert repo.get_job(s, ids[kept]) is not None, kept
        specs = {row.name for row in s.scalars(select(SpecRecord))}
    assert specs == {"old", "new", "orphan-new"}  # the old orphan went; "old" is still used
    assert counts(db)["profiles"] == 1  # never pruned, however old


def test_prune_by_count_and_dry_run(db: Database) -> None:
    seed(db)
    before = counts(db)
    with db.transaction() as s:
        dry = prune(s, older_than_days=None, keep=1, now=NOW, dry_run=True)
    assert counts(db) == before  # nothing deleted
    with db.transaction() as s:
        done = prune(s, older_than_days=None, keep=1, now=NOW)
    assert dry == done
    after = counts(db)
    # newest finished job kept (and its result); the newest result kept; queued/running stay
    assert after["jobs"] == 3
    assert after["results"] == 2
    with db.transaction() as s:
        assert prune(s, older_than_days=None, keep=1, now=NOW).results == 0  # idempotent


def test_nothing_to_keep_means_nothing_pruned(db: Database) -> None:
    seed(db)
    before = counts(db)
    with db.transaction() as s:
        assert not prune(s, older_than_days=None, keep=None, now=NOW)
    assert counts(db) == before
    with pytest.raises(ValueError), db.transaction() as s:
        prune(s, older_than_days=-1, keep=None)


def test_cli_prune(db: Database, tmp_path: Path) -> None:
    seed(db)
    path = db.url.removeprefix("sqlite:///")
    db.close()
    runner = CliRunner()
    dry = runner.invoke(cli_app, ["db", "prune", "--db", path, "--older-than", "0",
                                  "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] is True and planned["results"] >= 2
    done = runner.invoke(cli_app, ["db", "prune", "--db", path, "--older-than", "0"])
    assert done.exit_code == 0, done.output
    assert f"deleted {planned['results']} result(s)" in done.stdout
    again = Database(f"sqlite:///{path}")
    try:
        left = counts(again)
    finally:
        again.close()
    assert left["jobs"] == 2 and left["profiles"] == 1  # the queued and the running job
    missing = runner.invoke(cli_app, ["db", "prune", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "no database" in missing.output
    assert "Traceback" not in missing.output
    bad = runner.invoke(cli_app, ["db", "prune", "--db", path, "--older-than", "-1"])
    assert bad.exit_code == 2


def test_cli_prune_reads_the_database_from_the_environment(db: Database) -> None:
    """`--db` is one option for serve, worker and db prune: CONFIGSPEC_DB works for all three."""
    seed(db)
    path = db.url.removeprefix("sqlite:///")
    db.close()
    res = CliRunner().invoke(cli_app, ["db", "prune", "--older-than", "0", "--dry-run",
                                       "--json"], env={"CONFIGSPEC_DB": path})
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["database"].endswith(Path(path).name) and body["results"] >= 2
