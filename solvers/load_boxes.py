"""Boxes of load solved on arrays: the decomposition with each verifier's replicas as a pool.

Why: a box's model (`solvers.load_search`) is the plain fleet model at one latency
per verifier plus one capacity row per verifier, sum_i n_i t_i / R_i <= hi * r.  The
replica count r is one more "pool" of one device whose candidates are r = min..max
(each priced and sized in the rows like the replicas' columns of the MILP), so the
whole box is a pool-assignment problem with a handful of coupling rows, which
`solvers.decompose` solves in a fraction of a second at 1,000 pools: its LP by
column generation with a bound L(mu) computed from the multipliers alone, a repair
of the split pools, reduced-cost fixing.  One model is kept for every box (its
arrays replaced in place, its master's plans kept as warm columns), and the
multipliers of earlier boxes give a new box a bound before any LP: a box they
already put below the best plan (within the search's gap) is pruned in one pass.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from configspec_opt.candidates import Candidate
from configspec_opt.constraint_families import slo_violations
from configspec_opt.fleet import Settled, evaluate_settled
from configspec_opt.problem import Problem
from configspec_opt.spec import Objective
from configspec_opt.verifiers import Mode
from solvers import deadline
from solvers.adapter import SolverOptions
from solvers.decompose import DecomposedModel
from solvers.load_arrays import BoxArrays
from solvers.load_search import LOAD_REL_GAP, BoxOutcome, box_options
from solvers.status import RunResult, StageInfo, Termination

F64 = NDArray[np.float64]
# multipliers of this many earlier boxes are tried on a new box before its LP
HINTS = 6
BOX_REL_GAP_ARRAYS = LOAD_REL_GAP / 2


class ArrayBoxes:
    """`BoxSolver` on `BoxArrays` and one `DecomposedModel` for every box."""

    def __init__(self, arrays: BoxArrays, objective: Objective, options: SolverOptions
                 ) -> None:
        self.arrays = arrays
        self.objective = objective
        self.problem: Problem | None = arrays.problem
        opts = box_options(options)
        # the decomposition's bound is the LP's, which the search refines by splitting
        # boxes; a box need not be closed much below the search's own gap
        opts = dataclasses.replace(opts, rel_gap=max(opts.rel_gap, BOX_REL_GAP_ARRAYS))
        self.model = DecomposedModel.from_arrays(arrays.pools, opts)
        self.mus: list[F64] = []
        self.last: F64 | None = None
        self.slos = {d.name: arrays.problem.spec.slo_for(d)
                     for d in arrays.problem.spec.devices}

    def __call__(self, lo: Sequence[float], hi: Sequence[float], mode: Mode,
                 prune_below: float | None) -> BoxOutcome:
        """Optimistic: the box's LP bound and the load its LP solution implies (no plan).
        Conservative: each verifier's replicas fixed at the LP's, rounded down and up,
        the rest solved by decomposition, the best answer settled at its true load."""
        t0 = time.perf_counter()
        d = self.arrays.data(lo, hi, mode)
        m = self.model
        if not np.logical_or.reduceat(d.valid, m.starts).all():
            return BoxOutcome("infeasible", build_s=time.perf_counter() - t0)
        m.set_arrays(d.c, d.sense, d.A, d.lo, d.up, d.valid)
        build_s = time.perf_counter() - t0
        sign = 1.0 if d.sense == "maximize" else -1.0
        r = self._run(True, prune_below if mode == "optimistic" else None)
        stages = [StageInfo(f"{mode} box of load: LP bound (decomposition)",
                            r.termination.value, r.time_s, None)]
        bound = None if r.bound is None else sign * r.bound
        if bound is None:
            status = "infeasible" if r.termination is Termination.infeasible else "stopped"
            return BoxOutcome(status, stages=stages, build_s=build_s)
        if (prune_below is not None and bound <= prune_below) or m.lp_x is None:
            return BoxOutcome("pruned", bound, stages=stages, build_s=build_s)
        x_lp = m.lp_x
        assumed = self._implied(x_lp, d.t)
        if mode == "optimistic":
            return BoxOutcome("solved", bound, None, assumed, stages, build_s)
        best: Settled | None = None
        stopped = False
        for valid in self._roundings(x_lp, d.valid):
            m.set_arrays(d.c, d.sense, d.A, d.lo, d.up, valid)
            m.start = self.last
            r = self._run(False, None)
            stages.append(StageInfo("conservative box of load (decomposition)",
                                    r.termination.value, r.time_s, r.gap))
            stopped = stopped or r.termination is Termination.time_limit
            if not r.has_solution:
                continue
            self.last = m.values.copy()
            assignment, replicas = self.arrays.assignment(m.values, d.t)
            got = self._settle(assignment, replicas)
            if got is not None and (best is None or got.key > best.key):
                best = got
        status = "solved" if best is not None else "stopped" if stopped else "infeasible"
        return BoxOutcome(status, bound, best, assumed, stages, build_s)

    def _run(self, bound_only: bool, prune_below: float | None) -> RunResult:
        m = self.model
        m.started = time.perf_counter()
        m.bound_only = bound_only
        m.prune_below = prune_below
        m.hints = self.mus[-HINTS:] if bound_only else []
        if bound_only:
            m.start = None
        with deadline.protected():
            r = m.solve()
        if bound_only:
            self.mus.extend(m.mus[-1:])
        return r

    def _implied(self, x: F64, t: F64) -> tuple[float | None, ...]:
        """Each verifier's load per replica under an LP solution at latencies `t`."""
        a = self.arrays
        share = x[:a.n] * t / (a.busy + t)
        out: list[float | None] = []
        at = a.n
        for j, reps in enumerate(a.replicas):
            r = float(x[at:at + len(reps)] @ reps)
            at += len(reps)
            out.append(float(share[a.on == j].sum()) / r if r > 0 else None)
        return tuple(out)

    def _roundings(self, x: F64, valid: NDArray[np.bool_]) -> list[NDArray[np.bool_]]:
        """The valid masks with each verifier's replicas fixed at the LP's, rounded down
        and up (every combination; the least first)."""
        a = self.arrays
        choices: list[list[int]] = []
        at = a.n
        for reps in a.replicas:
            r = float(x[at:at + len(reps)] @ reps)
            near = sorted({min(max(math.floor(r + 1e-9), int(reps[0])), int(reps[-1])),
                           min(max(math.ceil(r - 1e-9), int(reps[0])), int(reps[-1]))})
            choices.append([at + int(v - reps[0]) for v in near])
            at += len(reps)
        out = []
        for pick in itertools.product(*choices):
            v = valid.copy()
            v[a.n:] = False
            v[list(pick)] = True
            out.append(v)
        return out

    def _settle(self, assignment: list[tuple[Candidate, int]], replicas: dict[str, int]
                ) -> Settled | None:
        """The answer at its true fixed point, if it meets every constraint there."""
        assert self.problem is not None
        got = evaluate_settled(self.problem, self.objective, assignment, replicas)
        if got is None or got.broken:
            return None
        if any(slo_violations(c, self.slos[c.device]) for c, _ in got.assignment):
            return None
        return got
