"""Load benchmark of `configspec serve` (a benchmark, not a test).

Starts the server on 127.0.0.1 with a fresh SQLite file and an API token (the
documented way: CONFIGSPEC_API_TOKEN for the server, `Authorization: Bearer`
from the clients), then N concurrent clients post realistic solves (the
example fleet and a 24-pool fleet, under several objectives; or, with
`--only-example`, just `examples/llama70b-edge.yaml` under its own objective)
for a fixed time, after `--warmup` requests that are not counted (the first
requests start solver processes and fill caches).  Reports throughput, p50/p95/max
latency, status counts (2xx, 503 shed, other errors) and the RSS of the
server and its solver processes sampled every second, so a leak shows as a
slope.  Traffic goes to loopback only; the run is bounded in time and in
requests, and stops by itself.

    python benchmarks/bench_load.py --clients 4 --duration 30
    python benchmarks/bench_load.py --clients 12 --duration 20   # past capacity: 503s
    python benchmarks/bench_load.py --only-example --clients 1 --duration 30  # issue 13
    python benchmarks/bench_load.py --only-example --clients 8 --backlog 8 --duration 30

Results go to benchmarks/out/bench_load-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "llama70b-edge.yaml"
OUT = ROOT / "benchmarks" / "out"
OBJECTIVES = ["max:goodput", "max:cost_efficiency", "min:energy", "min:cost"]
MAX_REQUESTS = 100_000


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    exceptions: int = 0

    def count(self, key: str) -> None:
        self.status[key] = self.status.get(key, 0) + 1


def fleet_spec(pools: int) -> dict[str, Any]:
    """The example scaled to `pools` device pools with varied speeds, counts and RTTs."""
    base: dict[str, Any] = YAML(typ="safe").load(EXAMPLE.read_text())
    spec = copy.deepcopy(base)
    spec["name"] = f"fleet-{pools}"
    spec["devices"], spec["profiles"] = [], []
    for i in range(pools):
        proto = base["devices"][i % len(base["devices"])]
        scale = 0.6 + 0.05 * (i % 17)
        dev = {**proto, "name": f"{proto['name']}-{i:02d}", "count": 5 + (i * 7) % 40,
               "rtt_s": round(0.01 + 0.005 * (i % 9), 3)}
        spec["devices"].append(dev)
        for p in base["profiles"]:
            if p["device"] == proto["name"]:
                spec["profiles"].append({**copy.deepcopy(p), "device": dev["name"],
                                         "draft_tok_s": round(p["draft_tok_s"] * scale, 3)})
    spec["constraints"]["fleet"]["max_cost_usd_per_hour"] = 60
    spec["constraints"]["fleet"]["max_power_w"] = 20_000
    return spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tree_rss_mib(pid: int) -> tuple[float, float, int]:
    """RSS of the server process, of it and all its descendants (MiB), and how many."""
    total_kib, main_kib, n, todo = 0, 0, 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            kib = int(next(line.split()[1] for line in status.splitlines()
                           if line.startswith("VmRSS:")))
            total_kib += kib
            main_kib = kib if p == pid else main_kib
            n += 1
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return main_kib / 1024, total_kib / 1024, n


async def client(base: str, bodies: list[str], stats: Stats, stop_at: float,
                 budget: list[int], idx: int, headers: dict[str, str],
                 objectives: list[str | None]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120, headers=headers) as http:
        i = idx
        while time.monotonic() < stop_at and budget[0] > 0:
            budget[0] -= 1
            body = bodies[i % len(bodies)]
            objective = objectives[(i // len(bodies)) % len(objectives)]
            i += 1
            t0 = time.perf_counter()
            try:
                r = await http.post("/v1/solve",
                                    params={"objective": objective} if objective else None,
                                    content=body, headers={"Content-Type": "application/yaml"})
            except httpx.HTTPError:
                stats.exceptions += 1
                continue
            elapsed = time.perf_counter() - t0
            stats.count(str(r.status_code))
            if r.status_code == 200:
                stats.latencies.append(elapsed)
            elif r.status_code == 503:
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))


Sample = tuple[float, float, float, int]  # seconds, server MiB, server+workers MiB, processes


async def sample_rss(pid: int, out: list[Sample], stop_at: float, t_start: float) -> None:
    while time.monotonic() < stop_at:
        main_mib, mib, n = tree_rss_mib(pid)
        out.append((round(time.monotonic() - t_start, 1), round(main_mib, 1), round(mib, 1), n))
        await asyncio.sleep(1.0)


async def drive(base: str, pid: int, bodies: list[str], clients: int, duration: float,
                headers: dict[str, str], objectives: list[str | None],
                warmup: int) -> tuple[Stats, list[Sample], float]:
    warm = Stats()
    await client(base, bodies, warm, time.monotonic() + 60, [warmup], 0, headers, objectives)
    if warm.status.keys() - {"200"} or warm.exceptions:
        sys.exit(f"warm-up requests failed: {warm.status}, {warm.exceptions} exceptions")
    stats = Stats()
    rss: list[Sample] = []
    t_start = time.monotonic()
    stop_at = t_start + duration
    budget = [MAX_REQUESTS]
    await asyncio.gather(sample_rss(pid, rss, stop_at, t_start),
                         *(client(base, bodies, stats, stop_at, budget, k, headers,
                                  objectives) for k in range(clients)))
    return stats, rss, time.monotonic() - t_start


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] \
        if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backlog", type=int, default=4)
    ap.add_argument("--pools", type=int, default=24, help="pools of the larger fleet spec")
    ap.add_argument("--only-example", action="store_true",
                    help="post only examples/llama70b-edge.yaml under its own objective")
    ap.add_argument("--warmup", type=int, default=5, help="requests before timing starts")
    args = ap.parse_args()
    if args.duration > 600 or args.clients > 64:
        sys.exit("keep it bounded: at most 600 s and 64 clients")

    yaml = YAML()
    yaml.default_flow_style = False
    with tempfile.TemporaryDirectory() as tmp:
        fleet_path = Path(tmp) / "fleet.yaml"
        with fleet_path.open("w") as fh:
            yaml.dump(fleet_spec(args.pools), fh)
        bodies = [EXAMPLE.read_text()] if args.only_example else \
            [EXAMPLE.read_text(), fleet_path.read_text()]
        objectives: list[str | None] = [None] if args.only_example else list(OBJECTIVES)
        token = secrets.token_urlsafe(24)
        headers = {"Authorization": f"Bearer {token}"}
        port = free_port()
        exe = str(Path(sys.executable).with_name("configspec"))
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [exe, "serve", "--port", str(port), "--db", str(Path(tmp) / "bench.sqlite3"),
             "--workers", str(args.workers), "--backlog", str(args.backlog),
             "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "CONFIGSPEC_API_TOKEN": token})
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            else:
                log.flush()
                tail = (Path(tmp) / "server.log").read_text(errors="replace")[-3000:]
                sys.exit(f"server did not answer /healthz within 60 s; its log:\n{tail}")
            load_before = os.getloadavg()
            stats, rss, wall = asyncio.run(drive(base, proc.pid, bodies, args.clients,
                                                 args.duration, headers, objectives,
                                                 args.warmup))
            load_after = os.getloadavg()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
            log.close()

    ok = len(stats.latencies)
    errors = sum(n for code, n in stats.status.items()
                 if code not in ("200", "503")) + stats.exceptions
    report = {
        "clients": args.clients, "duration_s": round(wall, 1), "workers": args.workers,
        "bodies": "example" if args.only_example else f"example + {args.pools}-pool fleet",
        "warmup_requests": args.warmup,
        "backlog": args.backlog, "cpus": os.cpu_count(), "loadavg_before": load_before,
        "loadavg_after": load_after, "requests_ok": ok,
        "throughput_rps": round(ok / wall, 2),
        "latency_s": {"p50": round(pct(stats.latencies, 50), 3),
                      "p95": round(pct(stats.latencies, 95), 3),
                      "max": round(max(stats.latencies, default=float("nan")), 3)},
        "status": stats.status, "shed_503": stats.status.get("503", 0), "errors": errors,
        "rss_mib": {"server_first": rss[0][1], "server_last": rss[-1][1],
                    "total_first": rss[0][2], "total_peak": max(r[2] for r in rss),
                    "total_last": rss[-1][2], "processes": rss[-1][3],
                    "samples": rss},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"bench_load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"{report['bodies']}: {args.clients} clients x {wall:.0f} s, "
          f"{args.workers} solver processes, backlog {args.backlog}, "
          f"{os.cpu_count()} CPUs, load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"ok {ok}  throughput {report['throughput_rps']} req/s  "
          f"p50 {report['latency_s']['p50']} s  p95 {report['latency_s']['p95']} s  "
          f"max {report['latency_s']['max']} s")
    print(f"status {stats.status}  errors {errors}  shed(503) {report['shed_503']}")
    r = report["rss_mib"]
    print(f"RSS MiB: server {r['server_first']} -> {r['server_last']}; server+workers "
          f"{r['total_first']} -> {r['total_last']} (peak {r['total_peak']}, "
          f"{r['processes']} processes)")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
