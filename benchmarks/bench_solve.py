"""Fleet-scale solve benchmark: configspec-opt against the same MILP in raw highspy.

Generates 1,000 pools x 4 drafts x 3 quants x 9 K (~100,000 candidates) with a
verifier capacity and a max-distinct-variants limit that both bind, then times,
each in a fresh process (so peak memory is its own):

  * parse     - loading the spec (JSON with compact per-token acceptance; YAML too)
  * configspec - `solvers.solve.solve` end to end: candidates, pruning, model build,
                 HiGHS, tie-break (and the same without pruning / without tie-break /
                 through the Pyomo backend instead of the direct highspy one)
  * cli       - `configspec solve --json` as a user runs it
  * direct    - the identical model built with highspy's array API, no Pyomo, no pruning

Run:  python benchmarks/bench_solve.py [--pools 1000] [--repeats 3]
Never a test: these machines are shared and noisy; compare ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

DRAFTS = [("llama-1b", 0.8), ("llama-3b", 2.0), ("llama-8b", 4.9), ("llama-13b", 7.5)]
QUANTS = [("Q4_K_M", 1.0), ("Q6_K", 1.35), ("Q8_0", 1.7)]
PLATFORMS = [(4, 6.0, 1.0), (8, 8.0, 1.5), (16, 25.0, 3.0), (64, 45.0, 9.0)]


def make_spec(pools: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    devices: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    for i in range(pools):
        mem, power, speed = rng.choice(PLATFORMS)
        name = f"pool-{i:04d}"
        devices.append({"name": name, "count": rng.randint(1, 40), "memory_gb": mem,
                        "rtt_s": round(rng.uniform(0.0, 0.08), 3)})
        for d, (draft, size) in enumerate(DRAFTS):
            for quant, qmul in QUANTS:
                v = speed * 40.0 / (size * qmul) * rng.uniform(0.8, 1.2)
                a = min(0.95, 0.72 + 0.05 * d + 0.02 * qmul + rng.uniform(-0.03, 0.03))
                profiles.append({"device": name, "draft": draft, "quant": quant,
                                 "draft_tok_s": round(v, 3),
                                 "power_w": round(power * rng.uniform(0.9, 1.1), 2),
                                 "acceptance": {"llama-70b": {"per_token": round(a, 4)}}})
    n_dev = sum(d["count"] for d in devices)
    return {
        "version": 1, "name": f"bench-{pools}",
        "targets": [{"name": "llama-70b", "family": "llama", "price_usd_per_mtok": 0.9,
                     "verify_latency_s": 0.5, "capacity_tok_s": round(n_dev * 5.0, 1)}],
        "drafts": [{"name": d, "family": "llama",
                    "quants": {q: {"size_gb": round(size * m, 2)} for q, m in QUANTS}}
                   for d, size in DRAFTS],
        "devices": devices, "profiles": profiles,
        "search": {"k": {"min": 2, "max": 10}},
        "objective": {"maximize": "goodput"},
        "constraints": {"fleet": {"max_distinct_variants": 3}},
    }


def write_instance(pools: int, seed: int = 7) -> tuple[Path, Path]:
    OUT.mkdir(exist_ok=True)
    spec = make_spec(pools, seed)
    jpath, ypath = OUT / f"fleet-{pools}-{seed}.json", OUT / f"fleet-{pools}-{seed}.yaml"
    jpath.write_text(json.dumps(spec))
    from ruamel.yaml import YAML

    with ypath.open("w") as fh:
        YAML(typ="safe", pure=False).dump(spec, fh)
    return jpath, ypath


# --- measurements, each run in its own process ------------------------------


def peak_mib() -> float:
    """This process's own peak RSS (VmHWM): ru_maxrss carries a parent's peak over exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_parse(path: str) -> dict[str, Any]:
    from configspec_opt.loader import load_spec

    t0 = time.perf_counter()
    loaded = load_spec(path)
    return {"parse_s": time.perf_counter() - t0, "profiles": len(loaded.spec.profiles),
            "peak_mib": peak_mib()}


def run_configspec(path: str, prune: str, tie: str, backend: str = "highs") -> dict[str, Any]:
    from configspec_opt.loader import load_spec
    from solvers.adapter import SolverOptions
    from solvers.solve import solve

    t0 = time.perf_counter()
    spec = load_spec(path).spec
    t1 = time.perf_counter()
    sol = solve(spec, prune=prune == "1", tie_break=tie == "1",
                options=SolverOptions(backend="pyomo" if backend == "pyomo" else "highs"))
    t2 = time.perf_counter()
    solve_s = sum(s.time_s for s in sol.stages)
    return {"parse_s": t1 - t0, "total_s": t2 - t0, "build_s": sol.build_s,
            "highs_s": solve_s, "status": sol.status.value,
            "objective": sol.objective_value, "candidates": len(sol.problem.candidates),
            "pruned": sol.problem.pruned, "stages": len(sol.stages), "peak_mib": peak_mib()}


def run_direct(path: str) -> dict[str, Any]:
    """The same MILP through highspy's arrays: x per candidate, z per variant."""
    import highspy
    import numpy as np

    from configspec_opt.loader import load_spec
    from configspec_opt.problem import build_problem

    spec = load_spec(path).spec
    problem = build_problem(spec, prune=False)  # candidates only; no Pyomo
    t0 = time.perf_counter()
    cands = problem.candidates
    n = len(cands)
    variants = problem.variants
    vidx = {v: j for j, v in enumerate(variants)}
    nv = len(variants)
    h = highspy.Highs()  # type: ignore[no-untyped-call, unused-ignore]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 1e-9)
    h.setOptionValue("mip_abs_gap", 1e-9)
    h.setOptionValue("threads", 1)
    counts = np.array([problem.pools[c.pool].count for c in cands], dtype=float)
    cost = np.array([c.goodput_tok_s for c in cands])
    h.addCols(n, cost, np.zeros(n), counts, 0, np.array([], dtype=np.int32),
              np.array([], dtype=np.int32), np.array([], dtype=float))
    h.addCols(nv, np.zeros(nv), np.zeros(nv), np.ones(nv), 0, np.array([], dtype=np.int32),
              np.array([], dtype=np.int32), np.array([], dtype=float))
    h.changeColsIntegrality(n + nv, np.arange(n + nv, dtype=np.int32),
                            np.array([highspy.HighsVarType.kInteger] * (n + nv)))
    lo: list[float] = []
    up: list[float] = []
    starts: list[int] = []
    index: list[int] = []
    value: list[float] = []

    def row(cols: list[int], vals: list[float], lb: float, ub: float) -> None:
        starts.append(len(index))
        index.extend(cols)
        value.extend(vals)
        lo.append(lb)
        up.append(ub)

    for d, idx in enumerate(problem.by_pool):
        cnt = float(problem.pools[d].count)
        row(idx, [1.0] * len(idx), cnt, cnt)
        groups: dict[int, list[int]] = {}
        for i in idx:
            groups.setdefault(vidx[cands[i].variant], []).append(i)
        for j, members in sorted(groups.items()):
            row([*members, n + j], [1.0] * len(members) + [-cnt], -highspy.kHighsInf, 0.0)
    assert problem.max_variants is not None
    row(list(range(n, n + nv)), [1.0] * nv, -highspy.kHighsInf, float(problem.max_variants))
    for r in problem.rows:
        coef = [r.coef(c) for c in cands]
        cols = [i for i, a in enumerate(coef) if a]
        row(cols, [coef[i] for i in cols], -highspy.kHighsInf if r.sense == "<=" else r.rhs,
            r.rhs if r.sense == "<=" else highspy.kHighsInf)
    h.addRows(len(lo), np.array(lo), np.array(up), len(index), np.array(starts, dtype=np.int32),
              np.array(index, dtype=np.int32), np.array(value))
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    if os.environ.get("BENCH_WRITE_MPS"):
        h.writeModel(os.environ["BENCH_WRITE_MPS"])
    t1 = time.perf_counter()
    h.run()
    t2 = time.perf_counter()
    info = h.getInfo()
    return {"build_s": t1 - t0, "highs_s": t2 - t1, "total_s": t2 - t0,
            "status": h.modelStatusToString(h.getModelStatus()),
            "objective": info.objective_function_value, "candidates": n,
            "peak_mib": peak_mib()}


def run_cli(path: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "configspec_opt", "solve", path, "--json",
                           "--no-explain"], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    data = json.loads(proc.stdout)  # fails loudly if anything but JSON reached stdout
    return {"total_s": elapsed, "status": data["status"],
            "objective": data["objective"]["value"], "exit": proc.returncode}


WORKERS: dict[str, Callable[..., dict[str, Any]]] = {
    "parse": run_parse, "configspec": run_configspec, "direct": run_direct, "cli": run_cli}


def measure(kind: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, *args],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pools", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--worker", nargs="+")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker[0]](*args.worker[1:])))
        return

    jpath, ypath = write_instance(args.pools, args.seed)
    print(f"instance: {args.pools} pools, {jpath.stat().st_size / 1e6:.1f} MB JSON, "
          f"{ypath.stat().st_size / 1e6:.1f} MB YAML")
    yaml_parse = measure("parse", str(ypath))
    print(f"YAML spec load: {yaml_parse['parse_s']:.2f} s ({yaml_parse['profiles']} profiles)")
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in
                                             ("parse", "direct", "ours", "ours-noprune",
                                              "ours-notie", "ours-pyomo", "cli", "cli-yaml")}
    for rep in range(args.repeats):
        rows["parse"].append(measure("parse", str(jpath)))
        rows["direct"].append(measure("direct", str(jpath)))
        rows["ours"].append(measure("configspec", str(jpath), "1", "1"))
        rows["ours-notie"].append(measure("configspec", str(jpath), "1", "0"))
        rows["ours-noprune"].append(measure("configspec", str(jpath), "0", "1"))
        rows["ours-pyomo"].append(measure("configspec", str(jpath), "1", "1", "pyomo"))
        rows["cli"].append(measure("cli", str(jpath)))
        rows["cli-yaml"].append(measure("cli", str(ypath)))
        print(f"repeat {rep + 1}/{args.repeats} done", flush=True)

    d = rows["direct"]
    base = median(d, "total_s")
    print(f"\n{'run':<34}{'median s':>10}{'x direct':>10}{'peak MiB':>10}  notes")
    print(f"{'JSON spec load':<34}{median(rows['parse'], 'parse_s'):>10.3f}{'':>10}"
          f"{median(rows['parse'], 'peak_mib'):>10.0f}")
    print(f"{'direct highspy (build+solve)':<34}{base:>10.2f}{1.0:>10.2f}"
          f"{median(d, 'peak_mib'):>10.0f}  build {median(d, 'build_s'):.2f} s, "
          f"{d[0]['candidates']} candidates, {d[0]['status']}, obj {d[0]['objective']:.4f}")
    for key, label in (("ours", "configspec solve (prune, tie-break)"),
                       ("ours-notie", "configspec solve (prune, no tie)"),
                       ("ours-noprune", "configspec solve (no prune)"),
                       ("ours-pyomo", "configspec solve (pyomo backend)")):
        r = rows[key]
        tot = median(r, "total_s")
        print(f"{label:<34}{tot:>10.2f}{tot / base:>10.2f}{median(r, 'peak_mib'):>10.0f}  "
              f"parse {median(r, 'parse_s'):.2f}, build {median(r, 'build_s'):.2f}, "
              f"highs {median(r, 'highs_s'):.2f} s, {r[0]['candidates']} candidates "
              f"({r[0]['pruned']} pruned), {r[0]['status']}, obj {r[0]['objective']:.4f}")
    for key, label in (("cli", "configspec solve --json (JSON)"),
                       ("cli-yaml", "configspec solve --json (YAML)")):
        c = rows[key]
        tot = median(c, "total_s")
        print(f"{label:<34}{tot:>10.2f}{tot / base:>10.2f}{'':>10}  "
              f"exit {c[0]['exit']}, obj {c[0]['objective']:.4f}")
    objs = {round(r[0]["objective"], 4) for r in (rows["direct"], rows["ours"], rows["cli"],
                                                   rows["ours-noprune"], rows["cli-yaml"],
                                                   rows["ours-pyomo"])}
    print("same optimum everywhere:", len(objs) == 1, objs)


if __name__ == "__main__":
    main()
