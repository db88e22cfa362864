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

from configspec_opt.candidates import Candidate, enumerate_candidates
from configspec_opt.errors import UsageError
from configspec_opt.rows import Row
from configspec_opt.spec import Spec
from configspec_opt.spec_changes import Change, changed_spec

CornerKey = tuple[str, tuple[str, str, str, int]]
_AXES = (("acceptance",), ("draft_tok_s",), ("rtt_s", "verify_latency"))


def is_robust(spec: Spec) -> bool:
    """Whether the spec asks for a plan that holds over a box of error."""
    return spec.robust is not None and bool(spec.robust.margins())


def corner_specs(spec: Spec) -> list[Spec]:
    """The spec at each corner of the box that a worst case can lie on (none if not robust)."""
    if spec.robust is None:
        return []
    m = spec.robust.margins()
    if not m:
        return []
    if any(t.verifier is not None for t in spec.targets):
        raise UsageError("robust: not available with batched verifiers yet (targets[]."
                         "verifier); check a plan against drift with `configspec what-if`, "
                         "or solve --load-blind")
    power = [Change("power_w", "*", 1.0 + m["power_w"])] if "power_w" in m else []
    sides: list[list[list[Change]]] = []
    for axis in _AXES:
        moved = [p for p in axis if p in m]
        if not moved:
            continue
        sides.append([[Change(p, "*", 1.0 - m[p]) for p in moved],
                      [Change(p, "*", 1.0 + m[p]) for p in moved]])
    if not sides:
        return [changed_spec(spec, power)]
    return [changed_spec(spec, [*power, *(c for part in combo for c in part)])
            for combo in itertools.product(*sides)]


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


__all__ = ["corner_candidates", "corner_specs", "is_robust", "worst_row"]
