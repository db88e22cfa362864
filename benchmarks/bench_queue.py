"""The job queue's own cost: claim (lease) + heartbeat + finish per job, no solving.

N jobs are created, then T threads (each its own connection, as separate
workers would be) claim, renew once and finish them until the queue is
empty; reports jobs/s and checks each job was claimed once.  Run on SQLite
and on a throw-away PostgreSQL (tests/pg.py):

    python benchmarks/bench_queue.py [--jobs 2000] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configspec_opt.store import repo  # noqa: E402
from configspec_opt.store.database import Database  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402


def measure(url: str, jobs: int, threads: int) -> dict[str, object]:
    db = Database(url)
    db.migrate()
    with db.transaction() as s:
        repo.save_spec(s, "c" * 64, "bench", "text")
        for _ in range(jobs):
            repo.create_job(s, "c" * 64, {}, None)
    claimed: Counter[str] = Counter()
    lock = threading.Lock()

    def work(name: str) -> None:
        while True:
            with db.transaction() as s:
                job = repo.claim_next_job(s, name, 30.0, 3)
                got = None if job is None else (job.id, job.attempts)
            if got is None:
                return
            with db.transaction() as s:
                assert repo.renew_lease(s, got[0], got[1], 30.0)
            with db.transaction() as s:
                assert repo.finish_job(s, got[0], attempt=got[1])
            with lock:
                claimed[got[0]] += 1

    t0 = time.perf_counter()
    pool = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    db.close()
    assert len(claimed) == jobs and set(claimed.values()) == {1}
    return {"jobs": jobs, "threads": threads, "seconds": round(elapsed, 2),
            "jobs_per_s": round(jobs / elapsed, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    out = {"sqlite": measure(f"sqlite:///{tempfile.mkdtemp()}/q.sqlite3", args.jobs,
                             args.threads)}
    pg = PostgresServer()
    pg.start()
    try:
        out["postgresql"] = measure(pg.new_database("queue"), args.jobs, args.threads)
    finally:
        pg.stop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
