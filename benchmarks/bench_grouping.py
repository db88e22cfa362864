"""Grouping 100,000 pushed device profiles into pools (issue 27, item 4): time, memory,
pools and the bound on what the grouping costs.

Generates the devices with `gen_device_profiles.py` (seed 27, once, into
benchmarks/out/), then runs, each in a fresh process (so its peak RSS is its own:
RUSAGE_CHILDREN of the only child the measuring process has),

    configspec group DEVICES.jsonl --spec BASE.yaml --tolerance T --out FLEET.yaml
                     --members MEMBERS.csv --json [--no-bound]

for each tolerance: the wall time of the whole command, its CPU time (user + system:
what the machine's load cannot inflate), its peak RSS, and from its JSON the reading
and grouping times, the pools, the largest spread, the per-candidate factors and,
with the bound, both solves and the bound.  The load average is recorded before and
after each run: the 2-core machine is shared.

Run:  python benchmarks/bench_grouping.py [--devices 100000] [--tolerances 0.02 0.05 0.1]
Never a test: timings swing with the machine's load; the CPU times are the steadier.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
SEED = 27
sys.path.insert(0, str(HERE))

import gen_device_profiles  # noqa: E402  (a sibling script, not a package)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def generate(devices: int) -> tuple[Path, Path]:
    """The devices (generated once: minutes) and the base spec (written every run)."""
    data = OUT / f"devices-{devices}-{SEED}.jsonl"
    if not data.exists():
        subprocess.run([sys.executable, str(HERE / "gen_device_profiles.py"), "--devices",
                        str(devices), "--seed", str(SEED), "--out", str(data)], check=True)
    base = OUT / f"devices-base-{devices}.yaml"
    base.write_text(gen_device_profiles.base_spec(devices))
    return data, base


CHILD = """import atexit, sys
def peak():
    with open('/proc/self/status') as f:
        sys.stderr.write(next(x for x in f if x.startswith('VmHWM')).replace(':', ''))
atexit.register(peak)
from configspec_opt.cli import main
sys.argv = ['configspec', *sys.argv[1:]]
main()
"""
"""The CLI, reporting its own peak RSS (VmHWM: not ru_maxrss, which Linux carries
over from the parent and RUSAGE_CHILDREN, which is the largest child so far)."""


def run(data: Path, base: Path, tolerance: float, bound: bool, limit: float
        ) -> dict[str, Any]:
    """One `configspec group` in a child process: wall time, CPU time (the children's
    CPU times before and after; this process has no other child) and peak RSS."""
    tag = f"{data.stem}-t{tolerance:g}"
    args = ["-q", "group", str(data), "--spec", str(base), "--tolerance", str(tolerance),
            "--out", str(OUT / f"fleet-{tag}.yaml"), "--members", str(OUT / f"members-{tag}.csv"),
            "--json", *(["--time-limit", str(limit)] if bound else ["--no-bound"])]
    cmd = [sys.executable, "-c", CHILD, *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = load()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    peak = next(line.split()[1] for line in proc.stderr.splitlines()
                if line.startswith("VmHWM"))
    return {"tolerance": tolerance, "bound": bound, "wall_s": wall,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "peak_mib": int(peak) / 1024, "load_before": load_before,
            "load_after": load(), "report": report}


def show(results: list[dict[str, Any]]) -> None:
    print(f"{'tol':>5} {'bound':>5} {'wall s':>7} {'cpu s':>6} {'read s':>6} {'group s':>7} "
          f"{'MiB':>5} {'pools':>6} {'spread':>7} {'goodput':>8} {'loss <=':>8} {'solves s':>8}"
          "  load")
    for r in results:
        rep = r["report"]
        b = rep.get("bound") or {}
        loss = b.get("loss")
        print(f"{r['tolerance']:>5g} {'yes' if r['bound'] else 'no':>5} {r['wall_s']:>7.1f} "
              f"{r['cpu_s']:>6.1f} {rep['read_s']:>6.1f} {rep['group_s']:>7.1f} "
              f"{r['peak_mib']:>5.0f} {rep['pools']:>6,} {rep['largest_spread']:>7.2%} "
              f"{rep['factors']['goodput'] - 1:>8.2%} "
              f"{'-' if loss is None else f'{loss:.2%}':>8} "
              f"{b.get('time_s', 0.0):>8.1f}  {r['load_before']} -> {r['load_after']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--tolerances", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    ap.add_argument("--time-limit", type=float, default=600.0, help="per solve of --bound")
    ap.add_argument("--no-bound", action="store_true", help="only the grouping")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    data, base = generate(args.devices)
    started = dt.datetime.now(dt.timezone.utc)
    results = []
    for tol in args.tolerances:
        results.append(run(data, base, tol, bound=False, limit=args.time_limit))
        if not args.no_bound:
            results.append(run(data, base, tol, bound=True, limit=args.time_limit))
    doc = {"started_utc": started.isoformat(timespec="seconds"), "devices": args.devices,
           "seed": SEED, "file_bytes": data.stat().st_size, "machine": platform.machine(),
           "cpus": os.cpu_count(), "python": platform.python_version(), "runs": results}
    path = OUT / f"grouping-{started:%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    show(results)
    print(f"written {path}")


if __name__ == "__main__":
    main()
