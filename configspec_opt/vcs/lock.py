"""Lock files: the decision that follows from a spec, committed beside it.

`fleet.yaml` is locked in `fleet.yaml.lock` (the spec's file name plus
`.lock`, so `fleet.yaml` and `fleet.json` never share a lock).  A lock is the
`configspec solve --json` result of the spec's own objective, without what
varies between runs (timings, solver stages, the numerical gap), plus where
it came from: the tool version and a SHA-256 of every source file.  Floats
are rounded to `yamldump.FLOAT_DIGITS` significant digits, so the same spec
gives the same bytes on every run (the solver's tie-break makes equal optima
resolve the same way).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from configspec_opt.errors import SpecError, SpecIssue
from configspec_opt.loader import LoadedSpec, Source, parse_data
from configspec_opt.spec import Spec
from configspec_opt.spec_files import FileRefused, read_text_file, write_through
from configspec_opt.vcs.lock_schema import LOCK_VERSION, lock_issues
from configspec_opt.vcs.yamldump import dump_yaml

LOCK_SUFFIX = ".lock"
SOLVED = ("optimal", "feasible")

# Keys of `solution_dict` that a lock keeps, in this order.  A whitelist, so
# that a timing added to `solve --json` later can never leak into a lock.
_RESULT_KEYS = ("status", "objective", "assignments", "split_pools", "fleet", "message")
_SOLVER_KEYS = ("name", "proven_optimal", "candidates", "pruned_dominated")
TIE_BREAK = "equal optima resolve to the first (target, draft, quant, K) in name order"


@dataclass
class LockError(SpecError):
    """A lock that cannot be read, is malformed, or does not fit its spec: exit 2, located
    like a spec's problems (`lock_schema`)."""

    @classmethod
    def of(cls, message: str, file: str) -> LockError:
        """One problem of the file as a whole (no line to point at)."""
        return cls([SpecIssue(message, file=file)])

    def __str__(self) -> str:
        n = len(self.issues)
        head = f"invalid lock ({n} problem{'s' if n != 1 else ''})"
        return head + ":\n" + "\n".join("  " + i.format() for i in self.issues)


def tool_version() -> str:
    """The installed version, recorded in each lock ("unknown" from a bare source tree)."""
    try:
        return metadata.version("configspec-opt")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "unknown"


def lock_path(spec_path: str | Path) -> Path:
    """Where a spec's lock lives: beside it, named `<spec file>.lock`."""
    p = Path(spec_path)
    return p.with_name(p.name + LOCK_SUFFIX)


def spec_path_of(lock: str | Path) -> Path:
    """The spec a lock belongs to; LockError when the name does not end in `.lock`."""
    p = Path(lock)
    if not p.name.endswith(LOCK_SUFFIX):
        raise LockError.of(f"a lock file's name ends in {LOCK_SUFFIX}", str(p))
    return p.with_name(p.name[: -len(LOCK_SUFFIX)])


def text_sha256(text: str) -> str:
    """SHA-256 of the text as UTF-8: the hash locks record for each source."""
    return hashlib.sha256(text.encode()).hexdigest()


def source_hashes(loaded: LoadedSpec, spec_file: str) -> list[dict[str, str]]:
    """(file, sha256) per source, named as the spec names them (portable across checkouts)."""
    names = [spec_file, *loaded.spec.profiles_from]
    pairs = zip(names, loaded.sources, strict=True)
    return [{"file": n, "sha256": text_sha256(s.text)} for n, s in pairs]


def lock_data(loaded: LoadedSpec, spec_file: str, *,
              time_limit: float | None = None) -> dict[str, Any]:
    """Solve the spec's own objective and return the lock as plain data.

    `spec_file` is how the lock names its spec (the file name; the lock lives
    beside it).  Not-solved outcomes (infeasible, time limit) are returned too,
    for `diff` and drift re-plans (`time_limit`: solver seconds, as `solve`'s);
    `write_lock` refuses them.
    """
    from configspec_opt.operations import solve_with_report  # lazy: start-up

    result: dict[str, Any] = dict(solve_with_report(loaded, explain=False,
                                                    time_limit=time_limit)[1])
    data: dict[str, Any] = {
        "lock_version": LOCK_VERSION,
        "tool": f"configspec-opt {tool_version()}",
        "spec": {"file": spec_file, "name": loaded.spec.name, "sha256": loaded.sha256,
                 "sources": source_hashes(loaded, spec_file)},
    }
    data.update({k: result[k] for k in _RESULT_KEYS if k in result})
    data["solver"] = {k: result["solver"][k] for k in _SOLVER_KEYS}
    data["solver"]["tie_break"] = TIE_BREAK
    if "warnings" in result:
        data["warnings"] = result["warnings"]
    return data


def render_lock(data: dict[str, Any]) -> str:
    """The lock file's text; deterministic, so an unchanged decision rewrites the same bytes."""
    spec_file = data["spec"]["file"]
    header = (f"Written by `configspec lock {spec_file}`: the decision that follows from "
              f"{spec_file}.\nDo not edit. `configspec check` fails when the spec changes "
              "and this file does not.")
    return dump_yaml(data, header)


@dataclass(frozen=True)
class LockWrite:
    """A lock as `write_lock` left it; `changed` is false when nothing was written."""

    path: Path
    data: dict[str, Any]
    changed: bool


def write_lock(loaded: LoadedSpec, spec_path: Path) -> LockWrite:
    """Solve and write `spec_path`.lock (only if its bytes change); refuse unsolved specs.

    The text is validated as every reader validates it before it is written.
    """
    data = lock_data(loaded, spec_path.name)
    path = lock_path(spec_path)
    if data["status"] not in SOLVED:
        return LockWrite(path, data, changed=False)
    text = render_lock(data)
    parse_lock(text, str(path), spec=loaded.spec)  # what is written reads back, always
    try:
        old: str | None = read_text_file(path)
    except FileRefused:
        old = None
    if old != text:
        write_through(path, text)
    return LockWrite(path, data, changed=old != text)


def parse_lock(text: str, name: str, *, spec: Spec | None = None) -> dict[str, Any]:
    """A lock's data, validated against `lock_schema` (and `spec`, when given).

    The data is returned as the file holds it (plain dicts and lists): the
    schema checks it, it does not rewrite it.  LockError, located, otherwise.
    """
    src = Source(name, text)
    try:
        data = parse_data(src)
    except SpecError as exc:
        raise LockError(exc.issues) from None
    issues = lock_issues(data, src, spec=spec)
    if issues:
        raise LockError(issues)
    assert isinstance(data, dict)
    return data


def read_lock_text(path: Path) -> str:
    """A lock's text, through the one bounded reader; LockError when it cannot be read."""
    try:
        return read_text_file(path)
    except FileRefused as exc:
        raise LockError.of(f"cannot read: {exc}", str(path)) from None


def read_lock(path: Path, *, spec: Spec | None = None) -> dict[str, Any]:
    """Read and validate a lock file; LockError, located, when it is not a lock we read."""
    return parse_lock(read_lock_text(path), str(path), spec=spec)


def changed_sources(lock: dict[str, Any], loaded: LoadedSpec, spec_file: str) -> list[str]:
    """Which files differ from when the lock was written (empty when the hashes agree)."""
    if lock["spec"]["sha256"] == loaded.sha256:
        return []
    then = {s.get("file"): s.get("sha256") for s in lock["spec"].get("sources", [])
            if isinstance(s, dict)}
    now = {s["file"]: s["sha256"] for s in source_hashes(loaded, spec_file)}
    out = [f for f, h in now.items() if then.get(f) != h]
    out += [f"{f} (no longer used)" for f in then if f not in now]
    return out or [spec_file]
