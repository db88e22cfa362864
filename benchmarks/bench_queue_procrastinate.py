"""The comparison behind the queue decision (docs/http.md, "Scaling out"): procrastinate's
cost per job on the same throw-away PostgreSQL as benchmarks/bench_queue.py.

procrastinate is not a dependency; run in a separate environment:

    python -m venv /tmp/pv && /tmp/pv/bin/pip install procrastinate 'psycopg[binary]'
    /tmp/pv/bin/python benchmarks/bench_queue_procrastinate.py [--jobs 2000] [--concurrency 4]

N no-op jobs are deferred, then one worker with `concurrency` coroutines
runs them until the queue is empty (`wait=False`); reports jobs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import procrastinate  # noqa: E402

from tests.pg import PostgresServer  # noqa: E402


async def measure(conninfo: str, jobs: int, concurrency: int) -> dict[str, object]:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
    done: list[int] = []

    @app.task(name="noop")  # type: ignore[untyped-decorator, unused-ignore]
    async def noop(i: int) -> None:
        done.append(i)

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        t0 = time.perf_counter()
        for i in range(jobs):
            await noop.defer_async(i=i)
        deferred = time.perf_counter() - t0
        t0 = time.perf_counter()
        await app.run_worker_async(concurrency=concurrency, wait=False)
        elapsed = time.perf_counter() - t0
    assert sorted(done) == list(range(jobs))
    return {"jobs": jobs, "concurrency": concurrency, "defer_s": round(deferred, 2),
            "run_s": round(elapsed, 2), "jobs_per_s": round(jobs / elapsed, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    pg = PostgresServer()
    pg.start()
    try:
        url = pg.new_database("procrastinate")
        conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        print(json.dumps({"procrastinate": procrastinate.__version__, **asyncio.run(
            measure(conninfo, args.jobs, args.concurrency))}, indent=2))
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
