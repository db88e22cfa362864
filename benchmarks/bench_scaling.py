"""Scaling curve of issue 13: 100 to 10,000 pools, configspec against the direct HiGHS model.

The instances are `bench_solve.py`'s (same generator, same seed) so every size is
comparable with the 1,000-pool figures quoted in docs/performance.md. Every
measurement runs in a fresh process so its peak RSS is its own:

  * load   - `configspec_opt.loader.load_spec` of the YAML spec (parse, validation,
             consistency), what every command pays first;
  * ours   - `configspec solve SPEC.yaml --json --no-explain` as a child process: its wall
             time and peak RSS (getrusage of the only child the measuring process has);
             the build / HiGHS split is read from the JSON it prints;
  * direct - `bench_solve.run_direct`, the same MILP hand-built with highspy's arrays.
             Its peak includes loading the JSON spec and building candidates, as ours does.

Large sizes get a time limit per solve (ours: `--time-limit`; direct: HiGHS's
`time_limit`): what each reached (status, gap, objective) is recorded as it is.
The load average is recorded before and after every measurement because the
2-core machine is shared.

Large plain fleets are solved by the decomposition (`solvers/decompose.py`, chosen by
`method="auto"` above 20,000 candidates); `--gap` passes the CLI's `--gap` (the issue's
target is a certified 0.1 %, `--gap 1e-3`), `--direct-up-to N` skips the monolithic
direct model above N pools (it did not finish at 10,000 in 20 minutes), `--kinds` picks
the measurements, `--png` where the plot goes.

Run:     python benchmarks/bench_scaling.py [--sizes 100 1000 3000 10000]
         python benchmarks/bench_scaling.py --sizes 1000 3000 10000 --gap 1e-3 \
             --direct-up-to 3000 --png docs/scaling-decomposition.png
Re-plot: python benchmarks/bench_scaling.py --plot benchmarks/out/scaling-DATE.json
Never a test: single runs swing by up to 2x under load; read ratios within a run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import bench_solve  # noqa: E402  (a sibling script, not a package)

OUT = bench_solve.OUT
DEFAULT_LIMITS = {100: 600.0, 1000: 600.0, 3000: 600.0, 10000: 600.0}
DEFAULT_REPEATS = {100: 3, 1000: 3, 3000: 1, 10000: 1}


# --- workers, each in its own process -------------------------------------------


def own_peak_mib() -> float:
    """This process's own peak RSS.  Not ru_maxrss: Linux carries a parent's peak
    over fork+exec into the child's RUSAGE_SELF, so a worker started by a parent
    that once held a large spec would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def work_load(ypath: str) -> dict[str, Any]:
    res = bench_solve.run_parse(ypath)
    res.update(ru_maxrss_mib=res["peak_mib"], peak_mib=own_peak_mib())
    return res


def work_ours(ypath: str, limit: str, gap: str = "") -> dict[str, Any]:
    """Run the CLI as a user does; this process has no other child, so
    RUSAGE_CHILDREN's ru_maxrss is the CLI's own peak."""
    cmd = [sys.executable, "-m", "configspec_opt", "solve", ypath, "--json", "--no-explain",
           "--time-limit", limit, *(["--gap", gap] if gap else [])]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    res: dict[str, Any] = {"wall_s": wall, "peak_mib": usage.ru_maxrss / 1024,
                           "cpu_s": usage.ru_utime + usage.ru_stime, "exit": proc.returncode}
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        res.update(status="no-json", stderr=proc.stderr[-2000:])
        return res
    solver = data.get("solver", {})
    res.update(status=data.get("status"),
               objective=(data.get("objective") or {}).get("value"),
               build_s=solver.get("build_s"), highs_s=solver.get("time_s"),
               gap=solver.get("gap"), proven_optimal=solver.get("proven_optimal"),
               candidates=solver.get("candidates"), pruned=solver.get("pruned_dominated"),
               tie_break=solver.get("tie_break"),
               stages=[{k: s.get(k) for k in ("what", "termination", "time_s", "gap")}
                       for s in solver.get("stages", [])])
    return res


def work_direct(jpath: str, limit: str) -> dict[str, Any]:
    """`bench_solve.run_direct` unchanged, with HiGHS's time_limit set on the
    instance it creates (its own options are set afterwards and do not touch it)."""
    import highspy

    made: list[Any] = []
    base = highspy.Highs

    class Limited(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.setOptionValue("time_limit", float(limit))
            made.append(self)

    setattr(highspy, "Highs", Limited)  # noqa: B010  (patched for run_direct)
    res = bench_solve.run_direct(jpath)
    info = made[-1].getInfo()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    res.update(gap=info.mip_gap, dual_bound=info.mip_dual_bound,
               cpu_s=usage.ru_utime + usage.ru_stime, ru_maxrss_mib=res["peak_mib"],
               peak_mib=own_peak_mib())
    return res


WORKERS: dict[str, Callable[..., dict[str, Any]]] = {
    "load": work_load, "ours": work_ours, "direct": work_direct}


def measure(kind: str, *args: str) -> dict[str, Any]:
    before = os.getloadavg()
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, *args],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    after = os.getloadavg()
    if proc.returncode != 0:
        res: dict[str, Any] = {"error": proc.stderr[-3000:], "exit": proc.returncode}
    else:
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["load_before"] = [round(x, 2) for x in before]
    res["load_after"] = [round(x, 2) for x in after]
    return res


# --- summary, fit, plot -----------------------------------------------------------


def med(runs: list[dict[str, Any]], key: str) -> float | None:
    """Median over the runs not marked `disturbed` (kept in the file, with a note)."""
    vals = [float(r[key]) for r in runs if r.get(key) is not None and not r.get("disturbed")]
    return statistics.median(vals) if vals else None


def summarize(size: dict[str, Any]) -> dict[str, Any]:
    ours, direct, load = size["ours"], size["direct"], size["load"]
    o_s, d_s = med(ours, "wall_s"), med(direct, "total_s")
    o_obj = ours[0].get("objective") if ours else None
    d_obj = direct[0].get("objective") if direct else None
    agree = None
    if o_obj is not None and d_obj is not None:
        agree = abs(o_obj - d_obj) / max(1.0, abs(d_obj))
    loads = [r[k][0] for r in ours + direct + load for k in ("load_before", "load_after")]
    if d_s is None and direct and direct[0].get("wall_s_at_kill"):
        d_s = med(direct, "wall_s_at_kill")
    return {"pools": size["pools"], "load_s": med(load, "parse_s"), "ours_s": o_s,
            "build_s": med(ours, "build_s"), "highs_s": med(ours, "highs_s"),
            "direct_s": d_s, "direct_build_s": med(direct, "build_s"),
            "ours_cpu_s": med(ours, "cpu_s"), "direct_cpu_s": med(direct, "cpu_s"),
            "ratio": (o_s / d_s) if o_s and d_s else None,
            "peak_ours_mib": med(ours, "peak_mib"),
            "peak_direct_mib": med(direct, "peak_mib") or med(direct, "peak_mib_at_kill"),
            "finished": bool(ours) and all(r.get("status") in ("optimal", "feasible")
                                           for r in ours)
            and all(r.get("status") in ("optimal", "Optimal") for r in direct),
            "note": "; ".join(r["note"] for r in ours + direct if r.get("note")) or None,
            "peak_load_mib": med([r for r in load if not r.get("peak_inherited")], "peak_mib"),
            "status_ours": (ours[0].get("status") or "killed") if ours else None,
            "gap_ours": ours[0].get("gap") if ours else None,
            "status_direct": (direct[0].get("status") or "killed") if direct else None,
            "gap_direct": direct[0].get("gap") if direct else None,
            "objective_ours": o_obj, "objective_direct": d_obj, "objective_rel_diff": agree,
            "candidates": ours[0].get("candidates") if ours else None,
            "repeats": len(ours),
            "load_avg_range": [min(loads), max(loads)] if loads else None}


def exponents(rows: list[dict[str, Any]], key: str) -> list[tuple[int, int, float]]:
    """Local exponent e of cost ~ pools^e between neighbouring sizes; only sizes
    where both solves finished, since a killed run's time is a lower bound."""
    out = []
    done = [r for r in rows if r.get("finished") or key in ("load_s", "peak_load_mib")]
    for a, b in itertools.pairwise(done):
        if a.get(key) and b.get(key):
            out.append((a["pools"], b["pools"],
                        math.log(b[key] / a[key]) / math.log(b["pools"] / a["pools"])))
    return out


def plot(result: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["summary"]
    x = [r["pools"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))

    def series(ax: Any, key: str, label: str, mark: str, style: str = "-") -> None:
        """Finished sizes solid; a size whose solves were stopped is a hollow marker
        on a dotted segment: its value is a lower bound (time) or a partial peak."""
        done = [(p, r[key]) for p, r in zip(x, rows)
                if r.get(key) and (r.get("finished") or key in ("load_s", "peak_load_mib"))]
        line = ax.plot(*zip(*done), marker=mark, label=label, linestyle=style)[0]
        cut = [(p, r[key]) for p, r in zip(x, rows) if r.get(key) and (p, r[key]) not in done]
        if cut:
            ax.plot(*zip(done[-1], *cut), linestyle=":", color=line.get_color())
            ax.plot(*zip(*cut), marker=mark, linestyle="", markerfacecolor="none",
                    color=line.get_color())

    for key, label, mark in (("load_s", "YAML spec load", "s"),
                             ("ours_s", "configspec solve --json (process)", "o"),
                             ("highs_s", "  of which solve(): candidates + solver", "."),
                             ("direct_s", "direct highspy (build + solve)", "^")):
        if any(r.get(key) for r in rows):
            series(ax1, key, label, mark, ":" if key == "highs_s" else "-")
    for p, r in zip(x, rows):
        if not r.get("finished") and r.get("ours_s"):
            ax1.annotate("hollow: not finished,\nstopped after "
                         f"{r['ours_s']:.0f} s\nin HiGHS presolve",
                         (p, r["ours_s"]), fontsize=7, textcoords="offset points",
                         xytext=(-95, -45))
    ax1.set(xscale="log", yscale="log", xlabel="pools", ylabel="seconds",
            title="time (median; time limit 600 s per solve)")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8, loc="upper left")
    for key, label, mark in (("peak_ours_mib", "configspec solve", "o"),
                             ("peak_direct_mib", "direct highspy", "^"),
                             ("peak_load_mib", "spec load only", "s")):
        if any(r.get(key) for r in rows):
            series(ax2, key, label, mark)
    ax2.axhline(2048, color="red", linestyle="--", linewidth=1, label="2 GiB target")
    ax2.set(xscale="log", yscale="log", xlabel="pools", ylabel="peak RSS (MiB)",
            title="peak memory")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(f"bench_scaling.py, seed {result['seed']}, {result['machine']}, "
                 f"{result['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def print_table(result: dict[str, Any]) -> None:
    print("\n| pools | candidates | load s | ours s | build s | HiGHS s | direct s | ours/direct"
          " | peak MiB ours | peak MiB direct | status ours / direct | gap ours | obj rel diff"
          " | load avg |")
    print("|" + "---:|" * 13 + "---|")
    gt = {True: "", False: "≥ "}
    for r in result["summary"]:
        def f(v: Any, fmt: str = ".2f") -> str:
            return "" if v is None else format(v, fmt)
        la = r["load_avg_range"]
        done = bool(r.get("finished"))
        print(f"| {r['pools']:,} | {r['candidates'] or ''} | {f(r['load_s'])}"
              f" | {gt[done]}{f(r['ours_s'])} | {f(r['build_s'])} | {f(r['highs_s'])}"
              f" | {gt[done]}{f(r['direct_s'])} | {f(r['ratio']) if done else ''}"
              f" | {f(r['peak_ours_mib'], '.0f')} | {f(r['peak_direct_mib'], '.0f')}"
              f" | {r['status_ours']} / {r['status_direct']} | {f(r['gap_ours'], '.1e')}"
              f" | {f(r['objective_rel_diff'], '.1e')}"
              f" | {la[0]:.1f}–{la[1]:.1f} |")
    for key in ("load_s", "ours_s", "highs_s", "direct_s", "peak_ours_mib"):
        print(key, [f"{a}->{b}: n^{e:.2f}" for a, b, e in exponents(result["summary"], key)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000, 10000])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--limit", type=float, help="time limit per solve (default 600 s)")
    ap.add_argument("--gap", default="", help="ours: the CLI's --gap (default: exact)")
    ap.add_argument("--direct-up-to", type=int, help="no direct model above this many pools")
    ap.add_argument("--kinds", nargs="+", default=["load", "ours", "direct"],
                    choices=["load", "ours", "direct"])
    ap.add_argument("--png", type=Path, help="the plot (default docs/scaling.png)")
    ap.add_argument("--repeats", type=int, help="repeats per size (default 3 / 3 / 1 / 1)")
    ap.add_argument("--plot", type=Path, help="re-render docs/scaling.png from a results file")
    ap.add_argument("--out", type=Path, help="results file (default out/scaling-DATE.json)")
    ap.add_argument("--worker", nargs="+")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker[0]](*args.worker[1:])))
        return
    png = args.png or ROOT / "docs" / "scaling.png"
    result: dict[str, Any]
    if args.plot:
        loaded: dict[str, Any] = json.loads(args.plot.read_text())
        result = loaded
        result["summary"] = [summarize(s) for s in result["sizes"]]
        print_table(result)
        plot(result, png)
        return

    date = dt.date.today().isoformat()
    dest = args.out or OUT / f"scaling-{date}.json"
    result = {
        "date": date, "seed": args.seed, "machine": f"{os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "command": " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]]),
        "gap": args.gap or None,
        "sizes": [], "summary": []}
    for pools in args.sizes:
        limit = str(args.limit or DEFAULT_LIMITS.get(pools, 600.0))
        repeats = args.repeats or DEFAULT_REPEATS.get(pools, 1)
        t0 = time.perf_counter()
        jpath, ypath = bench_solve.write_instance(pools, args.seed)
        size: dict[str, Any] = {
            "pools": pools, "time_limit_s": float(limit), "repeats": repeats,
            "json_mb": round(jpath.stat().st_size / 1e6, 2),
            "yaml_mb": round(ypath.stat().st_size / 1e6, 2),
            "generate_s": round(time.perf_counter() - t0, 1),
            "load": [], "ours": [], "direct": []}
        result["sizes"].append(size)
        print(f"{pools} pools: {size['yaml_mb']} MB YAML, limit {limit} s, {repeats} repeats",
              flush=True)
        for rep in range(repeats):
            for kind, arg in (("load", [str(ypath)]), ("ours", [str(ypath), limit, args.gap]),
                              ("direct", [str(jpath), limit])):
                if kind not in args.kinds or (kind == "direct" and args.direct_up_to
                                              and pools > args.direct_up_to):
                    continue
                r = measure(kind, *arg)
                size[kind].append(r)
                brief = {k: r.get(k) for k in ("parse_s", "wall_s", "total_s", "build_s",
                                               "highs_s", "peak_mib", "status", "gap",
                                               "objective", "error")}
                print(f"  rep {rep + 1} {kind}: {brief} load {r['load_before'][0]}->"
                      f"{r['load_after'][0]}", flush=True)
                result["summary"] = [summarize(s) for s in result["sizes"]]
                dest.write_text(json.dumps(result, indent=1))
    print_table(result)
    plot(result, png)
    print(f"\nresults: {dest}\nplot: {png}")


if __name__ == "__main__":
    main()
