"""Self-hosted batched verifiers in the optimisation problem: load levels and settling.

The latency a device sees depends on the load the whole fleet puts on the
verifier (`configspec_opt.verifier_load`), which the assignment itself
decides.  The problem therefore splits each verifier's possible load
b in (0, b_max] into levels (beta_{l-1}, beta_l]; the solver picks one
level per target and the number of replicas, and a device's candidate is
copied once per level with the latency taken at one end of it:

- **conservative** copies take T at the level's upper end, and the level's row
  keeps the implied load at most beta_l per replica.  The least fixed point
  then lies at or below beta_l, so every number the solver assumed is a
  lower bound of what the fleet really gets: its answer is truly feasible;
- **optimistic** copies take T at the lower end: any assignment whose true
  load lies in the level is feasible there and looks at least as good, so
  the optimum of that model bounds the true optimum from above.

`settle` evaluates an assignment at its true fixed point, which is what the
reports print.  The grid is refined between the two models until they agree
(see `solvers.solve`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from configspec_opt import verifier_load as vl
from configspec_opt.candidates import Candidate, at_verify_latency
from configspec_opt.spec import Spec, Verifier

Mode = Literal["conservative", "optimistic"]

# Initial levels: T(b, K) rises by at most this much across one level.
LEVEL_STEP = 0.02
# A chosen level is split into this many when refined.
SPLIT = 4
# At most this many initial levels between two measured rows: a table that rises
# steeply (1e-6 s at b = 1, 0.26 s at b = 4) would otherwise ask for millions;
# refinement around the settled load makes up the precision where it matters.
MAX_ROW_SPLIT = 16
# From this many devices' rows on, `settle` computes their latencies on numpy arrays.
SEEN_VECTOR_FROM = 8


@dataclass
class VerifierPlan:
    """One batched verifier target: its table, replica bounds, price and load levels."""

    target: str
    verifier: Verifier
    levels: list[float] = field(default_factory=list)  # beta_1 < ... < beta_L (beta_0 = 0)
    only_level: int | None = None  # copy candidates at this level alone (a search box)

    @property
    def price_usd_per_hour(self) -> float:
        """What one replica costs per hour (USD), whatever its load."""
        return self.verifier.price_usd_per_replica_hour

    @property
    def b_max(self) -> float:
        """The highest load per replica the table covers: the top of the last level.

        Beyond it the latency is unknown (the last measured row, capped by
        max_batch), so no level, and no candidate copy, goes past it.
        """
        return vl.b_limit(self.verifier.latency_s, self.verifier.max_batch)

    def interval(self, level: int) -> tuple[float, float]:
        """The load interval of a level (1-based)."""
        lo = 0.0 if level == 1 else self.levels[level - 2]
        return lo, self.levels[level - 1]

    def latency(self, b: float, k: int) -> float:
        """The table: T(n, K) with n requests in flight together."""
        return vl.latency_at(self.verifier.latency_s, b, k)

    def seen_latency(self, b: float, k: int, busy_s: float) -> float | None:
        """What one device's request takes when b are in flight per replica (arrival view)."""
        return vl.batch_latency(self.verifier.latency_s, self.verifier.max_batch, b, k, busy_s)


def plans_for(spec: Spec) -> list[VerifierPlan]:
    """A plan per target with a batched verifier, with the initial load levels."""
    out: list[VerifierPlan] = []
    for t in spec.targets:
        if t.verifier is None:
            continue
        plan = VerifierPlan(t.name, t.verifier)
        plan.levels = initial_levels(plan)
        out.append(plan)
    return out


def initial_levels(plan: VerifierPlan) -> list[float]:
    """Load levels over which T(b, K) grows by at most `LEVEL_STEP` (relative) for every K.

    T is linear between measured rows, so each row interval is split evenly
    into as many levels as its steepest K needs (at most `MAX_ROW_SPLIT`); the
    first row holds below itself, so (0, first row] is one level.
    """
    table = plan.verifier.latency_s
    top = plan.b_max
    bs = [float(b) for b in vl.rows(table) if b < top] + [top]
    points = {bs[0]}
    for lo, hi in itertools.pairwise(bs):
        rise = max((plan.latency(hi, k) - plan.latency(lo, k)) / plan.latency(lo, k)
                   for k in vl.ks(table))
        n = max(1, min(MAX_ROW_SPLIT, math.ceil(rise / LEVEL_STEP)))
        points.update(lo + (hi - lo) * i / n for i in range(1, n + 1))
    return sorted(p for p in points if 0.0 < p <= top)


def refine(plan: VerifierPlan, loads: Iterable[float], chosen: Iterable[int]) -> bool:
    """Add the settled loads and split the chosen levels; True if anything changed."""
    before = len(plan.levels)
    points = set(plan.levels)
    for b in loads:
        if 0.0 < b < plan.b_max:
            points.add(b)
    for level in chosen:
        if 1 <= level <= len(plan.levels):
            lo, hi = plan.interval(level)
            points.update(lo + (hi - lo) * i / SPLIT for i in range(1, SPLIT))
    plan.levels = sorted(points)
    return len(plan.levels) > before


def expand(candidates: Sequence[Candidate], plans: Sequence[VerifierPlan],
           mode: Mode) -> list[Candidate]:
    """Copy each candidate on a batched verifier once per load level (see module doc).

    A plan with `only_level` set copies its candidates at that level alone (the
    load search's box, `solvers.load_search`).  Latencies are computed for all of
    a level's copies at once (`verifier_load.batch_latency_many`).
    """
    by_target = {p.target: p for p in plans}
    riders: dict[str, list[int]] = {}
    for i, c in enumerate(candidates):
        if c.target in by_target:
            riders.setdefault(c.target, []).append(i)
    copies: list[list[Candidate]] = [[c] if c.target not in by_target else []
                                     for c in candidates]
    for target, idx in riders.items():
        plan = by_target[target]
        ks_ = [candidates[i].k for i in idx]
        busy = [candidates[i].busy_s for i in idx]
        levels = range(1, len(plan.levels) + 1) if plan.only_level is None \
            else [plan.only_level]
        for level in levels:
            lo, hi = plan.interval(level)
            seen = vl.batch_latency_many(plan.verifier.latency_s, plan.verifier.max_batch,
                                         hi if mode == "conservative" else lo, ks_, busy)
            for i, t in zip(idx, seen):
                if t is not None:  # None: its request would join a batch beyond the table
                    copies[i].append(at_verify_latency(candidates[i], t, level))
    return [c for group in copies for c in group]


@dataclass(frozen=True)
class VerifierState:
    """What a batched verifier settles at under an assignment."""

    target: str
    replicas: int
    in_flight_per_replica: float
    # per K, the mean (over the devices drafting that K) latency of a request; each
    # device's own is its assignment row's verify_latency_s (it depends on its round)
    latency_s_by_k: dict[int, float]
    price_usd_per_hour: float

    @property
    def cost_usd_per_hour(self) -> float:
        """The verifier's cost in USD per hour: replicas times the price of one."""
        return self.replicas * self.price_usd_per_hour


def replica_cost_usd_per_hour(states: Iterable[VerifierState]) -> float:
    """Total USD per hour of the batched verifiers' replicas, billed per replica not per token."""
    return sum(s.cost_usd_per_hour for s in states)


def _seen(plan: VerifierPlan, b: float, cands: Sequence[Candidate]) -> list[float]:
    """Each candidate's request latency at load b (many at once on numpy arrays)."""
    if len(cands) > SEEN_VECTOR_FROM:
        seen = vl.batch_latency_many(plan.verifier.latency_s, plan.verifier.max_batch, b,
                                     [c.k for c in cands], [c.busy_s for c in cands])
    else:
        seen = [plan.seen_latency(b, c.k, c.busy_s) for c in cands]
    out = []
    for c, t in zip(cands, seen, strict=True):
        if t is None:  # settle only returns loads whose batches the table covers
            raise ValueError(f"{c.label()}: no latency at load {b:g}")
        out.append(t)
    return out


def settle(assignment: Sequence[tuple[Candidate, int]], plans: Sequence[VerifierPlan],
           replicas: Mapping[str, int]
           ) -> tuple[list[tuple[Candidate, int]], list[VerifierState]] | None:
    """The assignment at the load it really settles at; None if some verifier has none.

    Every device on a batched verifier gets T at the least fixed point of
    its target's load (`verifier_load.least_fixed_point`); others keep theirs.
    """
    planned = {p.target for p in plans}
    settled: list[tuple[Candidate, int]] = [(c, n) for c, n in assignment
                                            if n > 0 and c.target not in planned]
    states: list[VerifierState] = []
    for plan in plans:
        riders = [(c, n) for c, n in assignment if n > 0 and c.target == plan.target]
        r = replicas.get(plan.target, 0)
        b = vl.least_fixed_point(plan.verifier.latency_s, plan.verifier.max_batch,
                                 [vl.Rider(n, c.k, c.busy_s) for c, n in riders], r)
        if b is None:
            return None
        seen = _seen(plan, b, [c for c, _ in riders])
        ridden = [(at_verify_latency(c, t), n) for (c, n), t in zip(riders, seen, strict=True)]
        settled.extend(ridden)
        by_k: dict[int, list[tuple[float, int]]] = {}
        for c, n in ridden:
            by_k.setdefault(c.k, []).append((c.verify_latency_s, n))
        mean_by_k = {k: sum(t * n for t, n in v) / sum(n for _, n in v)
                     for k, v in sorted(by_k.items())}
        states.append(VerifierState(plan.target, r, b, mean_by_k, plan.price_usd_per_hour))
    settled.sort(key=lambda cn: (cn[0].pool, cn[0].config))
    return settled, states
