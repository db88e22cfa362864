"""Record, or compare against a record, `configspec solve --json` of every spec in the repo.

A refactor that must not change behaviour runs this before (``record DIR``)
and after (``compare DIR``): every spec's JSON answer (for each objective the
paper asks about), and every committed lock, must be byte-identical.  Timing
fields (``time_s``, ``build_s``: wall-clock seconds of this run) are the only
thing set aside: they are replaced by 0 before comparing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OBJECTIVES = ("", "max:goodput", "cost_efficiency", "min:energy")


def specs() -> list[Path]:
    """Every committed YAML document that `configspec validate` accepts as a spec."""
    files = subprocess.run(["git", "ls-files", "*.yaml"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    out = []
    for f in files:
        r = subprocess.run([sys.executable, "-m", "configspec_opt", "validate", f], cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode == 0:
            out.append(ROOT / f)
    return out


TIMING_KEYS = frozenset({"time_s", "build_s"})


def _untimed(value: object) -> object:
    if isinstance(value, dict):
        return {k: 0 if k in TIMING_KEYS else _untimed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _normalised(stdout: bytes) -> bytes:
    """The answer with its timings zeroed, in the key order it was printed."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return stdout
    return json.dumps(_untimed(data), indent=2).encode()


def answers() -> dict[str, bytes]:
    """Every answer of this tree, by file name: solves (timings zeroed), locks, relocks."""
    out: dict[str, bytes] = {}
    for spec in specs():
        rel = spec.relative_to(ROOT).as_posix()
        for obj in OBJECTIVES:
            cmd = [sys.executable, "-m", "configspec_opt", "solve", "--json", rel]
            if obj:
                cmd += ["--objective", obj]
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True)
            name = rel.replace("/", "__") + (f"@{obj.replace(':', '-')}" if obj else "")
            out[name + ".json"] = _normalised(r.stdout) + f"\nexit={r.returncode}\n".encode()
    for lock in subprocess.run(["git", "ls-files", "*.lock"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.split():
        out["lock__" + lock.replace("/", "__")] = (ROOT / lock).read_bytes()
        out["relock__" + lock.replace("/", "__")] = _relocked(ROOT / lock)
    return out


def _relocked(lock: Path) -> bytes:
    """What `configspec lock` writes now for the lock's spec (in a copy of its directory)."""
    spec = lock.with_name(lock.name[: -len(".lock")])
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / spec.parent.name
        shutil.copytree(spec.parent, copy)
        r = subprocess.run([sys.executable, "-m", "configspec_opt", "lock", spec.name],
                           cwd=copy, capture_output=True)
        written = copy / lock.name
        return (written.read_bytes() if written.exists() else b"") + \
            f"\nexit={r.returncode}\n".encode()


def main() -> int:
    """record DIR or compare DIR; exit 1 when any answer differs."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("action", choices=["record", "compare"])
    ap.add_argument("directory", type=Path)
    a = ap.parse_args()
    now = answers()
    if a.action == "record":
        a.directory.mkdir(parents=True, exist_ok=True)
        for name, data in now.items():
            (a.directory / name).write_bytes(data)
        print(f"recorded {len(now)} answers in {a.directory}")
        return 0
    before = {p.name: p.read_bytes() for p in a.directory.iterdir()}
    bad = sorted(n for n in before.keys() | now.keys() if before.get(n) != now.get(n))
    for n in bad:
        print(f"DIFFERENT: {n} ({hashlib.sha256(before.get(n, b'')).hexdigest()[:8]} -> "
              f"{hashlib.sha256(now.get(n, b'')).hexdigest()[:8]})")
    print(f"{len(now) - len(bad)} of {len(before | now)} identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
