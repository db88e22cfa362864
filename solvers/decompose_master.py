"""The LP relaxation of a pool-assignment problem by Dantzig-Wolfe column generation.

Why apart from `solvers.decompose`: the master LP is one idea (plans priced in at
the master's duals until none improves it) that the decomposition drives for every
variant set, stage and box of load; it reads the model's arrays and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import highspy
import numpy as np
from numpy.typing import NDArray

from solvers.adapter import time_limit_left
from solvers.highs_model import new_highs

if TYPE_CHECKING:
    from solvers.decompose import DecomposedModel

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
INF = float(highspy.kHighsInf)
CG_MAX_ROUNDS = 200
FEAS_TOL = 1e-6  # HiGHS's primal feasibility tolerance, on rows scaled to unit size


@dataclass
class LpResult:
    """One LP relaxation: its status, value, best multipliers and solution."""

    status: str  # optimal | infeasible | time_limit
    value: float = -np.inf
    mu: F64 | None = None
    x: F64 | None = None  # the LP solution over all candidates
    rounds: int = 0
    columns: int = 0


def check(status: highspy.HighsStatus, what: str) -> None:
    """Raise if HiGHS refused a call (the model is ours: a refusal is our bug)."""
    if status == highspy.HighsStatus.kError:
        raise RuntimeError(f"HiGHS refused {what} in the decomposition")




class Master:
    """Dantzig-Wolfe over whole-fleet plans: the LP relaxation in a master of m + 1 rows.

    A plan gives every pool one candidate (all its devices); the pools' choices are
    independent, so the convex hull of plans is the product of the pools' simplices
    and the master max sum_k lam_k c.x_k over sum_k lam_k A x_k within the rows,
    sum_k lam_k = 1 has the LP relaxation's optimum.  Pricing a plan at the master's
    duals mu is each pool's argmax of c - mu.a (numpy, one pass over the
    candidates), which is also where L(mu) is evaluated.  Two slacks per row, used
    only in a first phase, find a feasible master or show the LP infeasible.
    Plans persist between runs (a later objective or stage starts from them).
    """

    def __init__(self, m: DecomposedModel) -> None:
        self.m = m
        self.plans: list[I64] = []  # per plan: the candidate of each pool
        self.keys: set[bytes] = set()

    def add_plan(self, idx: I64) -> None:
        """A plan (one candidate per pool), unless it is known already."""
        key = idx.tobytes()
        if key not in self.keys:
            self.keys.add(key)
            self.plans.append(idx)

    def usable(self, allowed: NDArray[np.bool_]) -> list[I64]:
        """The plans known so far that use only allowed candidates."""
        return [p for p in self.plans if bool(allowed[p].all())]

    def solve(self, allowed: NDArray[np.bool_]) -> LpResult:
        """LP optimum over the allowed candidates: phase 1 (slacks) if needed, then phase 2."""
        m = self.m
        self.add_plan(m._pool_best(m.c, allowed)[1])
        for j in range(len(m.lo)):  # the plan that helps row j most
            if np.isfinite(m.up[j]):
                self.add_plan(m._pool_best(-m.A[j], allowed)[1])
            if np.isfinite(m.lo[j]):
                self.add_plan(m._pool_best(m.A[j], allowed)[1])
        res = self._generate(allowed, self.usable(allowed), phase1=False)
        if res.status != "infeasible":
            return res
        one = self._generate(allowed, self.usable(allowed), phase1=True)
        if one.status != "optimal":
            return one
        if -one.value > FEAS_TOL:  # the least total violation is positive
            return LpResult("infeasible", mu=one.mu, rounds=one.rounds)
        res = self._generate(allowed, self.usable(allowed), phase1=False)
        res.rounds += one.rounds
        return res

    def _generate(self, allowed: NDArray[np.bool_], plans: list[I64], phase1: bool
                  ) -> LpResult:
        """Plans priced in until none improves the master (phase 1: to zero violation)."""
        m = self.m
        rows = len(m.lo)
        c = np.zeros(m.n) if phase1 else m.c
        h = new_highs()
        for key, setting in {"output_flag": m.options.tee, "random_seed": 0,
                             "threads": m.options.threads or 1}.items():
            check(h.setOptionValue(key, setting), f"option {key}")
        check(h.addRows(rows + 1, np.r_[m.lo, 1.0], np.r_[m.up, 1.0], 0,
                         np.zeros(rows + 1, dtype=np.int32), np.zeros(0, dtype=np.int32),
                         np.zeros(0)), "addRows")
        if phase1:  # slacks: -1 lets a row run over its upper bound, +1 under its lower
            k = 2 * rows
            check(h.addCols(k, np.ones(k), np.zeros(k), np.full(k, INF), k,
                             np.arange(k, dtype=np.int32),
                             np.repeat(np.arange(rows, dtype=np.int32), 2),
                             np.tile([-1.0, 1.0], rows)), "addCols")
        first = int(h.getNumCol())
        cols: list[I64] = []

        def add(batch: list[I64]) -> None:
            for idx in batch:
                n_at = m.count
                value = float(c[idx] @ n_at)
                use = m.A[:, idx] @ n_at if rows else np.zeros(0)
                nz = np.flatnonzero(use)
                check(h.addCol(-value, 0.0, INF, len(nz) + 1,
                                np.r_[nz, rows].astype(np.int32), np.r_[use[nz], 1.0]),
                       "addCol")
                cols.append(idx)

        add(plans)
        scale = max(1.0, float(np.abs(c).max()) * float(m.count.sum()))
        best_bound, best_mu = np.inf, np.zeros(rows)
        value = -np.inf
        rnd = 0
        for rnd in range(1, CG_MAX_ROUNDS + 1):
            left = time_limit_left(m.options, m.started)
            check(h.setOptionValue("time_limit", INF if left is None else left), "time")
            h.run()
            status = h.getModelStatus()
            if status == highspy.HighsModelStatus.kInfeasible:
                return LpResult("infeasible", rounds=rnd)
            if status != highspy.HighsModelStatus.kOptimal:
                return LpResult("time_limit" if status == highspy.HighsModelStatus.kTimeLimit
                                 else "infeasible", rounds=rnd)
            value = -float(h.getInfo().objective_function_value)
            dual = -np.asarray(h.getSolution().row_dual, dtype=np.float64)
            mu, theta = m._valid_mu(dual[:rows]), float(dual[rows])
            r = c - mu @ m.A if rows else c
            top, at = m._pool_best(r, allowed)
            inner = float(m.count @ top)
            bound = m._mu_b(mu) + inner
            if bound < best_bound:
                best_bound, best_mu = bound, mu
            if phase1 and value >= -FEAS_TOL:
                break
            if inner - theta <= 1e-12 * scale or best_bound - value <= 1e-12 * scale:
                break
            if m._out_of_time():
                return LpResult("time_limit", rounds=rnd)
            self.add_plan(at)
            add([at])
        if phase1:
            return LpResult("optimal", value, best_mu, None, rnd, len(cols))
        lam = np.asarray(h.getSolution().col_value, dtype=np.float64)[first:]
        x = np.zeros(m.n)
        for w, idx in zip(lam, cols):
            if w > 1e-12:
                np.add.at(x, idx, w * m.count)
        return LpResult("optimal", value, best_mu, x, rnd, len(cols))
