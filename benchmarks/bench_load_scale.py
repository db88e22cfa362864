"""Load-aware solve at fleet scale: the issue-27 fleet, load-aware against load-blind.

The generator (`make_spec`, seeded) builds `pools` pools of 1-8 devices drawn from
four device platforms, 4 drafts x 3 quants x K 2-10, two batched targets (replicas up
to a few hundred each, T(b, K) tables shaped like a 70B replica on two GPU kinds), a
$/hour budget, a per-device goodput SLO and a variant cap.  Each measurement is
`configspec solve SPEC --json --no-explain` in a fresh process, with and without
`--load-blind`, at each size, `--repeats` times; medians, the load average before and
after, status, gap and objective are printed and written to benchmarks/out/.

Run:  python benchmarks/bench_load_scale.py [--pools 48 1000] [--repeats 3] [--seed 11]
          [--time-limit 120]
Never a test: compare the two models' times within one run (2-core shared machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"

DRAFTS = [("llama-1b", 0.8), ("llama-3b", 2.0), ("llama-8b", 4.9), ("llama-13b", 7.5)]
QUANTS = [("Q4_K_M", 1.0), ("Q6_K", 1.35), ("Q8_0", 1.7)]
# memory GB, power W, relative drafting speed
PLATFORMS = [(8, 8.0, 1.0), (16, 25.0, 2.0), (32, 30.0, 3.0), (64, 45.0, 5.0)]
BS = [1, 2, 4, 8, 16, 32]
KS = list(range(2, 11))


def _table(t1: float, per_k: float, growth: float) -> dict[int, dict[int, float]]:
    """T(b, K): a step of t1 at b = 1, K adds per_k, batching multiplies by b**growth."""
    return {b: {k: round((t1 + per_k * k) * b ** growth, 4) for k in KS} for b in BS}


TARGETS = [
    # name, b=1 latency, per-K, growth, $/replica-hour, acceptance shift, $/Mtok
    ("llama-70b-h100", 0.16, 0.012, 0.30, 4.10, 0.00, 0.90),
    ("llama-70b-l40s", 0.26, 0.020, 0.36, 1.90, -0.01, 0.60),
]


def make_spec(pools: int, seed: int = 11) -> dict[str, Any]:
    rng = random.Random(seed)
    devices: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    for i in range(pools):
        mem, power, speed = rng.choice(PLATFORMS)
        name = f"pool-{i:04d}"
        devices.append({"name": name, "count": rng.randint(1, 8), "memory_gb": mem,
                        "rtt_s": round(rng.uniform(0.01, 0.08), 3)})
        for d, (draft, size) in enumerate(DRAFTS):
            for quant, qmul in QUANTS:
                if size * qmul > mem * 0.8:
                    continue
                v = speed * 40.0 / (size * qmul) * rng.uniform(0.8, 1.2)
                a = min(0.93, 0.66 + 0.05 * d + 0.02 * qmul + rng.uniform(-0.03, 0.03))
                profiles.append({
                    "device": name, "draft": draft, "quant": quant, "draft_tok_s": round(v, 3),
                    "power_w": round(power * rng.uniform(0.9, 1.1), 2),
                    "acceptance": {t[0]: {"per_token": round(a + t[5], 4)} for t in TARGETS}})
    n_dev = sum(d["count"] for d in devices)
    targets = [{"name": name, "family": "llama", "price_usd_per_mtok": mtok,
                "verify_latency_s": round(t1 + 4 * per_k, 4),
                "verifier": {"replicas": {"min": 1, "max": max(8, n_dev // 10)},
                             "price_usd_per_replica_hour": price, "max_batch": 32,
                             "latency_s": _table(t1, per_k, growth)}}
               for name, t1, per_k, growth, price, _, mtok in TARGETS]
    return {
        "version": 1, "name": f"load-scale-{pools}",
        "targets": targets,
        "drafts": [{"name": d, "family": "llama",
                    "quants": {q: {"size_gb": round(size * m, 2)} for q, m in QUANTS}}
                   for d, size in DRAFTS],
        "devices": devices, "profiles": profiles,
        "search": {"k": {"min": 2, "max": 10}},
        "objective": {"maximize": "goodput"},
        "constraints": {"per_device": {"min_goodput_tok_s": 3.0},
                        "fleet": {"max_cost_usd_per_hour": round(n_dev * 0.25, 1),
                                  "max_distinct_variants": 4}},
    }


def write_instance(pools: int, seed: int) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"load-scale-{pools}-{seed}.json"
    path.write_text(json.dumps(make_spec(pools, seed)))
    return path


def solve(path: Path, blind: bool, extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "configspec_opt", "solve", str(path), "--json", "--no-explain",
           *(["--load-blind"] if blind else []), *extra]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.perf_counter() - t0
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"blind": blind, "wall_s": wall, "status": f"exit {proc.returncode}",
                "error": proc.stderr[-400:]}
    s = data.get("solver", {})
    return {"blind": blind, "wall_s": wall, "load_before": load,
            "load_after": os.getloadavg()[0], "status": data.get("status"),
            "objective": (data.get("objective") or {}).get("value"), "gap": s.get("gap"),
            "proven_optimal": s.get("proven_optimal"), "candidates": s.get("candidates"),
            "stages": [(st["what"], round(st["time_s"], 2)) for st in s.get("stages", [])][:12],
            "replicas": [v["replicas"] for v in (data.get("fleet") or {}).get("verifiers", [])]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pools", type=int, nargs="+", default=[48, 1000])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=120.0)
    a = ap.parse_args()
    extra = ["--time-limit", f"{a.time_limit:g}"]
    out: dict[str, Any] = {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                           "seed": a.seed, "sizes": []}
    for pools in a.pools:
        path = write_instance(pools, a.seed)
        runs: dict[str, list[dict[str, Any]]] = {"aware": [], "blind": []}
        for _ in range(a.repeats):
            for blind in (True, False):
                r = solve(path, blind, extra)
                runs["blind" if blind else "aware"].append(r)
                print(pools, json.dumps(r), flush=True)
        med = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
        print(f"{pools} pools: load-aware {med['aware']:.1f} s, load-blind {med['blind']:.1f} s, "
              f"ratio {med['aware'] / med['blind']:.2f}", flush=True)
        out["sizes"].append({"pools": pools, "median_s": med, "runs": runs})
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    (OUT / f"load-scale-{stamp}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
