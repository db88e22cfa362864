"""Robust plans against drift: the nominal and the robust plan of one fleet, both held
against a held-out drifted fleet, and the robust solve's time against the nominal one.

The fleet is bench_solve's generator (pools x 4 drafts x 3 quants x K 2-10) with
per-device SLOs (a least goodput, a most energy per token) beside its verifier capacity,
so that drift can break something.  The drift is the issue's: acceptance -10 %, rtt x1.5,
verifier latency +20 %; the robust box is acceptance, rtt and verify latency at those
margins.  Each plan is re-evaluated on the drifted numbers by `what_if.evaluate` (the
solve's own figures and checks), never solved again.

Run:  python benchmarks/bench_robust.py [--pools 50 1000] [--repeats 3]
Never a test: these machines are shared and noisy; compare ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_solve import make_spec  # noqa: E402

from configspec_opt.spec import Spec  # noqa: E402
from configspec_opt.spec_changes import Change, changed_spec  # noqa: E402
from configspec_opt.what_if import Plan, PlanRow, evaluate  # noqa: E402
from solvers.adapter import SolverOptions  # noqa: E402
from solvers.solve import solve  # noqa: E402

MARGINS = {"acceptance": 0.10, "rtt_s": 0.5, "verify_latency": 0.2}
DRIFT = [Change("acceptance", "*", 0.9), Change("rtt_s", "*", 1.5),
         Change("verify_latency", "*", 1.2)]


def fleet(pools: int, seed: int) -> dict[str, Any]:
    data = make_spec(pools, seed)
    data["constraints"]["per_device"] = {"min_goodput_tok_s": 3.0,
                                         "max_energy_j_per_tok": 0.3}
    return data


def plan_of(sol: Any) -> Plan:
    return Plan(tuple(PlanRow(c.device, n, *c.config)
                      for c, n in sol.assignment if n > 0))


def run(pools: int, seed: int, repeats: int, time_limit: float) -> dict[str, Any]:
    data = fleet(pools, seed)
    nominal_spec = Spec.model_validate(data)
    robust_spec = Spec.model_validate({**data, "robust": MARGINS})
    opts = SolverOptions(time_limit=time_limit, rel_gap=1e-4)
    times: dict[str, list[float]] = {"nominal": [], "robust": []}
    sols: dict[str, Any] = {}
    for _ in range(repeats):
        for name, spec in (("nominal", nominal_spec), ("robust", robust_spec)):
            t0 = time.perf_counter()
            sols[name] = solve(spec, options=opts)
            times[name].append(time.perf_counter() - t0)
    drifted = changed_spec(nominal_spec, DRIFT)
    out: dict[str, Any] = {"pools": pools, "candidates": len(sols["nominal"].problem.candidates)}
    for name, sol in sols.items():
        value = sol.objective_value
        held = evaluate(drifted, plan_of(sol)) if sol.assignment else None
        out[name] = {"status": sol.status.value, "objective": value,
                     "gap": sol.gap, "median_s": statistics.median(times[name]),
                     "drifted_broken": None if held is None else held.broken}
    nom, rob = out["nominal"]["objective"], out["robust"]["objective"]
    out["price"] = None if not nom or rob is None else (nom - rob) / abs(nom)
    out["time_ratio"] = out["robust"]["median_s"] / out["nominal"]["median_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pools", type=int, nargs="+", default=[50, 1000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--time-limit", type=float, default=120.0)
    args = ap.parse_args()
    rows = []
    for pools in args.pools:
        row = run(pools, args.seed, args.repeats, args.time_limit)
        row["loadavg"] = os.getloadavg()[0]
        rows.append(row)
        broken = {k: len(row[k]["drifted_broken"] or []) for k in ("nominal", "robust")}
        print(f"{pools} pools ({row['candidates']:,} candidates): nominal "
              f"{row['nominal']['median_s']:.2f} s, robust {row['robust']['median_s']:.2f} s "
              f"(x{row['time_ratio']:.2f}); price {row['price']:.2%}; under drift the "
              f"nominal plan breaks {broken['nominal']} constraints, the robust "
              f"{broken['robust']} (load {row['loadavg']:.2f})", flush=True)
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "robust.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
