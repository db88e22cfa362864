"""Robust planning over a box of measurement error: the corners a coefficient's worst case
lies on, and rows that read that worst case.

Every per-device figure the rows and SLOs read is monotone in each uncertain number
taken alone (Eq. 1-3: goodput rises with alpha and v_d and falls with rtt and T;
verifier load and token cost fall with R; energy rises with power and falls with v_d
and alpha; drafting power rises with power and v_d's drafting time and falls with rtt
and T; the tails worsen as rounds slow).  rtt and T only ever enter through the
round's fixed part, in the same direction, and power only multiplies, always worst at
its top.  So the worst value of any coefficient over the box is at one of the 2^3
corners of (alpha, v_d, rtt and T together) with power at its top, and a row that
takes, per candidate, the worst of those corners holds wherever in the box each
number falls, independently per profile, device and target.  That is conservative
when several candidates share one number (they cannot all sit at their own worst
corner), never optimistic.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from statistics import NormalDist
from typing import Any

from configspec_opt.candidates import Candidate, enumerate_candidates
from configspec_opt.errors import UsageError
from configspec_opt.rows import Row
from configspec_opt.spec import Spec
from configspec_opt.spec_changes import (
    AlphaEdit,
    Change,
    apply_changes,
    edit_acceptance,
    edited_spec,
)

CornerKey = tuple[str, tuple[str, str, str, int]]
_AXES = (("draft_tok_s",), ("rtt_s", "verify_latency"))  # acceptance: its own side


def is_robust(spec: Spec) -> bool:
    """Whether the spec asks for a plan that holds over a box of error."""
    r = spec.robust
    return r is not None and (bool(r.margins()) or r.level is not None)


def z_scale(level: float) -> float:
    """How much wider a two-sided interval at `level` is than the 95 % one (normal)."""
    return NormalDist().inv_cdf(0.5 + level / 2.0) / NormalDist().inv_cdf(0.975)


def measured_ci(prof: Mapping[str, Any], target: str, k: int) -> tuple[float, float] | None:
    """The 95 % interval of alpha(K) a profiler run kept in the profile's provenance."""
    per_k = (((prof.get("provenance") or {}).get("acceptance") or {}).get(target) or {}) \
        .get("per_k") or {}
    rec = per_k.get(k, per_k.get(str(k))) if isinstance(per_k, Mapping) else None
    ci = rec.get("ci95") if isinstance(rec, Mapping) else None
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in ci):
        return float(ci[0]), float(ci[1])
    return None


def _alpha_side(margin: float, scale: float | None, high: bool) -> AlphaEdit:
    """alpha at one end of its box: the margin's end, or the measured interval's (rescaled)
    where that is wider."""
    def edit(prof: dict[str, Any], target: str, k: int, a: float) -> float:
        lo, hi = a * (1.0 - margin), a * (1.0 + margin)
        ci = measured_ci(prof, target, k) if scale is not None else None
        if ci is not None and scale is not None:
            lo = min(lo, a - scale * max(0.0, a - ci[0]))
            hi = max(hi, a + scale * max(0.0, ci[1] - a))
        return hi if high else lo
    return edit


def measured_intervals(spec: Spec) -> int:
    """How many (profile, target, K) carry a measured interval of alpha."""
    data = spec.model_dump(mode="python")
    return sum(1 for prof in data["profiles"] for target, acc in prof["acceptance"].items()
               for k in (acc if isinstance(acc, dict) and "per_token" not in acc else ())
               if measured_ci(prof, target, int(k)) is not None)


def corner_specs(spec: Spec) -> list[Spec]:
    """The spec at each corner of the box that a worst case can lie on (none if not robust)."""
    if not is_robust(spec) or spec.robust is None:
        return []
    r = spec.robust
    m = r.margins()
    if any(t.verifier is not None for t in spec.targets):
        raise UsageError("robust: not available with batched verifiers yet (targets[]."
                         "verifier); check a plan against drift with `configspec what-if`, "
                         "or solve --load-blind")
    scale = None if r.level is None else z_scale(r.level)
    power = [Change("power_w", "*", 1.0 + m["power_w"])] if "power_w" in m else []
    sides: list[list[list[Change] | AlphaEdit]] = []
    if "acceptance" in m or scale is not None:
        sides.append([_alpha_side(m.get("acceptance", 0.0), scale, high)
                      for high in (False, True)])
    for axis in _AXES:
        moved = [p for p in axis if p in m]
        if moved:
            sides.append([[Change(p, "*", 1.0 - m[p]) for p in moved],
                          [Change(p, "*", 1.0 + m[p]) for p in moved]])

    def corner(combo: Sequence[list[Change] | AlphaEdit]) -> Spec:
        changes = [*power, *(c for part in combo if isinstance(part, list) for c in part)]
        alpha = [part for part in combo if not isinstance(part, list)]

        def edit(data: dict[str, Any]) -> None:
            apply_changes(data, changes)
            for a in alpha:
                edit_acceptance(data, a)
        return edited_spec(spec, edit, "a corner of robust:")

    return [corner(combo) for combo in itertools.product(*sides)] if sides \
        else [corner(())]


def corner_candidates(spec: Spec, only: set[str] | None = None
                      ) -> dict[CornerKey, list[Candidate]]:
    """Per (device, configuration): the candidate at every corner of `corner_specs`."""
    out: dict[CornerKey, list[Candidate]] = {}
    for corner in corner_specs(spec):
        for pc in enumerate_candidates(corner, only):
            for c in pc.candidates:
                out.setdefault((c.device, c.config), []).append(c)
    return out


def worst_row(row: Row, corners: Mapping[CornerKey, Sequence[Candidate]]) -> Row:
    """The row with each candidate's coefficient at its worst corner (max for <=)."""
    coef = row.coef
    pick = max if row.sense == "<=" else min

    def worst(c: Candidate) -> float:
        alts = corners.get((c.device, c.config))
        if not alts:
            return coef(c)
        return pick(coef(c), *(coef(a) for a in alts))

    return replace(row, coef=worst)


__all__ = ["corner_candidates", "corner_specs", "is_robust", "measured_ci",
           "measured_intervals", "worst_row", "z_scale"]
