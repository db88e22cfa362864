"""Record, or compare against a record, what `configspec` answers for the committed specs.

Two uses, one normalisation:

* ``record DIR`` / ``compare DIR``: `configspec solve --json` of every committed spec
  (for each objective the paper asks about, one process each) and every committed lock
  and its re-lock, byte for byte, timings set aside.  Thorough and slow: run it by hand
  before and after a refactor.
* ``record-golden`` / ``compare-golden``: the golden files of ``tests/golden/`` (one JSON
  per example and output kind), which ``tests/golden/test_golden_outputs.py`` compares
  on every test run: `solve --json`, `report -o -`, `export` in every format and
  ``POST /v1/solve`` over HTTP, run in this process (typer's runner, FastAPI's
  TestClient) from the repository root as a user would type them.

What legitimately varies between two runs is normalised, nothing else:

* wall-clock seconds: every value under a key of `TIMING_KEYS` becomes 0, and the
  report's solver line shows ``<time_s> s``;
* generation times: `generated_at` values (export manifests, pool files, env files'
  ``..._GENERATED_AT``) and the report's ``generated ...`` become ``<generated_at>``;
* solver gaps below `GAP_ZERO` (a key containing ``gap``, and the report's ``gap X``)
  become 0: HiGHS reports round-off there, not a gap;
* absolute paths: the repository becomes ``<repo>``, an export's output directory
  ``<out>``, the HTTP service's database directory ``<tmp>``.

Golden JSON keeps each answer as the lines it was printed in (key order included, as
the builders write it), so a failure shows which line changed.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "tests" / "golden"
OBJECTIVES = ("", "max:goodput", "cost_efficiency", "min:energy")
RECORD_ENV = "CONFIGSPEC_RECORD_GOLDEN"
"""Set to 1, the golden test writes what it computes instead of comparing."""


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


# --------------------------------------------------------------------------- normalisation

TIMING_KEYS = frozenset({"time_s", "build_s"})
"""Wall-clock seconds of this run (solver, model build, whole front)."""
GAP_ZERO = 1e-9
TIMESTAMP_KEYS = frozenset({"generated_at"})
_TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)"
_TEXT_RULES = (
    # JSON and YAML `generated_at`, env files' CONFIGSPEC_..._GENERATED_AT, the report's footer
    (re.compile(rf"(\"generated_at\": \"|generated_at: '?|_GENERATED_AT=|generated ){_TIMESTAMP}"),
     r"\g<1><generated_at>"),
    # the report's solver line: "..., proven optimal (...): yes, 0.628 s, 53 candidates"
    (re.compile(r"(proven optimal[^<]*?: [^,<]*, )[0-9][0-9.,e+-]*( s, )"),
     r"\g<1><time_s>\g<2>"),
)
_HTML_GAP = re.compile(r"(gap )([0-9][0-9.e+-]*)(,)")


def untimed(value: object) -> object:
    """`value` (parsed JSON) with wall-clock seconds 0, generation times and tiny gaps set."""
    if isinstance(value, dict):
        return {k: _field(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def _field(key: str, value: object) -> object:
    if key in TIMING_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return 0
    if key in TIMESTAMP_KEYS and isinstance(value, str):
        return "<generated_at>"
    if "gap" in key and isinstance(value, float) and abs(value) < GAP_ZERO:
        return 0.0
    return untimed(value)


def _small_gap(match: re.Match[str]) -> str:
    try:
        small = abs(float(match.group(2))) < GAP_ZERO
    except ValueError:
        small = False
    return match.group(1) + ("0" if small else match.group(2)) + match.group(3)


def normalise_text(text: str, paths: Mapping[str, str] | None = None) -> str:
    """Text with generation times, the report's solver time, tiny HTML gaps and the given
    absolute paths (longest first; the repository always) replaced by placeholders."""
    for rule, repl in _TEXT_RULES:
        text = rule.sub(repl, text)
    text = _HTML_GAP.sub(_small_gap, text)
    named = {str(ROOT): "<repo>", **(paths or {})}
    for path in sorted(named, key=len, reverse=True):
        text = text.replace(path, named[path])
    return text


def json_lines(text: str, paths: Mapping[str, str] | None = None
               ) -> list[str] | dict[str, Any]:
    """A JSON answer normalised and printed as `--json` prints it (indent 2, its key order),
    as lines; text that is not JSON as normalised lines under `not_json`."""
    try:
        data = json.loads(text)
    except ValueError:
        return {"not_json": normalise_text(text, paths).splitlines()}
    return normalise_text(json.dumps(untimed(data), indent=2), paths).splitlines()


def _normalised(stdout: bytes) -> bytes:
    """The answer with its timings zeroed, in the key order it was printed."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return stdout
    return json.dumps(untimed(data), indent=2).encode()


# --------------------------------------------------------------------------- record / compare


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


# --------------------------------------------------------------------------- golden outputs

KINDS = ("solve", "report", "export", "http")
EXPORT_FORMATS = ("json", "env", "yaml", "draft-client", "llama-server", "vllm", "compose",
                  "kubernetes")
REPORT_POINTS = 4
"""Front points in the golden report: the Pareto walk runs, at a fraction of 20's cost."""
HTTP_TIME_LIMIT = 60
"""The service's maximum: its 10 s default is near a batched-verifier example's solve on a
busy machine, where the answer would depend on the machine's speed."""
_CLEAN_ENV = ("CONFIGSPEC_TIME_LIMIT", "CONFIGSPEC_GAP", "CONFIGSPEC_VERBOSE",
              "CONFIGSPEC_QUIET", "CONFIGSPEC_PROFILES_ROOT", "CONFIGSPEC_MAX_FILE_BYTES",
              "SOURCE_DATE_EPOCH", "COLUMNS")


def examples() -> list[str]:
    """Every example spec (repository-relative): examples/**/*.yaml and specs/*.yaml."""
    found = [*ROOT.glob("examples/**/*.yaml"), *ROOT.glob("specs/*.yaml")]
    return sorted(p.relative_to(ROOT).as_posix() for p in found)


def golden_name(example: str, kind: str) -> str:
    """`examples/paper/llama70b.yaml`, `solve` -> `examples__paper__llama70b.solve.json`."""
    return f"{example.removesuffix('.yaml').replace('/', '__')}.{kind}.json"


def dump(doc: Mapping[str, Any]) -> str:
    """A golden file's text: sorted keys, indent 1, ASCII, a final newline."""
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


@dataclass
class Ran:
    """One command's outcome, normalised."""

    command: str
    exit_code: int
    stdout: str
    stderr: str


class Producer:
    """Runs the commands in this process from the repository root; `http` is opened lazily
    (its solver processes take a few seconds to start) and closed by `close`."""

    def __init__(self) -> None:
        from typer.testing import CliRunner

        from configspec_opt.cli import app

        self._app = app
        self._runner = CliRunner()
        self._http: Any = None
        self._http_cm: Any = None
        self._tmp = Path(tempfile.mkdtemp(prefix="configspec-golden-"))

    def close(self) -> None:
        """Stop the HTTP service's solver processes and remove the temporary files."""
        if self._http_cm is not None:
            self._http_cm.__exit__(None, None, None)
            self._http_cm = self._http = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def cli(self, *args: str) -> Ran:
        """`configspec ARGS` in this process, the environment's CONFIGSPEC_* unset."""
        with _in_root():
            r = self._runner.invoke(self._app, list(args), catch_exceptions=False,
                                    env=dict.fromkeys(_CLEAN_ENV))
        return Ran("configspec " + " ".join(args), r.exit_code, r.stdout, r.stderr)

    def produce(self, example: str, kind: str) -> dict[str, Any]:
        """The normalised golden document of one example and output kind."""
        kinds = {"solve": self.solve, "report": self.report, "export": self.export,
                 "http": self.http}
        return kinds[kind](example)

    def solve(self, example: str) -> dict[str, Any]:
        """`configspec solve --json EXAMPLE`."""
        r = self.cli("solve", "--json", example)
        return _doc(r, json_lines(r.stdout))

    def report(self, example: str) -> dict[str, Any]:
        """`configspec report -o - --points REPORT_POINTS EXAMPLE`: the HTML, as lines."""
        r = self.cli("report", "-o", "-", "--points", str(REPORT_POINTS), example)
        return _doc(r, normalise_text(r.stdout).splitlines())

    def export(self, example: str) -> dict[str, Any]:
        """`export --format json` of the spec, and of its lock (if any) in every format."""
        runs = {"spec": self._export_one(example, "json", "from-spec")}
        lock = example + ".lock"
        if (ROOT / lock).is_file():
            for fmt in EXPORT_FORMATS:
                runs[f"lock {fmt}"] = self._export_one(lock, fmt, f"from-lock-{fmt}")
        return runs

    def _export_one(self, source: str, fmt: str, slot: str) -> dict[str, Any]:
        out = self._tmp / slot
        shutil.rmtree(out, ignore_errors=True)
        r = self.cli("export", "-o", str(out), "--format", fmt, "--json", source)
        paths = {str(out): "<out>"}
        files = {}
        executable = []
        for p in sorted(out.iterdir()) if out.is_dir() else []:
            files[p.name] = normalise_text(p.read_text(encoding="utf-8"), paths).splitlines()
            if os.access(p, os.X_OK):
                executable.append(p.name)
        doc = _doc(Ran(r.command.replace(str(out), "<out>"), r.exit_code, r.stdout, r.stderr),
                   json_lines(r.stdout, paths) if r.stdout else [])
        doc["files"] = files
        doc["executable"] = executable
        return doc

    def http(self, example: str) -> dict[str, Any]:
        """`POST /v1/solve` of the example's text."""
        client = self._client()
        text = (ROOT / example).read_text(encoding="utf-8")
        url = f"/v1/solve?time_limit={HTTP_TIME_LIMIT}"
        r = client.post(url, content=text.encode(), headers={"Content-Type": "application/yaml"})
        paths = {str(self._tmp): "<tmp>"}
        return {"request": f"POST {url} ({example}, application/yaml)",
                "status_code": r.status_code,
                "content_type": r.headers.get("content-type"),
                "body": json_lines(r.text, paths)}

    def _client(self) -> Any:
        if self._http is None:
            from fastapi.testclient import TestClient

            from configspec_opt.api import create_app
            from configspec_opt.api.settings import Settings

            settings = Settings(db_url=f"sqlite:///{self._tmp / 'golden.sqlite3'}", workers=1,
                                backlog=2)
            self._http_cm = TestClient(create_app(settings))
            self._http = self._http_cm.__enter__()
        return self._http


def _doc(r: Ran, stdout: Any) -> dict[str, Any]:
    return {"command": r.command, "exit_code": r.exit_code, "stdout": stdout,
            "stderr": normalise_text(r.stderr).splitlines()}


@contextmanager
def _in_root() -> Iterator[None]:
    before = os.getcwd()
    os.chdir(ROOT)
    try:
        yield
    finally:
        os.chdir(before)


@contextmanager
def producer() -> Iterator[Producer]:
    """A `Producer`, closed on exit."""
    p = Producer()
    try:
        yield p
    finally:
        p.close()


def golden_cases() -> list[tuple[str, str]]:
    """(example, kind) for every golden file there should be."""
    return [(e, k) for e in examples() for k in KINDS]


def orphans(directory: Path = GOLDEN_DIR) -> list[str]:
    """Golden files that no example and kind produces any more."""
    wanted = {golden_name(e, k) for e, k in golden_cases()}
    return sorted(p.name for p in directory.glob("*.json") if p.name not in wanted)


def difference(expected: str, actual: str, name: str) -> str:
    """A unified diff of two golden texts, each changed number with its relative change."""
    diff = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(),
                                     f"golden/{name}", "now", lineterm="", n=2))
    notes = _number_changes(diff)
    return "\n".join(diff[:200] + (["... (diff cut at 200 lines)"] if len(diff) > 200 else [])
                     + notes)


_NUMBER = re.compile(r"-?\d+\.\d+(?:e[+-]?\d+)?|-?\d+e[+-]?\d+")


def _number_changes(diff: Sequence[str]) -> list[str]:
    """For line pairs that differ only in numbers, the largest relative change: a last-digit
    change (about 1e-16) is float round-off of a reordered sum, not a different answer."""
    minus = [d[1:] for d in diff if d.startswith("-") and not d.startswith("---")]
    plus = [d[1:] for d in diff if d.startswith("+") and not d.startswith("+++")]
    worst = 0.0
    for a, b in zip(minus, plus):
        if _NUMBER.sub("#", a) != _NUMBER.sub("#", b):
            return []
        for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b)):
            fx, fy = float(x), float(y)
            if fx != fy:
                worst = max(worst, abs(fx - fy) / max(abs(fx), abs(fy)))
    if not minus or len(minus) != len(plus) or not worst or math.isnan(worst):
        return []
    return [f"(only numbers changed; largest relative change {worst:.3g})"]


# Numbers with a decimal point or exponent that differ by at most this (relative) are the
# same answer: float round-off differs between CPUs (numpy's exp and log take other code
# paths with AVX-512) and between orders of summation; integers are compared exactly.
ROUND_OFF = 1e-9


def only_round_off(expected: str, actual: str, rel: float = ROUND_OFF) -> bool:
    """Whether the two texts are the same line for line but for float round-off."""
    a, b = expected.splitlines(), actual.splitlines()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        if _NUMBER.sub("#", x) != _NUMBER.sub("#", y):
            return False
        for u, v in zip(_NUMBER.findall(x), _NUMBER.findall(y)):
            fu, fv = float(u), float(v)
            if fu != fv and not abs(fu - fv) <= rel * max(abs(fu), abs(fv)):
                return False
    return True


def check(p: Producer, example: str, kind: str, directory: Path = GOLDEN_DIR,
          record: bool = False) -> str | None:
    """Compare one golden file with what this tree answers (or write it, `record`);
    None when equal, else the failure message."""
    name = golden_name(example, kind)
    path = directory / name
    actual = dump(p.produce(example, kind))
    if record:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return None
    if not path.is_file():
        return (f"no golden file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
                f" for {example} ({kind}): record it with `python "
                "tools/compare_solve_outputs.py record-golden`")
    expected = path.read_text(encoding="utf-8")
    if expected == actual or only_round_off(expected, actual):
        return None
    return (f"{example}: `{kind}` answers differently from {name}\n"
            + difference(expected, actual, name)
            + f"\nIf the change is meant: python tools/compare_solve_outputs.py record-golden "
            f"--only {name} (or {RECORD_ENV}=1 pytest tests/golden), and say why in the commit.")


def run_golden(record: bool, only: Sequence[str] = (), directory: Path = GOLDEN_DIR) -> int:
    """record-golden / compare-golden: exit 1 when any golden file differs."""
    cases = [(e, k) for e, k in golden_cases() if not only or golden_name(e, k) in only]
    failed = 0
    with producer() as p:
        for example, kind in cases:
            message = check(p, example, kind, directory, record)
            if message:
                failed += 1
                print(message, end="\n\n")
    if record:
        for name in orphans(directory) if not only else []:
            (directory / name).unlink()
            print(f"removed {name} (no example produces it)")
        print(f"recorded {len(cases)} golden files in {directory}")
        return 0
    print(f"{len(cases) - failed} of {len(cases)} golden files identical")
    return 1 if failed else 0


def main() -> int:
    """record DIR / compare DIR (every spec, by process), record-golden / compare-golden."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["record", "compare", "record-golden", "compare-golden"])
    ap.add_argument("directory", type=Path, nargs="?",
                    help="record/compare: the directory of answers; the golden actions: "
                    "default tests/golden")
    ap.add_argument("--only", action="append", default=[],
                    help="golden actions: only this golden file name (repeatable)")
    a = ap.parse_args()
    if a.action in ("record-golden", "compare-golden"):
        return run_golden(a.action == "record-golden", a.only, a.directory or GOLDEN_DIR)
    if a.directory is None:
        ap.error(f"{a.action} needs a DIRECTORY")
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
