"""`configspec check` over 100 committed specs with locks, hash mode (issue 13: < 2 s).

Builds a throw-away git repository (in a temporary directory, never this one)
with 100 specs: copies of the four committed example specs, each under its own
name so every file and lock differs, locks them with `configspec lock`, commits
them, then runs `configspec check DIR` as CI does, each run a fresh process:
wall time, CPU time (user + sys of that child), median of `--repeats`.

It also times what any `configspec` command pays before its first line of work
(interpreter start-up, and `import configspec_opt.cli`), and runs
`python -X importtime -m configspec_opt check DIR` once to list the imports
that cost the most (cumulative, self-inclusive microseconds).

Run:  python benchmarks/bench_check.py [--specs 100] [--repeats 5]
Never a test: shared 2-core machine; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
SOURCES = [ROOT / "examples" / "llama70b-edge.yaml", ROOT / "specs" / "retail-fleet.yaml",
           ROOT / "examples" / "paper" / "llama70b.yaml",
           ROOT / "examples" / "paper" / "qwen32b.yaml"]


def make_repo(dest: Path, n: int) -> list[Path]:
    specs = []
    for i in range(n):
        src = SOURCES[i % len(SOURCES)]
        text = re.sub(r"(?m)^name: (\S+)$", rf"name: \g<1>-{i:03d}", src.read_text(),
                      count=1)
        path = dest / "specs" / f"team-{i // 10:02d}" / f"{src.stem}-{i:03d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        specs.append(path)
    return specs


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall and CPU (user + sys) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def importtime(stderr: str, top: int) -> list[dict[str, Any]]:
    rows = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append({"module": m.group(4), "self_us": int(m.group(1)),
                         "cumulative_us": int(m.group(2)), "depth": len(m.group(3)) // 2})
    rows.sort(key=lambda r: -int(r["cumulative_us"]))
    return rows[:top]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--specs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    py = sys.executable
    exe = str(Path(py).with_name("configspec"))
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        specs = make_repo(repo, args.specs)
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
        lock = subprocess.run([exe, "lock", *map(str, specs)], cwd=repo, capture_output=True,
                              text=True, check=False)
        if lock.returncode != 0:
            raise SystemExit(f"configspec lock failed:\n{lock.stdout[-2000:]}{lock.stderr[-2000:]}")
        subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-qm", "specs"], cwd=repo, check=True)
        locks = len(list(repo.rglob("*.lock")))

        load_before = os.getloadavg()
        runs = []
        for _ in range(args.repeats):
            wall, cpu, proc = timed([exe, "check", "specs"], repo)
            if proc.returncode != 0:
                raise SystemExit(f"check failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
            runs.append((wall, cpu))
        summary_line = proc.stdout.strip().splitlines()[-1]
        startup = [timed([py, "-c", "pass"], repo)[:2] for _ in range(args.repeats)]
        imports = [timed([py, "-c", "import configspec_opt.cli"], repo)[:2]
                   for _ in range(args.repeats)]
        helps = [timed([exe, "--help"], repo)[:2] for _ in range(args.repeats)]
        it = subprocess.run([py, "-X", "importtime", "-m", "configspec_opt", "check", "specs"],
                            cwd=repo, capture_output=True, text=True, check=False)
        load_after = os.getloadavg()

    def med(xs: list[tuple[float, float]], i: int) -> float:
        return round(statistics.median(x[i] for x in xs), 3)

    top = importtime(it.stderr, 25)
    report = {
        "specs": args.specs, "locks": locks, "repeats": args.repeats,
        "check_summary": summary_line,
        "check_wall_s": med(runs, 0), "check_cpu_s": med(runs, 1),
        "check_runs": [[round(w, 3), round(c, 3)] for w, c in runs],
        "python_startup_wall_s": med(startup, 0),
        "import_cli_wall_s": med(imports, 0), "import_cli_cpu_s": med(imports, 1),
        "configspec_help_wall_s": med(helps, 0),
        "importtime_top": top,
        "loadavg_before": load_before, "loadavg_after": load_after, "cpus": os.cpu_count(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"bench_check-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"{summary_line}  ({locks} locks)")
    print(f"configspec check: median wall {report['check_wall_s']} s, CPU "
          f"{report['check_cpu_s']} s over {args.repeats} runs "
          f"{report['check_runs']}; load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"python -c pass {report['python_startup_wall_s']} s; import configspec_opt.cli "
          f"{report['import_cli_wall_s']} s wall / {report['import_cli_cpu_s']} s CPU; "
          f"configspec --help {report['configspec_help_wall_s']} s")
    print("top imports (cumulative ms, self ms):")
    for r in top[:15]:
        print(f"  {r['cumulative_us'] / 1000:8.1f} {r['self_us'] / 1000:7.1f}  "
              f"{'  ' * r['depth']}{r['module']}")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
