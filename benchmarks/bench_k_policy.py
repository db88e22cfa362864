"""The runtime K policy over a day (a benchmark, not a test): its goodput vs the plan's fixed K.

A day-shaped load: 24 hourly levels on a sinusoid (lowest at 04:00, highest at 16:00)
with seeded noise.  Two views, both on the plan of a fleet with a batched verifier
(default examples/fleet-verifier/shared-verifier.yaml and its lock):

- **open loop**: the verifier's load b (requests in flight per replica) follows the
  curve between --low and --peak whatever the devices do (other tenants' traffic);
  each pool runs the plan's K or the policy's K at that b and its declared rtt;
- **closed loop**: the share of each pool's devices that are active follows the curve
  between --active-low and 1 (all devices at peak, which is what the plan was solved
  for); the load is the fleet's own, settled (`verifier_load.least_fixed_point`) on the
  plan's replicas, with the fixed K, and with the policy applied until the Ks it picks
  at the settled load stop changing.

Goodput per hour is the sum over active devices of (K alpha + 1) / R at the settled
(or given) load; the day's figure is the mean over the hours.  Where the policy picks
the plan's K the gain is exactly zero, and the report says so.

    python benchmarks/bench_k_policy.py
    python benchmarks/bench_k_policy.py --low 0.5 --peak 15 --seed 3

Results go to benchmarks/out/bench_k_policy-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configspec_opt import k_policy as kp  # noqa: E402
from configspec_opt import verifier_load as vl  # noqa: E402
from configspec_opt.files import write_output  # noqa: E402
from configspec_opt.loader import load_spec  # noqa: E402
from configspec_opt.vcs.lock import parse_lock, read_lock_text  # noqa: E402

SPEC = ROOT / "examples" / "fleet-verifier" / "shared-verifier.yaml"
OUT = ROOT / "benchmarks" / "out"


def day_curve(low: float, high: float, seed: int, noise: float) -> list[float]:
    """24 hourly levels: a sinusoid from `low` (04:00) to `high` (16:00), seeded noise."""
    rng = random.Random(seed)
    out = []
    for h in range(24):
        shape = 0.5 - 0.5 * math.cos(2 * math.pi * (h - 4) / 24)
        level = low + (high - low) * shape
        out.append(min(high, max(low, level * (1.0 + noise * rng.gauss(0.0, 1.0)))))
    return out


def goodput(c: kp.Curve, k: int, load: float) -> float:
    g = c.goodput(k, load, c.rtt_s)
    if g is None:
        raise SystemExit(f"{c.pool}: K={k} has no latency at load {load:g}")
    return g


def open_loop(policies: list[kp.Policy], counts: dict[str, int], loads: list[float]
              ) -> list[dict[str, Any]]:
    hours = []
    for h, b in enumerate(loads):
        fixed = adaptive = 0.0
        ks = {}
        for p in policies:
            c = p.curve
            k = p.k_at(b, c.rtt_s)
            ks[c.pool] = k
            fixed += counts[c.pool] * goodput(c, c.plan_k, b)
            adaptive += counts[c.pool] * goodput(c, k, b)
        hours.append({"hour": h, "load": b, "fixed_tok_s": fixed, "policy_tok_s": adaptive,
                      "policy_k": ks})
    return hours


def settle(policies: list[kp.Policy], active: dict[str, float], ks: dict[str, int],
           replicas: int) -> tuple[float, float]:
    """The least fixed point of the fleet's load with these Ks, and its goodput."""
    c0 = policies[0].curve
    assert c0.table is not None
    riders = [vl.Rider(active[p.curve.pool], ks[p.curve.pool],
                       p.curve.base_s[ks[p.curve.pool]] + p.curve.rtt_s) for p in policies]
    b = vl.least_fixed_point(c0.table, c0.max_batch, riders, replicas)
    if b is None:
        raise SystemExit("the fleet settles at no load the table covers")
    total = sum(active[p.curve.pool] * goodput(p.curve, ks[p.curve.pool], b)
                for p in policies)
    return b, total


def closed_loop(policies: list[kp.Policy], counts: dict[str, int], shares: list[float],
                replicas: int) -> list[dict[str, Any]]:
    hours = []
    plan = {p.curve.pool: p.curve.plan_k for p in policies}
    for h, share in enumerate(shares):
        active = {pool: n * share for pool, n in counts.items()}
        b_fixed, fixed = settle(policies, active, plan, replicas)
        ks, b, rounds, stable = dict(plan), b_fixed, 0, False
        for rounds in range(1, 21):
            nxt = {p.curve.pool: p.k_at(b, p.curve.rtt_s) for p in policies}
            if nxt == ks and rounds > 1:
                stable = True
                break
            ks = nxt
            b, _ = settle(policies, active, ks, replicas)
        b, adaptive = settle(policies, active, ks, replicas)
        hours.append({"hour": h, "active_share": share, "load_fixed": b_fixed,
                      "load_policy": b, "fixed_tok_s": fixed, "policy_tok_s": adaptive,
                      "policy_k": ks, "rounds": rounds, "stable": stable})
    return hours


def summary(hours: list[dict[str, Any]]) -> dict[str, Any]:
    fixed = sum(h["fixed_tok_s"] for h in hours) / len(hours)
    adaptive = sum(h["policy_tok_s"] for h in hours) / len(hours)
    zero = sum(1 for h in hours if abs(h["policy_tok_s"] - h["fixed_tok_s"])
               <= 1e-9 * h["fixed_tok_s"])
    return {"fixed_tok_s": fixed, "policy_tok_s": adaptive,
            "gain_pct": 100.0 * (adaptive / fixed - 1.0), "hours_without_gain": zero,
            "best_hour_gain_pct": max(100.0 * (h["policy_tok_s"] / h["fixed_tok_s"] - 1.0)
                                      for h in hours)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", type=Path, default=SPEC, help="a spec with an up-to-date lock")
    ap.add_argument("--low", type=float, default=0.5, help="open loop: lowest load per replica")
    ap.add_argument("--peak", type=float, default=None,
                    help="open loop: highest load (default: 1.5x the plan's, within the table)")
    ap.add_argument("--active-low", type=float, default=0.1,
                    help="closed loop: share of devices active at night")
    ap.add_argument("--noise", type=float, default=0.08, help="relative hourly noise")
    ap.add_argument("--seed", type=int, default=29)
    args = ap.parse_args()

    spec = load_spec(args.spec).spec
    lock_path = Path(f"{args.spec}.lock")
    data = parse_lock(read_lock_text(lock_path), str(lock_path))
    started = time.perf_counter()
    policies = [p for p in kp.policies(spec, data) if p.curve.batched]
    built_s = time.perf_counter() - started
    if not policies:
        raise SystemExit(f"{args.spec}: no pool on a batched verifier")
    targets = {p.curve.target for p in policies}
    if len(targets) != 1:
        raise SystemExit("this benchmark takes a fleet on one batched verifier")
    counts = {a["device"]: int(a["count"]) for a in data["assignments"]}
    verifier = next(v for v in data["fleet"]["verifiers"] if v["target"] in targets)
    plan_load = float(verifier["in_flight_per_replica"])
    top = min(p.load_max for p in policies)
    peak = args.peak if args.peak is not None else min(1.5 * plan_load, top)
    loads = day_curve(args.low, min(peak, top), args.seed, args.noise)
    shares = day_curve(args.active_low, 1.0, args.seed + 1, args.noise)

    opened = open_loop(policies, counts, loads)
    closed = closed_loop(policies, counts, shares, int(verifier["replicas"]))
    result = {
        "spec": str(args.spec.relative_to(ROOT)) if args.spec.is_relative_to(ROOT)
        else str(args.spec),
        "seed": args.seed, "plan_load": plan_load, "replicas": verifier["replicas"],
        "plan_k": {p.curve.pool: p.curve.plan_k for p in policies},
        "policy_build_s": built_s,
        "open_loop": {"low": args.low, "peak": min(peak, top), **summary(opened),
                      "hours": opened},
        "closed_loop": {"active_low": args.active_low, **summary(closed), "hours": closed},
        "loadavg": os.getloadavg(),
    }
    print(f"{result['spec']}: plan K {result['plan_k']} at load {plan_load:.3g} per replica "
          f"({verifier['replicas']} replicas); policies built in {built_s:.2f} s")
    for name, hours, key in (("open loop", opened, "load"), ("closed loop", closed,
                                                               "load_policy")):
        s = result[name.replace(" ", "_")]
        print(f"\n{name}: hour  load  fixed tok/s  policy tok/s  gain  policy K")
        for h in hours:
            gain = 100.0 * (h["policy_tok_s"] / h["fixed_tok_s"] - 1.0)
            ks = " ".join(f"{pool}={k}" for pool, k in h["policy_k"].items())
            print(f"  {h['hour']:4d} {h[key]:5.2f} {h['fixed_tok_s']:12.2f} "
                  f"{h['policy_tok_s']:13.2f} {gain:+5.2f}%  {ks}")
        print(f"  day: fixed {s['fixed_tok_s']:.2f} tok/s, policy {s['policy_tok_s']:.2f} "
              f"tok/s, gain {s['gain_pct']:+.2f} % (best hour {s['best_hour_gain_pct']:+.2f} %,"
              f" {s['hours_without_gain']} of 24 hours without gain)")
    if any(not h["stable"] for h in closed):
        print("  note: in some hours the policy's Ks did not settle within 20 rounds")
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    OUT.mkdir(exist_ok=True)
    path = OUT / f"bench_k_policy-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_output(path, json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
