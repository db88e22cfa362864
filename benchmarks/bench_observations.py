"""Observation ingest through a real `configspec serve`, on SQLite and PostgreSQL, and the
time of a drift re-plan of a 1,000-pool fleet against the time of its solve.

Ingest: `--reporters` devices (5 per pool) send cumulative speculative-decoding
counters and a draft speed in batches of `--batch` reports per `POST
/v1/observations`; each of `--clients` concurrent clients owns its own reporters,
so counters only grow.  Every run starts a fresh server on a fresh database;
the figure is the median over `--runs` runs of reports stored per second (wall
clock, all clients), with the requests' p50/p95 latency.  Every answer must be
200 (an error ends the run).

Re-plan: the fleet of `tests.api.live.fleet_spec_json` (1,000 pools, K 1-10) is
locked (`configspec lock`'s solve, timed), then 10 % of its pools report an
acceptance 25 % below their profile and the rest as profiled; the drift check
and the proposed re-plan (spec edits, the same solve, the diff) are timed.

    python benchmarks/bench_observations.py [--runs 5] [--batches 100] [--clients 1,4]

Fixed seed; `os.getloadavg()` is printed before and after (the machine is shared).
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
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.api.live import LiveServer, fleet_spec_json  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402

JSON_CT = {"Content-Type": "application/json"}
K = 6


def bodies(client: int, clients: int, batches: int, batch: int, reporters: int,
           seed: int) -> list[str]:
    """This client's batches: its own reporters, each scrape adding rounds to their counters."""
    rng = random.Random(seed * 1000 + client)
    mine = [r for r in range(reporters) if r % clients == client]
    state = {r: [0, 0] for r in mine}  # rounds, accepted
    out = []
    cursor = 0
    for _ in range(batches):
        reports = []
        for _ in range(batch):
            r = mine[cursor % len(mine)]
            cursor += 1
            add = rng.randint(20, 60)
            state[r][0] += add
            state[r][1] += sum(rng.randint(0, K) for _ in range(add)) // 2
            rounds, accepted = state[r]
            reports.append({"source": f"dev-{r}", "device": f"pool-{r // 5:04d}",
                            "target": "llama-70b", "draft": "llama-1b", "quant": "Q4_K_M",
                            "k": K, "spec_decode": {"num_drafts": rounds,
                                                    "num_draft_tokens": K * rounds,
                                                    "num_accepted_tokens": accepted},
                            "draft_tok_s": round(rng.uniform(30, 40), 3)})
        out.append(json.dumps({"observations": reports}))
    return out


async def send(url: str, per_client: list[list[str]]) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def client(texts: list[str]) -> None:
        async with httpx.AsyncClient(timeout=60) as c:
            for text in texts:
                t0 = time.perf_counter()
                r = await c.post(url + "/v1/observations", content=text, headers=JSON_CT)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"{r.status_code}: {r.text[:300]}")

    t0 = time.perf_counter()
    await asyncio.gather(*(client(t) for t in per_client))
    return time.perf_counter() - t0, latencies


def ingest_run(db: str, work: Path, clients: int, args: argparse.Namespace) -> dict[str, Any]:
    per_client = [bodies(c, clients, args.batches // clients, args.batch, args.reporters,
                         args.seed) for c in range(clients)]
    n = sum(len(b) for b in per_client) * args.batch
    with LiveServer(db, work / "server.log") as server:
        httpx.post(server.url + "/v1/observations", content=per_client[0][0],
                   headers=JSON_CT, timeout=60).raise_for_status()  # warm: first connection
        wall, lat = asyncio.run(send(server.url, [b[1:] for b in per_client]))
        n -= args.batch
    lat.sort()
    return {"reports_per_s": n / wall, "requests": len(lat),
            "p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * lat[int(0.95 * len(lat))]}


def ingest(kind: str, clients: int, args: argparse.Namespace, pg: PostgresServer | None
           ) -> dict[str, Any]:
    runs = []
    for i in range(args.runs):
        work = Path(tempfile.mkdtemp(prefix="bench-obs-"))
        db = str(work / "obs.sqlite3") if kind == "sqlite" else \
            (pg.new_database("obs") if pg is not None else "")
        runs.append(ingest_run(db, work, clients, args))
        print(f"  {kind} clients={clients} run {i + 1}: "
              f"{runs[-1]['reports_per_s']:,.0f} reports/s", flush=True)
    best = statistics.median(r["reports_per_s"] for r in runs)
    return {"db": kind, "clients": clients, "median_reports_per_s": best,
            "runs": [round(r["reports_per_s"]) for r in runs],
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p95_ms": statistics.median(r["p95_ms"] for r in runs)}


def replan(pools: int, seed: int) -> dict[str, Any]:
    from configspec_opt.drift.compare import Observed, check_lock
    from configspec_opt.drift.replan import propose
    from configspec_opt.drift.watch import load_watched
    from configspec_opt.loader import load_spec
    from configspec_opt.vcs.lock import write_lock

    work = Path(tempfile.mkdtemp(prefix="bench-replan-"))
    spec_path = work / "fleet.json"
    spec_path.write_text(fleet_spec_json(pools, 10, seed))
    t0 = time.perf_counter()
    loaded = load_spec(spec_path)
    written = write_lock(loaded, spec_path)
    solve_s = time.perf_counter() - t0
    watched = load_watched(written.path)
    rng = random.Random(seed)
    observed = {}
    drifting = set(rng.sample(range(len(watched.lock["assignments"])), pools // 10))
    for i, row in enumerate(watched.lock["assignments"]):
        alpha = float(row["alpha"]) * (0.75 if i in drifting else 1.0)
        rounds, k = 3000, int(row["k"])
        observed[(row["device"], row["target"], row["draft"], row["quant"], k)] = Observed(
            1, rounds, rounds * k, round(alpha * rounds * k))
    t0 = time.perf_counter()
    report = check_lock(watched.lock, watched.loaded.spec, observed)
    check_s = time.perf_counter() - t0
    proposal = propose(watched, report)
    replan_s = time.perf_counter() - t0
    assert proposal is not None
    changed = sum(p.change != "unchanged" for p in proposal.diff.pools)
    return {"pools": pools, "lock_solve_s": solve_s, "check_s": check_s,
            "replan_s": replan_s, "drifted": len(report.drifted), "pools_changed": changed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batches", type=int, default=100, help="Requests per run.")
    ap.add_argument("--batch", type=int, default=100, help="Reports per request.")
    ap.add_argument("--reporters", type=int, default=1000)
    ap.add_argument("--clients", default="1,4")
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--pools", type=int, default=1000, help="Re-plan fleet (0: skip).")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=None, help="Also write the results as JSON.")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    results: dict[str, Any] = {"ingest": [], "load_before": os.getloadavg()}
    kinds = args.db.split(",")
    pg = None
    if "postgresql" in kinds:
        pg = PostgresServer()
        pg.start()
    try:
        for kind in kinds:
            for clients in (int(c) for c in args.clients.split(",")):
                results["ingest"].append(ingest(kind, clients, args, pg))
    finally:
        if pg is not None:
            pg.stop()
    if args.pools:
        results["replan"] = replan(args.pools, args.seed)
    results["load_after"] = os.getloadavg()
    print(f"\n{'db':<11} {'clients':>7} {'reports/s (median)':>19} {'p50 ms':>7} "
          f"{'p95 ms':>7}  runs")
    for r in results["ingest"]:
        print(f"{r['db']:<11} {r['clients']:>7} {r['median_reports_per_s']:>19,.0f} "
              f"{r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f}  {r['runs']}")
    if "replan" in results:
        r = results["replan"]
        print(f"\nre-plan of {r['pools']} pools: lock's solve {r['lock_solve_s']:.1f} s; "
              f"drift check {r['check_s']:.2f} s; check + re-plan {r['replan_s']:.1f} s "
              f"({r['drifted']} pools drifted, {r['pools_changed']} changed in the diff)")
    print(f"load average after: {results['load_after']}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
