"""Several replicas and workers over one PostgreSQL, killed at random: nothing lost or doubled.

3 `configspec serve --no-embedded-workers` replicas and 3 `configspec worker`s
share a real PostgreSQL (tests/pg.py).  300 jobs go in through random
replicas while a seeded schedule SIGKILLs workers (the one holding a
running job, so mid-solve) and replicas a fixed number of times and starts
them again; devices push profiles with an `Idempotency-Key`, retrying
through another replica until they get a 2xx.  At the end every job
finished exactly once (one result row per job; every run a worker started
is in its log, at most one per claim), every acknowledged upload is stored
once, and nothing is queued or running.  The figures are printed
(`pytest -s`) and quoted in docs/http.md.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import func, select

from configspec_opt.store.database import Database
from configspec_opt.store.models import JobRecord, ProfileRecord, ResultRecord
from tests.api.live import LiveServer, fleet_spec_json
from tests.pg import PostgresServer

JOBS = 300
UPLOADS = 60
SEED = 15
WORKER_KILLS = 5
REPLICA_KILLS = 4
LEASE_S = 2.0
FINISH_S = 240.0
RUN = re.compile(r"job ([0-9a-f]{32}): run started \(attempt (\d+)")
SPEC = fleet_spec_json(3, 3)
JSON_CT = {"Content-Type": "application/json"}


class Worker:
    """One `configspec worker` process in its own process group (its solver processes
    go with it when it is SIGKILLed, as they would with their machine)."""

    def __init__(self, db_url: str, log: Path) -> None:
        self._log = log.open("ab")
        cmd = [str(Path(sys.executable).with_name("configspec")), "worker", "--db", db_url,
               "--job-lease", str(LEASE_S), "--poll", "0.2", "--log-level", "info"]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()


def _post(urls: list[str], rng: random.Random, path: str, body: str,
          headers: dict[str, str], deadline: float) -> httpx.Response:
    """POST through a random live replica until one answers 2xx (a replica being down,
    or answering 5xx while it starts, is what a load balancer's retry would see)."""
    while time.monotonic() < deadline:
        url = rng.choice(urls)
        try:
            r = httpx.post(url + path, content=body, headers=headers, timeout=10)
        except httpx.HTTPError:
            time.sleep(0.05)
            continue
        if r.status_code < 300:
            return r
        assert r.status_code >= 500 or r.status_code == 429, r.text
        time.sleep(0.1)
    raise AssertionError(f"no replica accepted POST {path} in time")


def test_replicas_and_workers_killed_at_random(postgres: PostgresServer,
                                               tmp_path: Path) -> None:
    db_url = postgres.new_database("chaos")
    Database(db_url).migrate()  # once here, so the first replicas do not race the test
    rng = random.Random(SEED)
    logs = tmp_path / "logs"
    logs.mkdir()
    replica_args = ("--no-embedded-workers", "--max-jobs", "5000", "--job-lease", str(LEASE_S))
    replicas = [LiveServer(db_url, logs / f"replica{i}.log", *replica_args)
                for i in range(3)]
    urls = [r.url for r in replicas]
    workers = [Worker(db_url, logs / f"worker{i}.log") for i in range(3)]
    db = Database(db_url)
    accepted: list[str] = []
    uploads: dict[str, int] = {}  # device -> the profile id its 2xx named
    replays = 0
    done = threading.Event()
    kills = Counter[str]()
    errors: list[BaseException] = []
    started = time.monotonic()

    def submit() -> None:
        local = random.Random(SEED + 1)
        deadline = time.monotonic() + FINISH_S
        try:
            while len(accepted) < JOBS:
                r = _post(urls, local, "/v1/jobs?time_limit=20", SPEC, JSON_CT, deadline)
                assert r.status_code == 202
                accepted.append(r.json()["id"])
        except BaseException as exc:
            errors.append(exc)

    def push() -> None:
        nonlocal replays
        local = random.Random(SEED + 2)
        deadline = time.monotonic() + FINISH_S
        try:
            for i in range(UPLOADS):
                device = f"chaos-device-{i:03d}"
                body = json.dumps({"profiles": [{"device": device, "draft": "d", "quant": "q",
                                                 "draft_tok_s": 10.0 + i}]})
                headers = {**JSON_CT, "Idempotency-Key": f"upload-{i}"}
                r = _post(urls, local, "/v1/profiles", body, headers, deadline)
                uploads[device] = r.json()["profiles"][0]["id"]
                if local.random() < 0.3:  # the device's answer was lost: it sends it again
                    again = _post(urls, local, "/v1/profiles", body, headers, deadline)
                    assert again.headers.get("idempotent-replayed") == "true"
                    assert again.json()["profiles"][0]["id"] == uploads[device]
                    replays += 1
                time.sleep(0.05)
        except BaseException as exc:
            errors.append(exc)

    def busy_worker() -> int | None:
        with db.transaction() as s:
            held = [w for w in s.scalars(select(JobRecord.worker)
                                         .where(JobRecord.state == "running")) if w]
        pids = {int(w.rsplit(":", 1)[1]) for w in held}
        for i, w in enumerate(workers):
            if w.proc.pid in pids:
                return i
        return None

    def chaos() -> None:
        plan = ["worker"] * WORKER_KILLS + ["replica"] * REPLICA_KILLS
        rng.shuffle(plan)
        try:
            for kind in plan:
                time.sleep(rng.uniform(1.0, 3.0))
                if kind == "worker":
                    i = busy_worker()
                    i = rng.randrange(3) if i is None else i
                    workers[i].kill()
                    workers[i] = Worker(db_url, logs / f"worker{i}.log")
                else:
                    i = rng.randrange(3)
                    port = replicas[i].port
                    replicas[i].kill()
                    replicas[i] = LiveServer(db_url, logs / f"replica{i}.log", *replica_args,
                                             port=port)
                kills[kind] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    threads = [threading.Thread(target=f) for f in (submit, push, chaos)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=FINISH_S + 60)
        assert errors == [], errors
        submitted_s = time.monotonic() - started
        deadline = time.monotonic() + FINISH_S
        while time.monotonic() < deadline:
            with db.transaction() as s:
                unfinished = s.scalar(select(func.count()).select_from(JobRecord).where(
                    JobRecord.state.in_(("queued", "running"))))
            if unfinished == 0:
                break
            time.sleep(0.5)
        total_s = time.monotonic() - started
    finally:
        for w in workers:
            w.kill()
        for r in replicas:
            r.kill()

    with db.transaction() as s:
        jobs = {j.id: j for j in s.scalars(select(JobRecord))}
        per_job = Counter(s.scalars(select(ResultRecord.job_id)
                                    .where(ResultRecord.job_id.is_not(None))))
        stored = Counter(s.scalars(select(ProfileRecord.device)
                                   .where(ProfileRecord.device.like("chaos-device-%"))))
    db.close()
    runs = Counter[str]()
    lost = 0
    for log in logs.glob("worker*.log"):
        text = log.read_text(errors="replace")
        runs.update(m.group(1) for m in RUN.finditer(text))
        lost += text.count("lease lost")

    assert len(accepted) == JOBS and set(accepted) <= set(jobs)
    states = Counter(j.state for j in jobs.values())
    assert states == {"succeeded": len(jobs)}, states  # nothing queued, running or failed
    assert all(per_job[j] == 1 for j in jobs), [j for j in jobs if per_job[j] != 1]
    assert sum(per_job.values()) == len(jobs)
    assert all(jobs[j].result_id is not None for j in jobs)
    assert all(1 <= runs[j] <= jobs[j].attempts for j in jobs), \
        [(j, runs[j], jobs[j].attempts) for j in jobs if not 1 <= runs[j] <= jobs[j].attempts]
    assert kills == {"worker": WORKER_KILLS, "replica": REPLICA_KILLS}
    assert len(uploads) == UPLOADS
    assert all(stored[d] == 1 for d in uploads), stored
    assert sum(stored.values()) == UPLOADS

    retried = sorted(runs[j] for j in jobs if runs[j] > 1)
    print(f"\nchaos: {len(jobs)} jobs ({JOBS} acknowledged), {sum(runs.values())} solver runs, "
          f"{len(retried)} jobs run again after their worker died (runs {retried}), "
          f"{lost} leases lost; kills {dict(kills)}; {UPLOADS} uploads + {replays} retries, "
          f"{sum(stored.values())} stored; submitted in {submitted_s:.1f} s, all finished "
          f"{total_s:.1f} s after the start; load {os.getloadavg()[0]:.1f}")
