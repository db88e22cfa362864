"""Batched verifiers: a branch and bound over boxes of each verifier's load.

Why: the level model (`configspec_opt.verifiers`) copies every candidate once per
load level and lets the MILP pick one level per verifier with binaries; at 48
pools and two verifiers with 60 levels each that model did not finish in two
minutes, while the same fleet without load solves in about a second.  The load
per replica b_j of each verifier is a low-dimensional parameter (one number per
verifier), so it is searched outside the MILP instead:

- A **box** gives each verifier an interval (lo_j, hi_j] of b.  Its
  *optimistic* model (latency at lo, capacity at hi: one copy per candidate)
  holds every assignment whose true load lies in the box, at a value at least
  its true one (`configspec_opt.verifiers`), so its MILP's dual bound bounds the
  true optimum within the box.  An assignment with no request at a verifier is in
  every box.
- Every MILP answer is **settled** at its true fixed point and kept if it meets
  every constraint there; a box whose optimistic answer does not settle well
  also gets a *conservative* solve (latency and capacity at one load b', whose
  answer truly loads at most b': feasible as assumed), at b' = where the
  optimistic answer settled.
- The box of largest bound is split (at its optimistic answer's settled load
  when that lies inside, else in the middle) along the verifier whose latency
  varies most across it, until the largest bound of any box is within
  `LOAD_REL_GAP` of the best settled answer.

The gap reported is that distance: a bound from a box's model (never the
incumbent) against a plan evaluated at its true load.  Boxes whose optimistic
model is infeasible hold no plan.  `solvers.solve` keeps the leaf bounds'
bookkeeping and the result; this module only searches.

Each box's model is solved by a `BoxSolver`: `MilpBoxes` builds it as a problem
of candidate copies and runs one MILP (any spec; small fleets, whose LP bound is
too far from the integer optimum to close the gap by splitting), and
`solvers.load_boxes.ArrayBoxes` solves it on arrays by decomposition (fleets of
`ARRAY_MIN_POOLS` pools and more): an optimistic box then costs an LP bound, which
earlier boxes' multipliers often settle without any LP ("pruned"), and plans come
from conservative solves, only in narrow boxes once a plan is known.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from configspec_opt import verifier_load as vl
from configspec_opt.candidates import PoolCandidates
from configspec_opt.fleet import Settled
from configspec_opt.problem import Problem, build_problem
from configspec_opt.spec import Objective, Spec
from configspec_opt.verifiers import Mode, VerifierPlan
from solvers import deadline
from solvers.adapter import SolverOptions
from solvers.status import StageInfo, rel_gap

# Batched verifiers: a plan is proven optimal when the bound is within this of it.
LOAD_REL_GAP = 1e-2

# A box narrower than this (relative latency change across it, for every verifier)
# is not split again: its bound and its best plan differ by less than the
# bisection's own precision.
FLAT = 1e-6
# A verifier's load range narrower than this share of its table is not split again.
MIN_SPLIT = 1e-3
# A box's MILP stops within this relative gap: its bound stays a bound, and the
# search closes only to LOAD_REL_GAP.
BOX_REL_GAP = LOAD_REL_GAP / 20
# The conservative solve of a box assumes this much more load than its optimistic
# answer implied (with latencies at the box's bottom, the true load is higher).
CONSERVATIVE_MARGIN = 1.15
# A box's MILP stops after this long (the request's own time limit still applies).
BOX_TIME_S = 10.0
# At most this many boxes are solved (each one MILP, sometimes two).
MAX_BOXES = 400
# Once a plan is known, conservative solves only in boxes no wider than this (hi / lo).
NARROW = 1.5
# A conservative solve within this (relative, every verifier) of an earlier one is skipped.
SAME_POINT = 0.01



@dataclass(order=True)
class Box:
    """An interval of load per replica for every batched verifier."""

    priority: float  # -bound: heapq pops the largest bound first
    seq: int
    lo: tuple[float, ...] = field(compare=False)
    hi: tuple[float, ...] = field(compare=False)
    bound: float = field(compare=False, default=math.inf)  # larger is better; inf: unknown
    solved: bool = field(compare=False, default=False)
    settled_at: tuple[float | None, ...] = field(compare=False, default=())
    assumed: tuple[float | None, ...] = field(compare=False, default=())


@dataclass
class BoxRun:
    """One box's MILP as `solvers.solve` runs it (the Optimizer lives there).

    `bound` is larger-is-better (the objective's sign folded in), None if unknown;
    `assumed`: each verifier's load per replica under the answer's own latencies.
    """

    status: str  # solved | infeasible | stopped
    stages: list[StageInfo]
    build_s: float
    bound: float | None = None
    settled: Settled | None = None
    assumed: tuple[float | None, ...] = ()


@dataclass
class BoxOutcome:
    """What one box's model gave: status, bound (larger is better), settled answer.

    `pruned`: the box's bound (from multipliers alone) is at most the threshold the
    search gave, so no model was solved and there is no answer.
    """

    status: str  # solved | infeasible | stopped | pruned
    bound: float | None = None
    settled: Settled | None = None
    assumed: tuple[float | None, ...] = ()
    stages: list[StageInfo] = field(default_factory=list)
    build_s: float = 0.0


class BoxSolver(Protocol):
    """Solves one box's model; `problem` describes the fleet for the result."""

    problem: Problem | None

    def __call__(self, lo: Sequence[float], hi: Sequence[float], mode: Mode,
                 prune_below: float | None) -> BoxOutcome:
        """The box (lo, hi] per verifier in `mode` (conservative: at hi alone)."""
        ...


@dataclass
class SearchResult:
    """What the search found: the best settled plan, the bound, and how it ended."""

    best: Settled | None
    bound: float | None  # the largest bound of any box that may hold a better plan
    problem: Problem | None  # the first box's problem (pools, rows: for the result)
    stages: list[StageInfo]
    build_s: float
    boxes: int
    complete: bool  # every MILP ran to its end and the search closed its gap
    timed_out: bool
    infeasible: bool  # every box's optimistic model is infeasible: no plan at any load


def box_options(options: SolverOptions) -> SolverOptions:
    """A box's model need not close its gap below what the search certifies, nor run long:
    one stopped early still gives a bound."""
    return dataclasses.replace(
        options, rel_gap=max(options.rel_gap, BOX_REL_GAP),
        time_limit=BOX_TIME_S if options.time_limit is None
        else min(options.time_limit, BOX_TIME_S))


class MilpBoxes:
    """Each box as a problem of candidate copies and one MILP (any spec the model takes)."""

    def __init__(self, spec: Spec, objective: Objective, only: set[str] | None,
                 options: SolverOptions, prune: bool, plans: Sequence[VerifierPlan],
                 structural: Sequence[PoolCandidates],
                 run_box: Callable[[Problem, Objective, SolverOptions], BoxRun]) -> None:
        self.spec = spec
        self.objective = objective
        self.only = only
        self.options = box_options(options)
        self.prune = prune
        self.plans = list(plans)
        self.structural = structural
        self.run_box = run_box
        self.problem: Problem | None = None

    def box_plans(self, lo: Sequence[float], hi: Sequence[float]) -> list[VerifierPlan]:
        """The plans with one level, (lo, hi], per verifier."""
        out = []
        for p, a, b in zip(self.plans, lo, hi, strict=True):
            levels = [a, b] if a > 0.0 else [b]
            out.append(VerifierPlan(p.target, p.verifier, levels, only_level=len(levels)))
        return out

    def __call__(self, lo: Sequence[float], hi: Sequence[float], mode: Mode,
                 prune_below: float | None) -> BoxOutcome:
        """One MILP; `assumed` is the load per replica the answer's own latencies imply."""
        pb = build_problem(self.spec, only=self.only, objective=self.objective,
                           prune=self.prune, plans=self.box_plans(lo, hi), mode=mode,
                           structural=self.structural)
        self.problem = self.problem or pb
        if pb.empty_pools():
            return BoxOutcome("infeasible")
        run = self.run_box(pb, self.objective, self.options)
        if run.status != "solved":
            return BoxOutcome(run.status, stages=run.stages, build_s=run.build_s)
        return BoxOutcome("solved", run.bound, run.settled, run.assumed, run.stages,
                          run.build_s)


class LoadSearch:
    """One search over boxes of load, each box's model solved by `solve`."""

    def __init__(self, plans: Sequence[VerifierPlan], solve: BoxSolver) -> None:
        self.plans = list(plans)
        self.solve = solve
        self.stages: list[StageInfo] = []
        self.build_s = 0.0
        self.complete = True
        self.best: Settled | None = None
        self.seq = itertools.count()
        self.box_bounds: list[float] = []  # every optimistic model's bound (what bounds come from)
        self.assumed: tuple[float | None, ...] = ()
        self.tried: list[tuple[float, ...]] = []  # loads of the conservative solves so far

    @property
    def problem(self) -> Problem | None:
        """The fleet's problem, once a box was built."""
        return self.solve.problem

    # -- one box ----------------------------------------------------------
    def solve_box(self, lo: Sequence[float], hi: Sequence[float], mode: Mode,
                  prune_below: float | None = None) -> tuple[str, float | None, Settled | None]:
        """One box: ("infeasible" | "solved" | "stopped" | "pruned", its bound, its answer).

        `self.assumed` is left at the load per replica the answer's own latencies
        imply for each verifier (what the model assumed; the true load is higher).
        """
        out = self.solve(lo, hi, mode, prune_below)
        self.stages.extend(out.stages)
        self.build_s += out.build_s
        self.assumed = out.assumed or tuple(None for _ in self.plans)
        got = out.settled
        if got is not None and (self.best is None or got.key > self.best.key):
            self.best = got
        return out.status, out.bound, got

    def settled_loads(self, got: Settled | None) -> tuple[float | None, ...]:
        """Each verifier's settled load per replica under an answer (None: not settled)."""
        if got is None:
            return tuple(None for _ in self.plans)
        at = {s.target: s.in_flight_per_replica for s in got.states}
        return tuple(at.get(p.target) for p in self.plans)

    # -- the search -------------------------------------------------------
    def run(self) -> SearchResult:
        """Best bound first until the gap closes, the boxes run out, or time does."""
        root = Box(-math.inf, next(self.seq), tuple(0.0 for _ in self.plans),
                   tuple(p.b_max for p in self.plans))
        root.priority = -math.inf
        heap: list[Box] = [root]
        final: list[float] = []  # bounds of boxes too narrow to split
        solved = 0
        timed_out = infeasible_everywhere = False
        while heap:
            if self.problem is not None and deadline.expired():
                timed_out = True
                break
            top = heap[0]
            if self.best is not None and math.isfinite(top.bound) and \
                    (rel_gap(self.best.key[0], top.bound, "maximize") or 0.0) <= LOAD_REL_GAP:
                break
            if solved >= MAX_BOXES:
                self.complete = False
                break
            box = heapq.heappop(heap)
            if not box.solved:
                solved += 1
                deadline.step(f"solving load box {solved}")
                status, bound, got = self.solve_box(box.lo, box.hi, "optimistic",
                                                    self._prune_below())
                if status == "infeasible":
                    continue
                if status == "pruned" and bound is not None:
                    self.box_bounds.append(bound)
                    final.append(min(box.bound, bound))
                    continue
                if bound is not None:
                    self.box_bounds.append(bound)
                    box.bound = min(box.bound, bound)
                box.solved = True
                box.settled_at = self.settled_loads(got)
                box.assumed = self.assumed
                if (got is None or got.key[0] < box.bound - self._tol(box.bound)) and \
                        (self.best is None or self.narrow(box)):
                    self.conservative(box)
                box.priority = -box.bound
                heapq.heappush(heap, box)
                continue
            j, at = self.split_point(box)
            if j is None:  # flat: its conservative plan at the top is as good as it gets
                self.solve_box([0.0] * len(box.hi), box.hi, "conservative")
                final.append(box.bound)
                continue
            for lo_j, hi_j in ((box.lo[j], at), (at, box.hi[j])):
                lo, hi = list(box.lo), list(box.hi)
                lo[j], hi[j] = lo_j, hi_j
                heapq.heappush(heap, Box(-box.bound, next(self.seq), tuple(lo), tuple(hi),
                                         box.bound))
        if not heap and not final and self.best is None and not timed_out:
            infeasible_everywhere = self.complete
        self.open = sorted(((b.bound, b.lo, b.hi) for b in heap), reverse=True)[:5]
        bounds = [b.bound for b in heap] + final
        bound = max(bounds) if bounds else None
        if bound is not None and not math.isfinite(bound):
            bound = None
        closed = self.best is not None and bound is not None and \
            (rel_gap(self.best.key[0], bound, "maximize") or 0.0) <= LOAD_REL_GAP
        return SearchResult(self.best, bound, self.problem, self.stages, self.build_s, solved,
                            self.complete and closed and not timed_out, timed_out,
                            infeasible_everywhere)

    def conservative(self, box: Box) -> None:
        """A plan that is feasible as solved: latency and capacity at one load per verifier.

        Where the box's optimistic answer settled inside the box, that load; else a
        little above the load its optimistic latencies implied (the true one is
        higher), within the box.
        """
        if deadline.expired():
            return
        at: list[float] = []
        for a, b, s, m in zip(box.lo, box.hi, box.settled_at, box.assumed, strict=True):
            if s is not None and a < s <= b:
                at.append(s)
            elif m is not None and m > 0.0:
                at.append(min(b, max(a, m * CONSERVATIVE_MARGIN)))
            else:
                at.append(b)
        if any(all(abs(a - b) <= SAME_POINT * max(b, 1e-9) for a, b in zip(at, tried))
               for tried in self.tried):
            return  # a plan from (nearly) this load is known already
        self.tried.append(tuple(at))
        self.solve_box([0.0] * len(at), at, "conservative")

    def narrow(self, box: Box) -> bool:
        """Whether every verifier's load in the box spans at most `NARROW` (ratio hi / lo):
        a plan from a wide box is rarely the best, and costs as much as a narrow one's."""
        return all((lo > 0.0 and hi <= NARROW * lo) or hi <= lo
                   for lo, hi in zip(box.lo, box.hi, strict=True))

    def split_point(self, box: Box) -> tuple[int | None, float]:
        """The verifier to split and where: the one whose latency varies most across the box."""
        best_j, best_rise = None, FLAT
        widest, widest_share = None, 0.0
        for j, p in enumerate(self.plans):
            share = (box.hi[j] - box.lo[j]) / max(p.b_max, 1e-9)
            if share <= MIN_SPLIT:  # narrow enough: splitting again only splits hairs
                continue
            if share > widest_share:
                widest, widest_share = j, share
            # what a request sees: others in flight m, between lo - 1 and hi (arrival view)
            table = p.verifier.latency_s
            k = vl.ks(table)[-1]
            top = vl.b_limit(table, p.verifier.max_batch) - 1.0
            lo_t = vl.request_latency(table, k, min(top, box.lo[j]))
            hi_t = vl.request_latency(table, k, min(top, box.hi[j]))
            rise = (hi_t - lo_t) / lo_t
            if rise > best_rise:
                best_j, best_rise = j, rise
        if best_j is None and widest is not None and box.settled_at is not None \
                and any(s is None for s in box.settled_at):
            # latency is flat across the box, but its load still sets the capacity a plan
            # needs: an answer that did not settle may settle in a part of it
            best_j = widest
        if best_j is None:
            return None, 0.0
        lo, hi = box.lo[best_j], box.hi[best_j]
        s = box.settled_at[best_j] if box.settled_at else None
        if s is None and box.assumed:
            s = box.assumed[best_j]
        width = hi - lo
        if s is not None and lo + 0.05 * width < s < hi - 0.05 * width:
            return best_j, s
        # latency grows about like a power of b: split geometrically, and first at the
        # table's first row (below it T is the first row's)
        first = float(vl.rows(self.plans[best_j].verifier.latency_s)[0])
        if lo <= 0.0:
            return best_j, first if first < hi else 0.5 * hi
        return best_j, math.sqrt(lo * hi)

    def _prune_below(self) -> float | None:
        """A box whose bound is at most this cannot improve the answer beyond the gap."""
        if self.best is None:
            return None
        v = self.best.key[0]
        return v + self._tol(v)

    def _tol(self, bound: float) -> float:
        return LOAD_REL_GAP * max(abs(bound), 1e-12) if math.isfinite(bound) else 0.0
