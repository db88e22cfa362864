"""`configspec worker`: jobs solved apart from the HTTP replicas, and a worker killed mid-solve.

Real processes on a real PostgreSQL (tests/pg.py): a replica that only
answers HTTP, workers that solve; SIGKILL one while it holds a job and
another finishes the job once the lease runs out, with one result.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from sqlalchemy import func, select
from typer.testing import CliRunner

from configspec_opt.cli import app as cli_app
from configspec_opt.store.database import Database
from configspec_opt.store.models import JobRecord, ResultRecord
from tests.api.live import LiveServer, fleet_spec_json
from tests.api.test_chaos import Worker
from tests.pg import PostgresServer

JSON_CT = {"Content-Type": "application/json"}


def _job(db: Database, job_id: str) -> JobRecord:
    with db.transaction() as s:
        job = s.get(JobRecord, job_id)
        assert job is not None
        return job


def test_a_worker_killed_mid_solve_loses_its_job_to_another(postgres: PostgresServer,
                                                            tmp_path: Path) -> None:
    url = postgres.new_database("workers")
    db = Database(url)
    db.migrate()
    slow = fleet_spec_json(60, 16)
    with LiveServer(url, tmp_path / "replica.log", "--no-embedded-workers",
                    "--job-lease", "2") as replica:
        healthz = httpx.get(f"{replica.url}/readyz", timeout=10)
        assert healthz.status_code == 200, healthz.text  # HTTP only is ready, not broken
        job_id = httpx.post(f"{replica.url}/v1/jobs?time_limit=60", content=slow,
                            headers=JSON_CT, timeout=30).json()["id"]
        time.sleep(1.0)
        assert _job(db, job_id).state == "queued"  # the replica itself solves nothing
        first = Worker(url, tmp_path / "first.log")
        try:
            log = tmp_path / "first.log"
            deadline = time.monotonic() + 60
            while "run started (attempt 1" not in log.read_text() and \
                    time.monotonic() < deadline:
                time.sleep(0.02)
            held = _job(db, job_id)
            assert held.state == "running" and held.worker is not None
            assert held.worker.endswith(f":{first.proc.pid}")
        finally:
            first.kill()  # SIGKILL, mid-solve: no shutdown code runs
        killed_at = time.monotonic()
        assert _job(db, job_id).state == "running"  # its lease is still alive
        second = Worker(url, tmp_path / "second.log")
        try:
            deadline = time.monotonic() + 120
            while _job(db, job_id).state == "running" and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            second.kill()
        job = _job(db, job_id)
        assert job.state == "succeeded", job.error
        assert job.attempts == 2 and job.worker is not None
        assert job.worker.endswith(f":{second.proc.pid}")
        assert time.monotonic() - killed_at >= 2.0  # not before the lease ran out
        answer = httpx.get(f"{replica.url}/v1/jobs/{job_id}", timeout=10).json()
        assert answer["status"] == "succeeded" and answer["result"]["status"] == "optimal"
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(ResultRecord)
                        .where(ResultRecord.job_id == job_id)) == 1
    db.close()
    assert "run started (attempt 2" in (tmp_path / "second.log").read_text()


def test_worker_cli_errors_are_messages() -> None:
    runner = CliRunner()
    res = runner.invoke(cli_app, ["worker", "--db",
                                  "postgresql+psycopg://nobody@127.0.0.1:1/none"])
    assert res.exit_code == 2, res.output
    assert "cannot use the database" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(cli_app, ["worker", "--job-lease", "0"])
    assert res.exit_code == 2
    helps = runner.invoke(cli_app, ["worker", "--help"],
                          env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"}).output
    assert "CONFIGSPEC_DB" in helps and "--concurrency" in helps
    wide = {"COLUMNS": "250", "TERMINAL_WIDTH": "250"}
    assert "--no-embedded-workers" in runner.invoke(cli_app, ["serve", "--help"],
                                                    env=wide).output
