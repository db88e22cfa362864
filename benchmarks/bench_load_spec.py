"""Loading a fleet spec of 10,000 pools: how long `load_spec` takes, YAML and JSON.

Two fleets, both from `bench_solve.make_spec` (seeded):

  * per-token - the documented 10,000-pool fleet, compact `{per_token: a}` acceptance
                (17.4 MB of YAML; `fleet-10000-7.yaml`, as bench_solve writes it);
  * tables    - the same pools with a per-K acceptance table (K 2-10) for each of the
                12 draft variants of every pool, about 30 MB of YAML
                (`fleet-tables-10000-7.yaml`): issue 27's file, which the 20 MB limit
                used to refuse on every command.

Each load runs `configspec_opt.loader.load_spec` in a fresh process (so one run's
memory and garbage are not the next one's), `--repeats` times; the median, the
fastest, the peak memory and the load average before and after are printed and
written to benchmarks/out/load-spec-<time>.json.  Files are generated once and kept.

`--errors` also times the refusal of a copy of each file whose last `draft_tok_s` is -1:
the error at the end of the file, with its line and column.

`--compare DIR` loads each file with the configspec_opt package under DIR too (say an
older commit's: `git archive COMMIT configspec_opt | tar -x -C DIR`), alternating the
two runs, with every size limit raised so that an older version reads the files.

Run:  python benchmarks/bench_load_spec.py [--pools 10000] [--seed 7] [--repeats 3]
          [--kinds per-token tables] [--formats yaml json] [--errors] [--compare DIR]
Never a test: this machine is shared; compare figures of one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
K_RANGE = range(2, 11)

LOAD_ONE = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from configspec_opt.errors import SpecError
from configspec_opt.loader import load_spec
t1 = time.perf_counter()
try:
    loaded = load_spec(sys.argv[1])
except SpecError as exc:  # --errors: how long the located error takes
    t2 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "peak_mib": 0,
                      "profiles": 0, "error_at": exc.issues[0].format()[:120]}))
    raise SystemExit(0)
t2 = time.perf_counter()
# VmHWM: this process's own peak (ru_maxrss would carry the generating parent's)
peak = next(int(line.split()[1]) / 1024 for line in
            Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "peak_mib": peak,
                  "profiles": len(loaded.spec.profiles)}))
"""


def tables_spec(pools: int, seed: int) -> dict[str, Any]:
    """`make_spec`'s fleet with each per-token acceptance written out as its K table."""
    sys.path.insert(0, str(HERE))
    from bench_solve import make_spec

    spec = make_spec(pools, seed)
    for p in spec["profiles"]:
        for target, acc in p["acceptance"].items():
            a = acc["per_token"]
            p["acceptance"][target] = {k: round(a * (1 - a**k) / (k * (1 - a)), 4)
                                       for k in K_RANGE}
    spec["name"] = f"bench-tables-{pools}"
    return spec


def per_token_spec(pools: int, seed: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from bench_solve import make_spec

    return make_spec(pools, seed)


MAKERS = {"per-token": ("fleet", per_token_spec), "tables": ("fleet-tables", tables_spec)}


def spec_file(kind: str, fmt: str, pools: int, seed: int) -> Path:
    """The fleet's file, written on first use (JSON as json.dumps, YAML as bench_solve)."""
    stem, make = MAKERS[kind]
    path = OUT / f"{stem}-{pools}-{seed}.{fmt}"
    if path.exists():
        return path
    OUT.mkdir(exist_ok=True)
    spec = make(pools, seed)
    tmp = path.with_suffix(path.suffix + ".tmp")
    if fmt == "json":
        tmp.write_text(json.dumps(spec))
    else:
        from ruamel.yaml import YAML

        with tmp.open("w") as fh:
            YAML(typ="safe", pure=False).dump(spec, fh)
    tmp.replace(path)
    return path


RAISED = {"CONFIGSPEC_MAX_FILE_BYTES": "1_000_000_000_000", "CONFIGSPEC_MAX_VALUES":
          "1_000_000_000", "CONFIGSPEC_MAX_CHARS": "1_000_000_000_000"}


def with_error(path: Path) -> Path:
    """A copy of `path` whose last draft_tok_s is -1 (written once, beside it)."""
    bad = path.with_name(f"{path.stem}-error{path.suffix}")
    if not bad.exists():
        text = path.read_text()
        key = '"draft_tok_s": ' if path.suffix == ".json" else "draft_tok_s: "
        at = text.rindex(key) + len(key)
        end = at
        while text[end] in "0123456789.":
            end += 1
        bad.write_text(text[:at] + "-1" + text[end:])
    return bad


def load_once(path: Path, package_dir: Path | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if package_dir is not None:
        env.update(RAISED, PYTHONPATH=str(package_dir))
    proc = subprocess.run([sys.executable, "-c", LOAD_ONE, str(path)], capture_output=True,
                          text=True, check=False, env=env, cwd=package_dir or HERE.parent)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail)}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def summary(runs: list[dict[str, Any]], **row: Any) -> dict[str, Any]:
    failed = [r["error"] for r in runs if "error" in r]
    if failed:
        return {**row, "error": failed[0]}
    times = [r["load_s"] for r in runs]
    return {**row, "median_s": round(statistics.median(times), 2),
            "min_s": round(min(times), 2), "peak_mib": round(max(r["peak_mib"] for r in runs)),
            "profiles": runs[0]["profiles"], "error_at": runs[0].get("error_at")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pools", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kinds", nargs="+", choices=sorted(MAKERS), default=["per-token", "tables"])
    ap.add_argument("--formats", nargs="+", choices=["yaml", "json"], default=["yaml", "json"])
    ap.add_argument("--errors", action="store_true",
                    help="also time a located error at the end of each file")
    ap.add_argument("--compare", type=Path, default=None,
                    help="a directory holding another configspec_opt package")
    args = ap.parse_args()

    rows = []
    load_before = os.getloadavg()
    versions: list[tuple[str, Path | None]] = [("this", None)]
    if args.compare is not None:
        versions.append(("compared", args.compare.resolve()))
    for kind in args.kinds:
        for fmt in args.formats:
            path = spec_file(kind, fmt, args.pools, args.seed)
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in versions}
            for _ in range(args.repeats):
                for name, package in versions:
                    runs[name].append(load_once(path, package))
            if args.errors:
                bad = with_error(path)
                runs["error"] = [load_once(bad) for _ in range(args.repeats)]
            for name in runs:
                row = summary(runs[name], kind=kind, format=fmt, file=path.name,
                              version=name, mb=round(path.stat().st_size / 1e6, 1))
                rows.append(row)
                shown = row.get("error") or (
                    f"median {row['median_s']:6.2f} s  min {row['min_s']:6.2f} s  " + (
                        f"at {row['error_at']}" if row.get("error_at")
                        else f"peak {row['peak_mib']:,} MiB"))
                print(f"{kind:9} {fmt:4} {row['mb']:6.1f} MB  {name:8}  {shown}", flush=True)
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    (OUT / f"load-spec-{stamp}.json").write_text(json.dumps(
        {"pools": args.pools, "seed": args.seed, "repeats": args.repeats, "rows": rows,
         "loadavg_before": load_before, "loadavg_after": load_after}, indent=2) + "\n")


if __name__ == "__main__":
    main()
