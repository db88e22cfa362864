"""Solve time under fleet load: pools sharing one batched verifier, as the fleet grows.

Each size is a synthetic fleet built from `examples/fleet-verifier/shared-verifier.yaml`
(its verifier table, draft and three device kinds), with `--pools` pools of 1-8 devices,
random rtt, drafting speed (±20 %) and acceptance, replicas 1-24 and a 70 $/h budget.  Each
solve is `configspec solve --json --no-explain` in a fresh process (with and without the
tie-break); the stages the solver reports (each level model and the tie-break) are printed
with the load average, and the results are written to `benchmarks/out/`.

Run:  python benchmarks/bench_load_solve.py [--pools 12 24 48] [--seed 3]
Never a test: compare times within one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "fleet-verifier" / "shared-verifier.yaml"
OUT = HERE / "out"


def make_spec(pools: int, seed: int) -> dict[str, Any]:
    """The example's verifier and device kinds, `pools` random pools of them."""
    spec: dict[str, Any] = YAML(typ="safe").load(EXAMPLE.read_text())
    rng = random.Random(seed)
    kinds = {d["name"]: d for d in spec["devices"]}
    profiles = {p["device"]: p for p in spec["profiles"]}
    target = spec["targets"][0]["name"]
    devices, profs = [], []
    for i in range(pools):
        kind = sorted(kinds)[i % len(kinds)]
        name = f"{kind}-{i}"
        devices.append({**kinds[kind], "name": name, "count": rng.randint(1, 8),
                        "rtt_s": round(rng.uniform(0.01, 0.06), 3)})
        base = profiles[kind]
        profs.append({**base, "device": name,
                      "draft_tok_s": round(base["draft_tok_s"] * rng.uniform(0.8, 1.2), 2),
                      "acceptance": {target: {"per_token": round(rng.uniform(0.7, 0.88), 3)}}})
    spec["devices"], spec["profiles"] = devices, profs
    spec["name"] = f"load-bench-{pools}"
    spec["targets"][0]["verifier"]["replicas"]["max"] = 24
    spec["constraints"] = {"fleet": {"max_cost_usd_per_hour": 70}}
    return spec


def solve(path: Path, tie_break: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "configspec_opt", "solve", str(path), "--json", "--no-explain",
           *([] if tie_break else ["--no-tie-break"])]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.perf_counter() - t0
    data = json.loads(proc.stdout)
    s = data["solver"]
    return {"tie_break": tie_break, "wall_s": wall, "load_before": load,
            "load_after": os.getloadavg()[0], "status": data["status"],
            "objective": data["objective"]["value"], "gap": s.get("gap"),
            "proven_optimal": s.get("proven_optimal"), "candidates": s.get("candidates"),
            "stages": [(st["what"], round(st["time_s"], 2)) for st in s["stages"]],
            "replicas": [v["replicas"] for v in (data.get("fleet") or {}).get("verifiers", [])]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pools", type=int, nargs="+", default=[12, 24, 48])
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    results = []
    for n in a.pools:
        path = OUT / f"load-fleet-{n}-{a.seed}.yaml"
        with path.open("w") as fh:
            YAML(typ="safe").dump(make_spec(n, a.seed), fh)
        for tie in (False, True):
            res = {"pools": n, **solve(path, tie)}
            results.append(res)
            print(json.dumps(res), flush=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    (OUT / f"bench_load_solve-{stamp}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
