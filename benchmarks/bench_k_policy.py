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

`--real` measures instead of simulating: N devices at each load level (`--n 2,8`) are
replayed against one real llama-server (SmolLM2, the fleet-trial machinery of
profiler/fleet_trial.py; default spec examples/fleet-verifier/draft-choice-smollm2-cpu.yaml),
`--runs` times with the plan's K and with the policy's K for that level:

    python benchmarks/bench_k_policy.py --real --n 2,8 --runs 3

Results go to benchmarks/out/bench_k_policy-<timestamp>.json
(bench_k_policy_real-<timestamp>.json with --real).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
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


def policy_settle(policies: list[kp.Policy], active: dict[str, float], replicas: int
                  ) -> tuple[float, float, dict[str, int], float, float, int, bool]:
    """The fleet settled with the plan's K, then with the policy applied until its Ks hold:
    (load, goodput) fixed, the policy's Ks, (load, goodput) with them, rounds, stable."""
    plan = {p.curve.pool: p.curve.plan_k for p in policies}
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
    return b_fixed, fixed, ks, b, adaptive, rounds, stable


def closed_loop(policies: list[kp.Policy], counts: dict[str, int], shares: list[float],
                replicas: int) -> list[dict[str, Any]]:
    hours = []
    for h, share in enumerate(shares):
        active = {pool: n * share for pool, n in counts.items()}
        b_fixed, fixed, ks, b, adaptive, rounds, stable = policy_settle(policies, active,
                                                                        replicas)
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


REAL_SPEC = ROOT / "examples" / "fleet-verifier" / "draft-choice-smollm2-cpu.yaml"


def spread(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def real(args: argparse.Namespace, policies: list[kp.Policy], data: dict[str, Any],
         replicas: int) -> dict[str, Any]:
    """N replayed devices on one real llama-server, the plan's K against the policy's.

    The policy's K for N devices is the one it settles on at the load the model predicts
    for N active devices (`policy_settle`), as a device watching its verifier would
    reach; each run replays both Ks with the same seed (the same drafting draws), in
    turn, so slow drift of the machine falls on both.
    """
    from profiler import fleet_trial as ft
    from profiler.llama_server import LlamaServer
    from profiler.prompts import bundled_prompts

    if len(policies) != 1:
        raise SystemExit("--real replays one pool; this lock has several")
    pol = policies[0]
    c = pol.curve
    row = next(a for a in data["assignments"] if a["device"] == c.pool)
    v_d, quant = float(row["draft_tok_s"]), str(row["quant"])
    levels = []
    for n in args.n:
        b_fixed, g_fixed, chosen, b_pol, g_pol, _, stable = policy_settle(
            policies, {c.pool: float(n)}, replicas)
        levels.append({"n": n, "plan_k": c.plan_k, "policy_k": chosen[c.pool],
                       "model_load_fixed": b_fixed, "model_load_policy": b_pol,
                       "model_tok_s_per_device": {"fixed": g_fixed / n, "policy": g_pol / n},
                       "stable": stable})
    ks = sorted({lv["plan_k"] for lv in levels} | {lv["policy_k"] for lv in levels})
    tgt = ft.smollm2_target()
    work = Path(tempfile.mkdtemp(prefix="k-policy-real-"))
    rec_path = args.recording or work / "recording.json"
    if rec_path.is_file():
        recs = {r.k: r for r in ft.load_recordings(rec_path)}
    else:
        drf = ft.requantised_draft(tgt, work, ftype=quant, threads=1)
        texts = [p.text for p in bundled_prompts()[:4]]
        recorded = ft.record(drf, tgt, texts, ks, 48, threads=1)
        ft.save_recordings(rec_path, recorded)
        recs = {r.k: r for r in recorded}
    if missing := [k for k in ks if k not in recs]:
        raise SystemExit(f"{rec_path}: no recording at K={missing}")
    load_before = os.getloadavg()
    top = max(max(args.n), int(c.max_batch or max(args.n)))
    with LlamaServer(tgt, parallel=top, ctx=512 * top, threads=1) as srv:
        command = " ".join(srv.command())
        for lv in levels:
            n = lv["n"]
            runs: dict[str, list[dict[str, Any]]] = {"fixed": [], "policy": []}
            same = lv["plan_k"] == lv["policy_k"]
            for seed in range(args.runs):
                for name in ("fixed",) if same else ("fixed", "policy"):
                    k = lv[f"{name}_k" if name == "policy" else "plan_k"]
                    run = ft.replay(srv.url, recs[k], n, v_d, rtt_s=c.rtt_s, seed=seed)
                    if not all(d.context_ok for d in run.devices):
                        raise SystemExit(f"N={n} K={k}: a device's output left the recording")
                    runs[name].append({"k": k, "seed": seed, "tok_s_per_device": run.goodput,
                                       "b_steady": run.b_steady,
                                       "server_batch": run.server_batch,
                                       "loadavg": os.getloadavg()})
            if same:
                runs["policy"] = runs["fixed"]
            lv["runs"] = runs
            for name in ("fixed", "policy"):
                lv[name] = spread([r["tok_s_per_device"] for r in runs[name]])
                lv[f"{name}_b_steady"] = spread([r["b_steady"] for r in runs[name]])
            lv["gain_pct"] = 100.0 * (lv["policy"]["median"] / lv["fixed"]["median"] - 1.0)
            lv["policy_k_at_measured_load"] = pol.k_at(lv["fixed_b_steady"]["median"], c.rtt_s)
            print(f"N={n}: plan K={lv['plan_k']} {fmt(lv['fixed'])}, policy K={lv['policy_k']}"
                  f" {fmt(lv['policy'])} tok/s per device (median [min, max] of {args.runs}),"
                  f" gain {lv['gain_pct']:+.1f} %" + (" (same K: zero by construction)"
                                                      if same else "")
                  + f"; load measured {lv['fixed_b_steady']['median']:.2f} at the plan's K,"
                  f" model {lv['model_load_fixed']:.2f}", flush=True)
    return {"pool": c.pool, "quant": quant, "v_d": v_d, "rtt_s": c.rtt_s,
            "recording": str(rec_path), "server": command, "runs": args.runs,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "levels": levels}


def fmt(s: dict[str, float]) -> str:
    return f"{s['median']:.2f} [{s['min']:.2f}, {s['max']:.2f}]"


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
    ap.add_argument("--real", action="store_true",
                    help="replay N devices on a real llama-server (SmolLM2) instead of the day"
                    f" (default spec {REAL_SPEC.relative_to(ROOT)})")
    ap.add_argument("--n", type=lambda t: [int(x) for x in t.split(",")], default=[2, 8],
                    help="--real: the load levels, devices at once (default 2,8)")
    ap.add_argument("--runs", type=int, default=3, help="--real: runs per K and level")
    ap.add_argument("--recording", type=Path, default=None,
                    help="--real: reuse a `configspec fleet-trial` recording of the pool's draft")
    args = ap.parse_args()
    if args.real and args.spec == SPEC:
        args.spec = REAL_SPEC

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
    if args.real:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        out = {"spec": str(args.spec), "date": stamp,
               "command": "python " + " ".join(sys.argv),
               **real(args, policies, data, int(verifier["replicas"]))}
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        OUT.mkdir(exist_ok=True)
        path = OUT / f"bench_k_policy_real-{time.strftime('%Y%m%d-%H%M%S')}.json"
        write_output(path, json.dumps(out, indent=2) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")
        return
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
