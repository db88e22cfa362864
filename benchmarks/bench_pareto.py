"""Pareto benchmark: a goodput-cost front of `bench_solve.py`'s fleet against one solve.

Times, each in a fresh process and in one run (so the ratio is fair on a shared
machine): `configspec solve --json` of the spec, and `pareto(x=max goodput,
y=min cost, max_points=N)` of `solvers/pareto.py` (one problem and one HiGHS
model reused across the points) and, with `--old PATH`, of another copy of
that module (e.g. the one that rebuilt the model per point, saved before a
change).  Both fronts are compared point by point (x and y within 1e-6).

Run:  python benchmarks/bench_pareto.py [--pools 1000] [--seed 7] [--points 20]
          [--time-limit S] [--old /tmp/pareto_old.py]
`--time-limit` bounds each front (the CLI's deadline): a front cut short says
how many points it proved.  Never a test: compare ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_solve import write_instance  # noqa: E402

FRONT = """
import importlib.util, json, sys, time
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
from configspec_opt.loader import load_spec
from configspec_opt.spec import Metric, Term
from solvers.adapter import SolverOptions
from solvers.deadline import limited
spec_ = importlib.util.spec_from_file_location("pareto_under_test", {impl!r})
mod = importlib.util.module_from_spec(spec_); sys.modules["pareto_under_test"] = mod
spec_.loader.exec_module(mod)
spec = load_spec({path!r}).spec
limit = {limit!r}
with limited(limit):
    f = mod.pareto(spec, Term(maximize=Metric.goodput), Term(minimize=Metric.cost),
                   max_points={points}, options=SolverOptions(time_limit=limit))
print(json.dumps({{"wall_s": time.perf_counter() - t0, "front_s": f.time_s,
                  "complete": f.complete, "message": f.message,
                  "points": [[p.x, p.y] for p in f.points]}}))
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, proc.stdout


def front(impl: str, path: Path, points: int, limit: float | None) -> dict[str, Any]:
    code = FRONT.format(root=str(ROOT), impl=impl, path=str(path), points=points, limit=limit)
    wall, out = timed([sys.executable, "-c", code])
    data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    data["process_s"] = wall
    return data


def agree(a: list[list[float]], b: list[list[float]], n: int | None = None) -> bool:
    n = min(len(a), len(b)) if n is None else n
    return all(abs(p - q) <= 1e-6 * max(1.0, abs(q))
               for u, v in zip(a[:n], b[:n]) for p, q in zip(u, v))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pools", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--points", type=int, default=20)
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--old", default=None, help="another copy of solvers/pareto.py to time")
    args = ap.parse_args()
    jpath, _ = write_instance(args.pools, args.seed)
    result: dict[str, Any] = {"pools": args.pools, "seed": args.seed, "points": args.points,
                              "time_limit": args.time_limit, "load_before": os.getloadavg()}
    solve_s, out = timed([sys.executable, "-m", "configspec_opt", "solve", str(jpath), "--json"])
    sol = json.loads(out)
    result["solve"] = {"wall_s": solve_s, "status": sol["status"],
                       "goodput": sol["fleet"]["goodput_tok_s"]}
    print(json.dumps(result["solve"]), flush=True)
    new = front(str(ROOT / "solvers" / "pareto.py"), jpath, args.points, args.time_limit)
    result["new"] = new
    print(json.dumps({k: v for k, v in new.items() if k != "points"}), flush=True)
    if args.old:
        old = front(args.old, jpath, args.points, args.time_limit)
        result["old"] = old
        print(json.dumps({k: v for k, v in old.items() if k != "points"}), flush=True)
        cut = bool(old["message"] or new["message"])  # a front stopped by the time limit
        result["same_front"] = (agree(new["points"], old["points"])
                                and (cut or len(new["points"]) == len(old["points"])))
        result["compared"] = "common prefix (a front was cut short)" if cut else "whole fronts"
    result["front_over_solve"] = new["process_s"] / solve_s
    if args.old:
        result["old_over_solve"] = result["old"]["process_s"] / solve_s
    result["load_after"] = os.getloadavg()
    summary = {k: v for k, v in result.items() if k not in ("new", "old")}
    print(json.dumps(summary, indent=1))
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / f"pareto-{args.pools}-{args.seed}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
