"""`configspec check`: every spec valid, every lock present and up to date.

A directory is searched for specs and locks; inside a git work tree only
the files git tracks or would track count (ignored build output does not).

By default a lock is up to date when the SHA-256 of the spec's content (and
of its `profiles_from` files) equals the one the lock records: no solver
needed, milliseconds per spec, fine for a pre-commit hook on the edge
install.  `resolve=True` also solves the spec again and compares the
decision with the lock (assignments exactly, numbers to 1e-9 relative),
which catches locks edited by hand and decisions that a new solver or
configspec version would make differently.

Every spec is checked as `configspec validate --strict` checks it: a pool
without candidates makes it invalid (no lock could be written for it).  A
YAML spec with the line `# configspec: template` is a template to copy and
profile (e.g. examples/smollm2/spec.yaml): it must validate, but needs no
candidates and no lock, and is reported as skipped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from configspec_opt.errors import ConfigspecError, SpecError
from configspec_opt.spec_files import FileRefused, read_text_file
from configspec_opt.vcs.lock import (
    LOCK_SUFFIX,
    SOLVED,
    LockError,
    changed_sources,
    lock_data,
    lock_path,
    read_lock,
    spec_path_of,
)

if TYPE_CHECKING:
    from configspec_opt.loader import LoadedSpec

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages"})
# A file found in a directory is a spec if it has top-level `targets:` and
# `devices:` keys, or the schema modeline; read as text so that a spec with
# a syntax error is still found (and reported), not skipped.
_YAML_KEYS = (re.compile(r"^targets\s*:", re.M), re.compile(r"^devices\s*:", re.M))
_JSON_KEYS = (re.compile(r'"targets"\s*:'), re.compile(r'"devices"\s*:'))
_MODELINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=\S*configspec", re.M)
TEMPLATE_MARK = "# configspec: template"
_TEMPLATE = re.compile(r"^#\s*configspec:\s*template\s*$", re.M)

Status = Literal["ok", "invalid", "missing_lock", "orphan_lock", "bad_lock", "stale",
                 "unsolved", "differs", "not_found", "skipped"]


@dataclass(frozen=True)
class CheckResult:
    """What `configspec check` found for one spec; `reason` says why when not ok."""

    spec: Path
    status: Status
    reason: str = ""
    lock_tool: str | None = None

    @property
    def ok(self) -> bool:
        """Whether this spec passes the check (skipped templates pass)."""
        return self.status in ("ok", "skipped")

    def line(self) -> str:
        """The one line a person or a log reads."""
        return f"{self.spec}: {self.reason or 'ok'}"

    def to_dict(self) -> dict[str, Any]:
        """The result as `check --json` prints it."""
        return {"spec": str(self.spec), "lock": str(lock_path(self.spec)),
                "status": self.status, "ok": self.ok, "reason": self.reason,
                "lock_tool": self.lock_tool}


def looks_like_spec(path: Path) -> bool:
    """Whether a file found under a directory is to be checked as a spec.

    Judged from the text, not by parsing, so a spec with a syntax error is
    still found and reported invalid rather than silently skipped.
    """
    try:  # a FIFO, a device or a huge file under the directory is not a spec
        text = read_text_file(path, errors="replace")
    except FileRefused:
        return False
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError:  # broken JSON that mentions both keys is a broken spec
            return all(p.search(text) for p in _JSON_KEYS)
        return isinstance(data, dict) and {"targets", "devices"} <= data.keys()
    return bool(_MODELINE.search(text)) or all(p.search(text) for p in _YAML_KEYS)


def _walk(root: Path) -> Iterator[Path]:
    """Files under root: as git sees them (ignored files left out), else every file."""
    from configspec_opt.vcs.gitrev import worktree_files

    files = worktree_files(root)
    if files is not None:
        yield from (f for f in files
                    if not any(part.startswith(".") or part in SKIP_DIRS
                               for part in f.relative_to(root).parts[:-1]))
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(filenames):
            yield Path(dirpath) / name


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Specs to check, in order, and the directories in which none were found.

    A lock stands for its spec (so a pre-commit run on a changed lock checks
    the spec); a directory stands for every spec and every spec's lock in it.
    """
    specs: dict[Path, None] = {}
    empty: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = [f for f in _walk(p) if _is_spec_or_lock(f)]
            for f in found:
                specs[_spec_for(f)] = None
            if not found:
                empty.append(p)
        else:
            specs[_spec_for(p)] = None
    return list(specs), empty


def _is_spec_or_lock(f: Path) -> bool:
    if f.name.endswith(LOCK_SUFFIX):
        return f.name[: -len(LOCK_SUFFIX)].endswith(SPEC_SUFFIXES)
    return f.suffix in SPEC_SUFFIXES and looks_like_spec(f)


def _spec_for(f: Path) -> Path:
    return spec_path_of(f) if f.name.endswith(LOCK_SUFFIX) else f


def is_template(text: str) -> bool:
    """A spec marked `# configspec: template` on a line of its own (YAML comments only)."""
    return bool(_TEMPLATE.search(text))


def template_note(loaded: LoadedSpec, path: str = "SPEC") -> str | None:
    """What `validate`, `solve` and `report` say first of a template spec (None for any
    other): an "infeasible" or a pool without candidates is what a template is until its
    profiles are measured, not a mistake to hunt for.  Names the pools still without a
    profile and the command that measures one."""
    if not loaded.sources or not is_template(loaded.sources[0].text):
        return None
    measured = {p.device for p in loaded.spec.profiles}
    missing = [d.name for d in loaded.spec.devices if d.name not in measured]
    if not missing:
        return (f"this spec is still marked a template (its `{TEMPLATE_MARK}` line) but "
                f"every pool has a profile: delete that line, then `configspec lock {path}`")
    return (f"this spec is a template (its `{TEMPLATE_MARK}` line): fill in the profiles of "
            f"pool{'s' if len(missing) > 1 else ''} {', '.join(missing)} (`configspec "
            f"profile {path} --device {missing[0]}` on that device, or `configspec import`), "
            "delete that line, then solve")


def _first_issue(exc: SpecError, what: str = "invalid spec") -> str:
    if not exc.issues:
        return what
    more = len(exc.issues) - 1
    return f"{what}: " + exc.issues[0].format() + (
        f" (+{more} more problem{'s' if more != 1 else ''})" if more else "")


def check_spec(spec: Path, *, resolve: bool = False) -> CheckResult:
    """Check one spec and its lock; never raises for a problem of the files."""
    from configspec_opt.loader import load_spec
    from configspec_opt.usability import analyse, strict_error

    lock = lock_path(spec)
    if not spec.exists():
        if lock.exists():
            return CheckResult(spec, "orphan_lock",
                               f"orphan lock: {lock} has no spec (delete it or restore the spec)")
        return CheckResult(spec, "not_found", "no such file")
    try:
        loaded = load_spec(spec)
    except SpecError as exc:
        return CheckResult(spec, "invalid", _first_issue(exc))
    if is_template(loaded.sources[0].text):
        return CheckResult(spec, "skipped", f"skipped: a template (`{TEMPLATE_MARK}`), "
                           "needs no lock")
    error = strict_error(analyse(loaded))
    if error is not None:
        return CheckResult(spec, "invalid", _first_issue(error))
    if not lock.exists():
        return CheckResult(spec, "missing_lock", f"missing lock: run `configspec lock {spec}`")
    try:
        data = read_lock(lock)
    except LockError as exc:
        return CheckResult(spec, "bad_lock", f"{_first_issue(exc, 'invalid lock')}; run "
                           f"`configspec lock {spec}`")
    tool = str(data.get("tool")) if data.get("tool") is not None else None
    changed = changed_sources(data, loaded, spec.name)
    if changed:
        return CheckResult(spec, "stale", f"stale lock: {', '.join(changed)} changed since "
                           f"{lock.name} was written; run `configspec lock {spec}`", tool)
    if not resolve:
        return CheckResult(spec, "ok", "", tool)
    try:
        fresh = lock_data(loaded, spec.name)
    except ConfigspecError as exc:
        return CheckResult(spec, "unsolved", f"cannot re-solve: {exc}", tool)
    if fresh["status"] not in SOLVED:
        return CheckResult(spec, "unsolved", f"re-solve is {fresh['status']}: the lock's "
                           "decision no longer follows from the spec", tool)
    difference = decision_difference(data, fresh)
    if difference:
        return CheckResult(spec, "differs", f"re-solve differs from {lock.name}: {difference}; "
                           f"run `configspec lock {spec}`", tool)
    return CheckResult(spec, "ok", "", tool)


DECISION_KEYS = ("status", "objective", "assignments", "split_pools", "fleet")


def decision_difference(locked: dict[str, Any], fresh: dict[str, Any]) -> str:
    """'' when the two decisions agree; else what differs, pool changes first."""
    from configspec_opt.vcs.diff import Side, describe_change, diff_decisions
    from configspec_opt.vcs.gitrev import Ref

    d = diff_decisions(Side(Ref(Path("lock")), locked), Side(Ref(Path("now")), fresh))
    pools = [describe_change(p) for p in d.pools if p.change != "unchanged"]
    if pools:
        return "; ".join(pools)
    for key in DECISION_KEYS:
        path = _first_mismatch(locked.get(key), fresh.get(key), key)
        if path:
            return path
    return ""


def _first_mismatch(a: Any, b: Any, where: str) -> str:
    from configspec_opt.vcs.diff import close

    if isinstance(a, dict) and isinstance(b, dict):
        for k in [*a, *(k for k in b if k not in a)]:
            found = _first_mismatch(a.get(k), b.get(k), f"{where}.{k}")
            if found:
                return found
        return ""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_mismatch(x, y, f"{where}[{i}]")
            if found:
                return found
        return ""
    return "" if close(a, b) else f"{where}: {a!r} in the lock, {b!r} now"
