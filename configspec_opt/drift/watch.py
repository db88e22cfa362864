"""The lock a drift check is against: read with its spec, as `configspec check` reads them.

A lock names its spec (`fleet.yaml.lock` belongs to `fleet.yaml`, beside it);
both are read from disk on every check, so a lock rewritten by `configspec
lock` is watched from the next check on.  A spec that changed since its lock
was written is reported (`stale`): the lock's numbers are still what the
fleet was told to run, so they stay the expectation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configspec_opt.drift.compare import DriftReport, Observed, Tolerances, check_lock
from configspec_opt.drift.observations import ConfigKey
from configspec_opt.loader import LoadedSpec, load_spec
from configspec_opt.vcs.lock import changed_sources, read_lock, spec_path_of


@dataclass(frozen=True)
class Watched:
    """A lock, its spec, and which of the spec's files changed since the lock was written."""

    lock_path: Path
    lock: dict[str, Any]
    loaded: LoadedSpec
    stale: list[str]

    @property
    def spec_file(self) -> str:
        """The spec's file name, as the lock names it."""
        return spec_path_of(self.lock_path).name

    def describe(self) -> dict[str, Any]:
        """Which lock, which spec, and whether they still agree, for reports."""
        return {"file": str(self.lock_path), "spec": self.spec_file,
                "spec_name": self.loaded.spec.name, "spec_sha256": self.lock["spec"]["sha256"],
                "status": self.lock.get("status"), "stale": self.stale}


def load_watched(lock_path: str | Path) -> Watched:
    """Read a lock and its spec; LockError or SpecError (located) when either is refused."""
    path = Path(lock_path)
    spec_path = spec_path_of(path)
    loaded = load_spec(spec_path)
    lock = read_lock(path, spec=loaded.spec)
    return Watched(path, lock, loaded, changed_sources(lock, loaded, spec_path.name))


def check_watched(watched: Watched, observed: dict[ConfigKey, Observed],
                  tol: Tolerances | None = None) -> DriftReport:
    """The drift report of `observed` against the watched lock."""
    return check_lock(watched.lock, watched.loaded.spec, observed, tol)
