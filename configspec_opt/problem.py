"""The optimisation problem as plain data: pools, candidates, linear rows.

Everything a solver needs, and nothing that depends on one: the Pyomo
formulation, the direct-HiGHS benchmark, brute force and the explanations
all read this.  Fleet constraints are `Row`s (sum over devices of a
per-candidate coefficient, compared with a bound); ratio constraints are
linearised here once (N/D <= v  <=>  N - v*D <= 0 for D > 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from configspec_opt.candidates import Candidate, PoolCandidates, enumerate_candidates
from configspec_opt.constraint_families import (
    Family,
    RowFamily,
    VariantLimit,
    families_for,
    row_size,
    slo_violations,
)
from configspec_opt.robust import corner_candidates, is_robust, worst_row
from configspec_opt.rows import METRICS, MetricForm, Row, Sense, ratio_row
from configspec_opt.spec import Objective, Spec
from configspec_opt.tails import has_tail_slo
from configspec_opt.tails import warm as warm_tails
from configspec_opt.verifiers import Mode, VerifierPlan, expand

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["METRICS", "MetricForm", "Pool", "Problem", "Row", "Sense", "build_problem",
           "fleet_rows", "level_rows", "objective_directions", "ratio_row"]


@dataclass(frozen=True)
class Pool:
    """A pool of identical devices: the unit the assignment splits over candidates."""

    index: int
    name: str
    count: int


@dataclass
class Problem:
    """One solve's input for any backend.

    Candidates by pool, fleet rows and the families they come from, plus what
    was filtered (structural) for diagnoses and explanations.
    """

    spec: Spec
    pools: list[Pool]
    candidates: list[Candidate]  # after SLO filtering (and pruning, if asked)
    by_pool: list[list[int]]
    rows: list[Row]
    families: list[Family]
    structural: list[PoolCandidates]  # before SLOs: for diagnosis and explanations
    pruned: int = 0
    notes: list[str] = field(default_factory=list)
    verifiers: list[VerifierPlan] = field(default_factory=list)  # batched, load-dependent

    @property
    def variants(self) -> list[tuple[str, str]]:
        """Every (draft, quant) some candidate uses, sorted (the variant binaries' order)."""
        return sorted({c.variant for c in self.candidates})

    @property
    def max_variants(self) -> int | None:
        """The variant limit, which the solvers model with binaries (None: no limit)."""
        return next((f.limit for f in self.families if isinstance(f, VariantLimit)), None)

    def row_size(self, row: Row) -> float:
        """The size of a row's numbers (`constraint_families.row_size`) over the candidates."""
        return row_size(row, self.candidates)

    def empty_pools(self) -> list[int]:
        """Pools whose every candidate was filtered out (by SLOs or pruning)."""
        return [p.index for p in self.pools if not self.by_pool[p.index]]


def level_rows(plans: Sequence[VerifierPlan]) -> list[Row]:
    """Per verifier and load level: requests in flight at that level <= beta * replicas.

    Then one row per verifier that sums them, each level's load over its beta, against
    the replicas once.  Only one level holds devices in an answer, so the sum is that
    level's own row again; but the LP relaxation, which spreads a fleet over several
    levels, could give each level all the replicas (at 48 pools its bound was 24 % above
    the optimum), and with the sum it shares them out: the replicas a level's load needs
    count against the others'.
    """
    rows: list[Row] = []
    for plan in plans:
        for level, beta in enumerate(plan.levels, start=1):
            rows.append(Row(
                f"targets[{plan.target}].verifier.load_level[{level}]",
                f"in-flight requests at {plan.target}, load level {beta:g}",
                _in_flight_at(plan.target, level), "<=", 0.0, unit="requests",
                replica_coef={plan.target: -beta}, internal=True))
        rows.append(Row(
            f"targets[{plan.target}].verifier.load_levels",
            f"replicas the in-flight requests at {plan.target} need at their load level",
            _replicas_needed(plan), "<=", 0.0, unit="replicas",
            replica_coef={plan.target: -1.0}, internal=True))
    return rows


def _in_flight_at(target: str, level: int) -> Callable[[Candidate], float]:
    return lambda c: c.in_flight if c.target == target and c.level == level else 0.0


def _replicas_needed(plan: VerifierPlan) -> Callable[[Candidate], float]:
    betas = list(plan.levels)
    return lambda c: (c.in_flight / betas[c.level - 1]
                      if c.target == plan.target and c.level > 0 else 0.0)


def fleet_rows(families: Sequence[Family], plans: Sequence[VerifierPlan] = ()) -> list[Row]:
    """The fleet constraints' rows in family order, then the verifiers' load levels."""
    return [r for f in families for r in f.rows()] + level_rows(plans)


def objective_directions(objective: Objective) -> list[tuple[Callable[[Candidate], float], int]]:
    """Per-candidate coefficients the objective reads, with +1 where larger is better."""
    out: list[tuple[Callable[[Candidate], float], int]] = []
    for term in objective.terms():
        form = METRICS[term.metric]
        sign = 1 if term.sense == "maximize" else -1
        out.append((form.num, sign))
        if form.den is not None:
            out.append((form.den, -sign))
    return out


def build_problem(
    spec: Spec,
    *,
    only: set[str] | None = None,
    objective: Objective | None = None,
    prune: bool = True,
    apply_slo: bool = True,
    plans: Sequence[VerifierPlan] = (),
    mode: Mode = "conservative",
    structural: Sequence[PoolCandidates] | None = None,
) -> Problem:
    """Pools, SLO-feasible candidates and fleet rows; dominated candidates removed.

    Within one pool and one (draft, quant), candidate a dominates b when a is
    at least as good in every coefficient that the objective and the rows
    read.  Swapping b for a in any assignment keeps it feasible and does not
    worsen any objective (sums, min, and ratios N/D with N up and D down), so
    removing b never changes the optimal value.  Exact ties keep the first
    candidate in (target, draft, quant, K) order.

    With `plans` (batched verifiers), candidates on those targets are copied
    per load level (`configspec_opt.verifiers.expand`, in `mode`), and
    dominance is only judged within one level.  `structural`: the candidates
    `enumerate_candidates(spec, only)` gives, when the caller has them already (the
    load search builds one problem per box of loads from the same ones).
    """
    objective = objective or spec.objective
    structural = list(structural) if structural is not None \
        else enumerate_candidates(spec, only)
    pools = [Pool(pc.index, pc.device.name, pc.device.count) for pc in structural]
    families = families_for(spec, plans)
    corners = corner_candidates(spec, {pc.device.name for pc in structural}) \
        if is_robust(spec) else {}
    if corners:  # robust: each row reads a candidate's worst corner of the box
        for f in families:
            if isinstance(f, RowFamily):
                f.own_rows = [worst_row(r, corners) for r in f.own_rows]
    rows = fleet_rows(families, plans)
    dirs = [(r.coef, 1 if r.sense == ">=" else -1) for r in rows]
    dirs += objective_directions(objective)

    feasible_by_pool: list[list[Candidate]] = []
    owns = [expand(pc.candidates, plans, mode) if plans else pc.candidates
            for pc in structural]
    slos = [spec.slo_for(pc.device) for pc in structural]
    if has_tail_slo(spec.constraints.fleet) or any(map(has_tail_slo, slos)):
        warm_tails(c for own in owns for c in own)  # one vectorised pass, not one per call
        warm_tails(c for alts in corners.values() for c in alts)
    for own, slo in zip(owns, slos, strict=True):
        if apply_slo and slo.model_dump(exclude_none=True):
            feasible_by_pool.append([
                c for c in own if not any(slo_violations(x, slo, amounts=False) for x in
                                          (c, *corners.get((c.device, c.config), ())))])
        else:
            feasible_by_pool.append(list(own))
    keep = _undominated(feasible_by_pool, dirs) if prune else None
    candidates: list[Candidate] = []
    by_pool: list[list[int]] = []
    flat = 0
    for feasible in feasible_by_pool:
        start = len(candidates)
        if keep is None:
            candidates.extend(feasible)
        else:
            candidates.extend(c for i, c in enumerate(feasible, start=flat) if keep[i])
        flat += len(feasible)
        by_pool.append(list(range(start, len(candidates))))
    pruned = flat - len(candidates)
    return Problem(spec, pools, candidates, by_pool, rows, families, structural, pruned,
                   verifiers=list(plans))


def _undominated(
    by_pool: Sequence[Sequence[Candidate]],
    dirs: list[tuple[Callable[[Candidate], float], int]],
) -> NDArray[np.bool_]:
    """Which candidates (all pools' in order, flattened) no other of their group dominates.

    A group is one pool, (draft, quant) and load level.  A pool where a coefficient
    cannot be read (no power data: `ValueError`) is kept whole, as its rows will
    say.  Pairs are compared with numpy, a block of groups at a time: a fleet of
    10,000 pools has a million candidates and nine million pairs.  numpy is imported
    here: pruning is for the solvers, which need it; the rest of this module does not.
    """
    import numpy as np
    variant_id: dict[tuple[str, str], int] = {}
    vecs: list[list[float]] = []
    keys: list[int] = []
    whole: list[bool] = []
    for p, cands in enumerate(by_pool):
        try:
            rows = [[sign * f(c) for f, sign in dirs] for c in cands]
        except ValueError:
            rows = [[0.0] * len(dirs) for _ in cands]
            whole.extend([True] * len(cands))
        else:
            whole.extend([False] * len(cands))
        vecs.extend(rows)
        for c in cands:
            v = variant_id.setdefault(c.variant, len(variant_id))
            keys.append((p * 4096 + v) * 1024 + c.level + 1)
    n = len(keys)
    keep = np.ones(n, dtype=bool)
    if n < 2 or not dirs:
        return keep
    vec = np.asarray(vecs, dtype=np.float64)
    key = np.asarray(keys, dtype=np.int64)
    order = np.argsort(key, kind="stable")
    sk = key[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    sizes = np.diff(np.r_[starts, n])
    pairs = sizes * sizes
    ends = np.cumsum(pairs)
    g0 = 0
    while g0 < len(starts):  # blocks of groups with about 2 million pairs each
        g1 = max(g0 + 1, int(np.searchsorted(ends, (ends[g0 - 1] if g0 else 0) + 2_000_000)))
        g = np.arange(g0, g1)
        rep = np.repeat(sizes[g], sizes[g])  # each member meets every member of its group
        a = np.repeat(np.arange(starts[g0], starts[g1 - 1] + sizes[g1 - 1]), rep)
        first = np.repeat(np.repeat(starts[g], sizes[g]), rep)
        offset = np.arange(len(a)) - np.repeat(np.cumsum(rep) - rep, rep)
        b = first + offset
        ia, ib = order[a], order[b]
        va, vb = vec[ia], vec[ib]
        dom = (ia != ib) & (vb >= va).all(axis=1) & ((vb != va).any(axis=1) | (ib < ia))
        keep[ia[dom]] = False
        g0 = g1
    keep[np.asarray(whole, dtype=bool)] = True
    return keep
