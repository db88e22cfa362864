"""What changed in the decision between two specs, two revisions or two locks.

Both sides become lock-shaped data (a spec is solved for its own objective;
a `.lock` file is read as it is), so a diff compares exactly what `lock`
would commit: the assignment of every pool and the fleet metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from configspec_opt.metric_registry import BY_KEY, POOL_COLUMNS, REGISTRY, TAILS
from configspec_opt.vcs.gitrev import Ref, locate, parse_ref, read_text
from configspec_opt.vcs.lock import LOCK_SUFFIX, lock_data, parse_lock

REL_TOL = 1e-9
"""Numbers closer than this (relative) are equal: locks keep 10 significant digits."""

FLEET_METRICS: dict[str, tuple[str, str]] = {
    **{d.key: (d.label, d.unit) for d in REGISTRY}, "devices": ("devices", ""),
    **{d.key: (d.label, d.unit) for d in TAILS}}
"""Fleet key -> (what a person reads, unit), from `metric_registry`."""
POOL_METRICS = tuple(str(d.candidate_key) for d in POOL_COLUMNS)
CONFIG_KEYS = ("target", "draft", "quant", "k", "count")

Change = Literal["unchanged", "metrics", "configuration", "added", "removed"]


@dataclass(frozen=True)
class Side:
    """One side of a diff: where it came from and its lock-shaped data."""

    ref: Ref
    data: dict[str, Any]
    commit: str | None = None

    @property
    def label(self) -> str:
        """The side as a heading shows it: the ref, with the commit's short hash when from git."""
        return f"{self.ref} ({self.commit[:10]})" if self.commit else str(self.ref)

    def summary(self) -> dict[str, Any]:
        """Where the side came from and what it decided, as `diff --json` reports it."""
        return {"ref": str(self.ref), "commit": self.commit,
                "spec_sha256": self.data.get("spec", {}).get("sha256"),
                "status": self.data.get("status"), "objective": self.data.get("objective")}


def load_side(text: str) -> Side:
    """`path`, `path@REV`, `path.lock` or `path.lock@REV` as lock-shaped data."""
    from configspec_opt.loader import load_spec
    from configspec_opt.vcs.gitrev import load_spec_at

    ref = parse_ref(text)
    commit = locate(ref)[0].commit if ref.rev is not None else None
    if ref.path.name.endswith(LOCK_SUFFIX):
        return Side(ref, parse_lock(read_text(ref), str(ref)), commit)
    loaded = load_spec(ref.path) if ref.rev is None else load_spec_at(ref)
    return Side(ref, lock_data(loaded, ref.path.name), commit)


def close(a: Any, b: Any, rel_tol: float = REL_TOL) -> bool:
    """Whether two values count as equal in a diff: numbers within `rel_tol`, others by `==`.

    Booleans are compared exactly, never as the numbers 0 and 1.
    """
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-12)
    return bool(a == b)


@dataclass(frozen=True)
class PoolChange:
    """What happened to one pool between the two sides, with its rows before and after.

    `change` is the most important difference: added or removed pool, another
    configuration, the same configuration with other numbers, or unchanged.
    """

    device: str
    change: Change
    old: list[dict[str, Any]]
    new: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The pool's change as `diff --json` reports it."""
        return {"device": self.device, "change": self.change, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class MetricDelta:
    """One fleet metric on both sides; None where a side lacks it (e.g. no power measured)."""

    key: str
    old: float | None
    new: float | None

    @property
    def label(self) -> str:
        """What a person reads for the metric, including a per-target verifier load."""
        if self.key.startswith("verifier_load_tok_s["):
            return f"verifier load of {self.key[len('verifier_load_tok_s['):-1]}"
        return FLEET_METRICS.get(self.key, (self.key, ""))[0]

    @property
    def unit(self) -> str:
        """The metric's unit (`tok/s`, `$/h`, ...), empty for a plain count."""
        if self.key.startswith("verifier_load_tok_s["):
            return "tok/s"
        return FLEET_METRICS.get(self.key, ("", ""))[1]

    @property
    def delta(self) -> float | None:
        """new - old in the metric's unit; None when either side lacks it."""
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def relative(self) -> float | None:
        """The change relative to |old|; None when old is missing or zero."""
        d = self.delta
        return None if d is None or not self.old else d / abs(self.old)

    @property
    def changed(self) -> bool:
        """Whether the metric moved beyond its registry's diff tolerance.

        Locks round to 10 significant digits, so an exact comparison would report
        noise as a change.
        """
        d = BY_KEY.get(self.key.split("[", 1)[0])
        return not close(self.old, self.new, REL_TOL if d is None else d.diff_tolerance)

    def to_dict(self) -> dict[str, Any]:
        """The delta as `diff --json` reports it."""
        return {"metric": self.key, "unit": self.unit, "old": self.old, "new": self.new,
                "delta": self.delta, "relative": self.relative, "changed": self.changed}


@dataclass
class DecisionDiff:
    """Everything that differs between two decisions: status, objective, pools, fleet.

    Built by `diff_decisions`; pools come in the new side's order, then the
    pools only the old side has.
    """

    old: Side
    new: Side
    pools: list[PoolChange] = field(default_factory=list)
    fleet: list[MetricDelta] = field(default_factory=list)

    @property
    def status_changed(self) -> bool:
        """Whether the solver status differs (e.g. optimal on one side, infeasible on the other)."""
        return bool(self.old.data.get("status") != self.new.data.get("status"))

    @property
    def objective_changed(self) -> bool:
        """Whether the two sides optimise different things (sense, metric, mode or terms).

        When true, metric deltas compare answers to different questions.
        """
        a, b = self.old.data.get("objective") or {}, self.new.data.get("objective") or {}
        return any(a.get(k) != b.get(k) for k in ("sense", "metric", "mode", "terms"))

    @property
    def assignments_changed(self) -> bool:
        """Whether any pool runs another configuration, or a pool was added or removed.

        The question CI asks; numbers that moved under the same configurations do
        not count.
        """
        return any(p.change in ("configuration", "added", "removed") for p in self.pools)

    @property
    def changed(self) -> bool:
        """Whether anything at all differs: status, assignments, or any pool or fleet number."""
        return (self.status_changed or self.assignments_changed
                or any(p.change == "metrics" for p in self.pools)
                or any(m.changed for m in self.fleet))

    def to_dict(self) -> dict[str, Any]:
        """The whole diff as `diff --json` reports it."""
        return {"old": self.old.summary(), "new": self.new.summary(),
                "changed": self.changed, "assignments_changed": self.assignments_changed,
                "status_changed": self.status_changed,
                "objective_changed": self.objective_changed,
                "pools": [p.to_dict() for p in self.pools],
                "fleet": [m.to_dict() for m in self.fleet]}


def _pool_entries(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for a in data.get("assignments") or []:
        entry = {k: a.get(k) for k in (*CONFIG_KEYS, *POOL_METRICS)}
        out.setdefault(str(a.get("device")), []).append(entry)
    return out


def _configs(entries: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(str(e[k]) for k in CONFIG_KEYS) for e in entries)


def _same_numbers(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    key = lambda e: tuple(str(e[k]) for k in CONFIG_KEYS)  # noqa: E731
    pairs = zip(sorted(a, key=key), sorted(b, key=key), strict=True)
    return all(close(x[m], y[m]) for x, y in pairs for m in POOL_METRICS)


def _flat_fleet(data: dict[str, Any], per_target: bool) -> dict[str, Any]:
    """Fleet metrics as flat numbers; the load per target only when it adds information.

    The batched verifiers' rows (`verifiers`) are no metric: their load is in the
    fleet's figures already.
    """
    fleet = {k: v for k, v in (data.get("fleet") or {}).items()
             if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}
    by_target = (data.get("fleet") or {}).get("verifier_load_by_target") or {}
    if per_target:
        for target, load in by_target.items():
            fleet[f"verifier_load_tok_s[{target}]"] = load
    return fleet


def _targets(data: dict[str, Any]) -> set[str]:
    return set((data.get("fleet") or {}).get("verifier_load_by_target") or {})


def diff_decisions(old: Side, new: Side) -> DecisionDiff:
    """Compare two sides pool by pool and metric by metric.

    A verifier's load is listed per target only when the sides use more than
    one target between them: with one, the fleet total says the same.
    """
    result = DecisionDiff(old, new)
    a, b = _pool_entries(old.data), _pool_entries(new.data)
    for device in [*b, *(d for d in a if d not in b)]:
        before, after = a.get(device, []), b.get(device, [])
        change: Change
        if not before:
            change = "added"
        elif not after:
            change = "removed"
        elif _configs(before) != _configs(after):
            change = "configuration"
        elif not _same_numbers(before, after):
            change = "metrics"
        else:
            change = "unchanged"
        result.pools.append(PoolChange(device, change, before, after))
    per_target = len(_targets(old.data) | _targets(new.data)) > 1
    fa, fb = _flat_fleet(old.data, per_target), _flat_fleet(new.data, per_target)
    keys = [k for k in FLEET_METRICS if k in fa or k in fb]
    keys += [k for k in [*fb, *fa] if k not in FLEET_METRICS and k not in keys]
    result.fleet = [MetricDelta(k, fa.get(k), fb.get(k)) for k in dict.fromkeys(keys)]
    return result


def describe_change(p: PoolChange) -> str:
    """One line for a pool: `rpi5: llama-3.2-1b Q4_K_M K=6 -> K=7`."""
    def cfg(entries: list[dict[str, Any]], targets: bool) -> str:
        return " + ".join(config_text(e, target=targets) for e in entries) or "(none)"

    targets = len({e["target"] for e in [*p.old, *p.new]}) > 1
    before, after = cfg(p.old, targets), cfg(p.new, targets)
    if p.change == "metrics":
        return f"{p.device}: {after} (same configuration, numbers changed)"
    if len(p.old) == 1 and len(p.new) == 1:  # show only what changed after the arrow
        words_before, words_after = before.split(" "), after.split(" ")
        same = 0
        while same < min(len(words_before), len(words_after)) - 1 \
                and words_before[same] == words_after[same]:
            same += 1
        after = " ".join(words_after[same:])
    return f"{p.device}: {before} -> {after}"


def config_text(e: dict[str, Any], *, target: bool = False) -> str:
    """A configuration as text: `draft quant K=k`, with the target and a count when they matter."""
    text = f"{e['draft']} {e['quant']} K={e['k']}"
    if target:
        text = f"{e['target']}: {text}"
    return text + (f" x{e['count']}" if e.get("count", 1) != 1 else "")
