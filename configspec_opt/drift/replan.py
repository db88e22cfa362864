"""A proposed re-plan: the lock's spec with what drifted replaced by what was observed, solved,
and shown as the `configspec diff` of the lock against that answer.  Nothing is written.

Only quantities whose check says drift are replaced, so noise within the
tolerances never moves the plan:

* acceptance: the pool's alpha(K) table for that target is scaled by observed
  / expected at the K it ran (pooled over the pool's rows: accepted tokens over
  the drafted tokens times their expected alpha), each value capped at 1; a
  `per_token` acceptance gets the per-token rate whose alpha(K) is the one
  observed.  One K cannot say how the rest of the curve moved: the scaled
  table is the proposal's assumption, and `configspec profile` measures it;
* draft speed: v_d becomes the mean reported (over the rows that drifted);
* rtt: the pool's `rtt_s` becomes the mean reported;
* verifier step time: the target's latency (fixed `verify_latency_s` and its
  per-token growth, or a batched verifier's whole table) is scaled by the
  observed / expected step time, pooled over the rows that drifted.

The spec is then solved for its own objective by the solve every command uses
(`vcs.lock.lock_data`), its floats rounded as a lock rounds them, and compared
with the lock by `vcs.diff`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configspec_opt.drift.compare import DriftReport, Observed, PoolDrift, Tolerances
from configspec_opt.drift.observations import ConfigKey
from configspec_opt.drift.watch import Watched, check_watched, load_watched
from configspec_opt.errors import ConfigspecError
from configspec_opt.loader import LoadedSpec, parse_spec
from configspec_opt.spec import PerTokenAcceptance, Profile, Spec, Target
from configspec_opt.vcs.diff import DecisionDiff, Side, diff_decisions
from configspec_opt.vcs.gitrev import Ref
from configspec_opt.vcs.lock import lock_data
from configspec_opt.vcs.yamldump import rounded

DIGITS = 4


def _drifted(rows: list[PoolDrift], metric: str) -> list[PoolDrift]:
    return [p for p in rows if (c := p.check(metric)) is not None and c.drifted]


def _expected(p: PoolDrift, metric: str) -> float:
    c = p.check(metric)
    assert c is not None
    return c.expected


def per_token_for(alpha: float, k: int) -> float:
    """The per-token acceptance whose alpha(K) is `alpha` (alpha(K) grows with it)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if PerTokenAcceptance(per_token=mid).alpha(k) < alpha:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 6)


def _scaled_acceptance(value: Any, ratio: float, observed_alpha: float, k: int) -> Any:
    if isinstance(value, PerTokenAcceptance):
        return PerTokenAcceptance(per_token=per_token_for(min(1.0, observed_alpha), k))
    return {kk: round(min(1.0, a * ratio), DIGITS) for kk, a in value.items()}


def _edit_profiles(spec: Spec, rows: list[PoolDrift], seen: dict[ConfigKey, Observed],
                   changes: list[str]) -> list[Profile]:
    profiles = list(spec.profiles)
    index = {(p.device, p.draft, p.quant): i for i, p in enumerate(profiles)}
    by_profile: dict[tuple[str, str, str], list[PoolDrift]] = {}
    for p in rows:
        by_profile.setdefault((p.device, p.draft, p.quant), []).append(p)
    for key, mine in by_profile.items():
        if key not in index:
            continue
        prof = profiles[index[key]]
        update: dict[str, Any] = {}
        acceptance = dict(prof.acceptance)
        for target in sorted({p.target for p in _drifted(mine, "acceptance")}):
            on = [p for p in _drifted(mine, "acceptance") if p.target == target]
            accepted = sum(seen[p.key].accepted_tokens for p in on)
            expected = sum(seen[p.key].draft_tokens * _expected(p, "acceptance") for p in on)
            best = max(on, key=lambda p: seen[p.key].drafts)
            observed_alpha = seen[best.key].accepted_tokens / seen[best.key].draft_tokens
            profiled = _expected(best, "acceptance")
            if target in acceptance and expected > 0:
                acceptance[target] = _scaled_acceptance(acceptance[target], accepted / expected,
                                                        observed_alpha, best.k)
                changes.append(f"{key[0]}: acceptance of {key[1]} {key[2]} on {target} x "
                               f"{accepted / expected:.3f} (observed alpha({best.k}) "
                               f"{observed_alpha:.4f}, profiled {profiled:.4f})")
        if acceptance != prof.acceptance:
            update["acceptance"] = acceptance
        slow = _drifted(mine, "draft_tok_s")
        if slow:
            n = sum(seen[p.key].counts["draft_tok_s"] for p in slow)
            v = round(sum(seen[p.key].sums["draft_tok_s"] for p in slow) / n, DIGITS)
            update["draft_tok_s"] = v
            changes.append(f"{key[0]}: draft_tok_s of {key[1]} {key[2]} {prof.draft_tok_s:g} "
                           f"-> {v:g}")
        if update:
            profiles[index[key]] = prof.model_copy(update=update)
    return profiles


def _ratio(rows: list[PoolDrift], seen: dict[ConfigKey, Observed], metric: str) -> float:
    obs = sum(seen[p.key].sums[metric] for p in rows)
    exp = sum(seen[p.key].counts[metric] * c.expected for p in rows
              if (c := p.check(metric)) is not None)
    return obs / exp if exp > 0 else 1.0


def _scaled_target(t: Target, r: float) -> Target:
    if t.verifier is not None:
        table = {b: {k: round(v * r, 6) for k, v in row.items()}
                 for b, row in t.verifier.latency_s.items()}
        return t.model_copy(update={"verifier": t.verifier.model_copy(
            update={"latency_s": table})})
    return t.model_copy(update={"verify_latency_s": round(t.verify_latency_s * r, 6),
                                "verify_latency_per_token_s":
                                round(t.verify_latency_per_token_s * r, 9)})


def replanned_spec(spec: Spec, report: DriftReport) -> tuple[Spec, list[str]]:
    """The spec with the drifted quantities replaced (module docstring), and what changed."""
    seen = report.observed
    rows = [p for p in report.pools if p.status == "drifted"]
    changes: list[str] = []
    profiles = _edit_profiles(spec, rows, seen, changes)
    devices = list(spec.devices)
    for i, d in enumerate(devices):
        late = [p for p in _drifted(rows, "rtt_s") if p.device == d.name]
        if late:
            n = sum(seen[p.key].counts["rtt_s"] for p in late)
            rtt = round(sum(seen[p.key].sums["rtt_s"] for p in late) / n, 6)
            devices[i] = d.model_copy(update={"rtt_s": rtt})
            changes.append(f"{d.name}: rtt_s {d.rtt_s:g} -> {rtt:g}")
    targets = list(spec.targets)
    for i, t in enumerate(targets):
        steps = [p for p in _drifted(rows, "verify_step_s") if p.target == t.name]
        if steps:
            r = _ratio(steps, seen, "verify_step_s")
            targets[i] = _scaled_target(t, r)
            changes.append(f"{t.name}: verifier latency x {r:.3f}")
    return spec.model_copy(update={"profiles": profiles, "devices": devices,
                                   "targets": targets, "profiles_from": []}), changes


@dataclass
class Proposal:
    """The re-plan: what was changed in the spec, its answer, and the diff against the lock."""

    changes: list[str]
    diff: DecisionDiff

    def to_dict(self) -> dict[str, Any]:
        """The proposal as the API and `observe --json` give it: the changes and `diff --json`."""
        return {"changes": self.changes, "applied": False, "diff": self.diff.to_dict()}


def propose(watched: Watched, report: DriftReport, *,
            time_limit: float | None = None) -> Proposal | None:
    """Solve the re-planned spec and diff it against the lock; None when nothing drifted."""
    if not report.drifted:
        return None
    spec, changes = replanned_spec(watched.loaded.spec, report)
    name = f"{watched.spec_file} (re-planned from observations)"
    loaded: LoadedSpec = parse_spec(spec.model_dump_json(exclude_none=True), name=name)
    data = rounded(lock_data(loaded, watched.spec_file, time_limit=time_limit))
    old = Side(Ref(watched.lock_path), watched.lock)
    return Proposal(changes, diff_decisions(old, Side(Ref(Path(name)), data)))


def replan_task(lock_path: str, observed: dict[ConfigKey, Observed], tol: Tolerances,
                time_limit: float | None) -> dict[str, Any]:
    """Check and re-plan in a solver process (api routes): plain data back, errors as data."""
    try:
        watched = load_watched(lock_path)
        report = check_watched(watched, observed, tol)
        proposal = propose(watched, report, time_limit=time_limit)
    except ConfigspecError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "lock": watched.describe(), "drift": report.to_dict(),
            "proposal": None if proposal is None else proposal.to_dict()}
