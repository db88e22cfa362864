"""Fleet-scale profile ingestion through 3 replicas over one PostgreSQL, on loopback.

10,000 simulated devices each push their measurements (4 drafts x 3 quants
= 12 profile entries, as `configspec profile --push` would) through 3
`configspec serve --no-embedded-workers` replicas chosen at random, with an
`Idempotency-Key` per upload; then the same fleet again through gateways
that batch 50 devices per upload.  Reports throughput, p50/p95 latency,
errors (must be 0), the database's size, and one
`POST /v1/solve?profiles=stored` of a 1000-pool spec over the stored
profiles.  Bounded: a fixed number of uploads, each with a 60 s timeout.

    python benchmarks/bench_ingest.py [--devices 10000] [--concurrency 32] [--db URL]

Without `--db` it starts a throw-away PostgreSQL (tests/pg.py, Debian's
`postgresql` package).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.api.live import LiveServer, fleet_spec_json  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402

JSON_CT = {"Content-Type": "application/json"}


def device_profiles(i: int, rng: random.Random) -> list[dict[str, Any]]:
    name = f"pool-{i:04d}"
    out = []
    for d, (draft, size) in enumerate([("llama-1b", 0.8), ("llama-3b", 2.0),
                                       ("llama-8b", 4.9), ("llama-13b", 7.5)]):
        for quant, qmul in [("Q4_K_M", 1.0), ("Q6_K", 1.35), ("Q8_0", 1.7)]:
            out.append({"device": name, "draft": draft, "quant": quant,
                        "draft_tok_s": round(40.0 / (size * qmul) * rng.uniform(0.8, 1.2), 3),
                        "power_w": round(rng.uniform(5, 40), 2),
                        "acceptance": {"llama-70b": {"per_token": round(
                            min(0.95, 0.72 + 0.05 * d + rng.uniform(-0.03, 0.03)), 4)}}})
    return out


async def push_all(urls: list[str], bodies: list[str], concurrency: int) -> dict[str, Any]:
    """POST every body once (random replica, retried on another replica if one fails to
    answer, with the same Idempotency-Key); latency of the answered try."""
    rng = random.Random(1)
    latencies: list[float] = []
    errors: list[str] = []
    retries = 0
    queue = list(enumerate(bodies))
    sem = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient, body: str) -> None:
        nonlocal retries
        key = str(uuid.uuid4())
        async with sem:
            for attempt in range(3):
                t0 = time.perf_counter()
                try:
                    r = await client.post(rng.choice(urls) + "/v1/profiles", content=body,
                                          headers={**JSON_CT, "Idempotency-Key": key})
                except httpx.HTTPError as exc:
                    retries += attempt < 2
                    if attempt == 2:
                        errors.append(type(exc).__name__)
                    continue
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                return

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await asyncio.gather(*(one(client, b) for _, b in queue))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {"uploads": len(bodies), "seconds": round(elapsed, 2),
            "uploads_per_s": round(len(bodies) / elapsed, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
            "errors": len(errors), "first_errors": errors[:3], "retries": retries}


def db_size(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        size = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
                   or 0)
    engine.dispose()
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=50, help="devices per gateway upload")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--solve-pools", type=int, default=1000)
    ap.add_argument("--db", default=None, help="a PostgreSQL URL (default: a temporary one)")
    args = ap.parse_args()
    pg = None
    if args.db is None:
        pg = PostgresServer()
        pg.start()
        url = pg.new_database("ingest")
    else:
        url = args.db
    logs = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    replicas: list[LiveServer] = []
    try:
        from configspec_opt.store.database import Database

        Database(url).migrate()
        replicas = [LiveServer(url, logs / f"replica{i}.log", "--no-embedded-workers",
                               "--max-body", "16MiB") for i in range(3)]
        urls = [r.url for r in replicas]
        rng = random.Random(7)
        fleet = [device_profiles(i, rng) for i in range(args.devices)]
        report: dict[str, Any] = {"devices": args.devices, "replicas": 3,
                                  "load_before": round(os.getloadavg()[0], 2)}
        single = [json.dumps({"profiles": p}) for p in fleet]
        report["per_device"] = push_all_sync(urls, single, args.concurrency)
        report["per_device"]["devices_per_s"] = report["per_device"]["uploads_per_s"]
        report["load_after_per_device"] = round(os.getloadavg()[0], 2)
        batched = [json.dumps({"profiles": [e for p in fleet[i:i + args.batch] for e in p]})
                   for i in range(0, len(fleet), args.batch)]
        report["batched"] = push_all_sync(urls, batched, min(args.concurrency, 8))
        report["batched"]["devices_per_upload"] = args.batch
        report["batched"]["devices_per_s"] = round(args.devices / report["batched"]["seconds"],
                                                   1)
        report["load_after_batched"] = round(os.getloadavg()[0], 2)
        report["profile_rows"] = 2 * 12 * args.devices
        report["db_bytes"] = db_size(url)
        spec = fleet_spec_json(args.solve_pools, 4)
        t0 = time.perf_counter()
        r = httpx.post(urls[0] + "/v1/solve?profiles=stored&time_limit=60", content=spec,
                       headers=JSON_CT, timeout=180)
        body = r.json()
        report["solve_stored"] = {
            "pools": args.solve_pools, "http": r.status_code, "seconds":
            round(time.perf_counter() - t0, 2), "status": body.get("status"),
            "stored_profiles_used": len(body.get("stored_profiles") or [])}
        print(json.dumps(report, indent=2))
    finally:
        for rep in replicas:
            rep.stop()
        if pg is not None:
            pg.stop()


def push_all_sync(urls: list[str], bodies: list[str], concurrency: int) -> dict[str, Any]:
    return asyncio.run(push_all(urls, bodies, concurrency))


if __name__ == "__main__":
    main()
