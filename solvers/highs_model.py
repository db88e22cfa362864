"""The fleet MILP built directly in HiGHS from arrays: the default backend.

The same model as `solvers.formulation` (same variables, rows, row scaling
and step order), but handed to highspy's public array API in a few calls
instead of being written as Pyomo expressions and translated one constraint
at a time: at a thousand pools the Pyomo build and hand-over cost seconds,
this costs a fraction of one.  The HiGHS instance stays loaded between the
stages of a solve (objective changes, added rows, a MIP start through
`setSolution`), so one object is both the formulation and the session that
`solvers.solve.Optimizer` drives.

Columns, in this order: x[i] (devices of candidate i's pool on candidate i,
integer), z[v] (variant shipped, binary), r[j] (replicas of batched verifier
j, integer), level[j, l] (binary), t (smallest goodput in use) and u[i]
(binary) when a fairness term needs them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import highspy
import numpy as np
from numpy.typing import NDArray

from configspec_opt.problem import Problem, Row
from solvers.adapter import BASE_HIGHS_OPTIONS, SolverOptions, time_limit_left
from solvers.backend import LinearObjective
from solvers.status import TERMINATION_FROM_HIGHS, RunResult, Termination

F64 = NDArray[np.float64]
I32 = NDArray[np.int32]
INF = float(highspy.kHighsInf)
_INTEGER = int(highspy.HighsVarType.kInteger.value)
_FEASIBLE = 2  # HighsInfo.primal_solution_status: a feasible primal solution exists


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null while HiGHS starts.

    highspy's `Highs()` prints its banner on stdout before any option can be
    set, which would corrupt `configspec solve --json`; Pyomo hides it the
    same way.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def new_highs() -> highspy.Highs:
    """A silent HiGHS instance."""
    with _quiet_stdout():
        h = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy leaves __init__ untyped
        h.setOptionValue("output_flag", False)
    return h


class _Block:
    """Rows in coordinate form (row, column, value) with their bounds, added in one call."""

    def __init__(self) -> None:
        self.lower: list[F64] = []
        self.upper: list[F64] = []
        self.rows: list[NDArray[np.int64]] = []
        self.cols: list[NDArray[np.int64]] = []
        self.vals: list[F64] = []
        self.count = 0

    def add(self, lower: Any, upper: Any, rows: Any, cols: Any, vals: Any) -> None:
        """Rows numbered from 0 within this call; entries in the order they appear in a row."""
        lo = np.atleast_1d(np.asarray(lower, dtype=np.float64))
        self.lower.append(lo)
        self.upper.append(np.atleast_1d(np.asarray(upper, dtype=np.float64)))
        self.rows.append(np.asarray(rows, dtype=np.int64) + self.count)
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.asarray(vals, dtype=np.float64))
        self.count += len(lo)

    def into(self, h: highspy.Highs) -> None:
        """Append the rows to `h`, in CSR form, leaving out zero coefficients."""
        if not self.count:
            return
        rows, cols, vals = (np.concatenate(a) for a in (self.rows, self.cols, self.vals))
        keep = vals != 0.0
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        order = np.argsort(rows, kind="stable")
        rows, cols, vals = rows[order], cols[order], vals[order]
        starts = np.zeros(self.count, dtype=np.int32)
        starts[1:] = np.cumsum(np.bincount(rows, minlength=self.count))[:-1]
        _check(h.addRows(self.count, np.concatenate(self.lower), np.concatenate(self.upper),
                         len(cols), starts, cols.astype(np.int32), vals), "addRows")


def _check(status: highspy.HighsStatus, what: str) -> None:
    if status == highspy.HighsStatus.kError:
        raise RuntimeError(f"HiGHS refused {what} while building the fleet model")


class HighsModel:
    """The fleet MILP in one persistent HiGHS instance; the interface `Optimizer` drives."""

    def __init__(self, problem: Problem, *, fairness: bool,
                 options: SolverOptions | None = None) -> None:
        t0 = time.perf_counter()
        self.problem = problem
        self.fairness = fairness
        self.options = options or SolverOptions()
        self.h = new_highs()
        cands = problem.candidates
        self.n = len(cands)
        self.pool_of = np.zeros(self.n, dtype=np.int64)
        self.count_of = np.zeros(self.n, dtype=np.float64)
        for d, idx in enumerate(problem.by_pool):
            self.pool_of[idx] = d
            self.count_of[idx] = problem.pools[d].count
        self.num_cols = 0
        self.integer_cols: list[I32] = []
        self.z0: int | None = None
        self.num_variants = 0
        self.replica_col: dict[str, int] = {}
        self.levels: list[tuple[int, int]] = []  # (verifier, level) of each level column
        self.t_col: int | None = None
        self.u0: int | None = None
        self.values: F64 = np.zeros(0)  # the last solution, one value per column
        self.start: F64 | None = None  # the MIP start of the next run
        self.free_rows: dict[int, F64] = {}  # rows changed in place: their coefficients
        self.started = t0  # the time limit counts the build too
        for step in STEPS:
            step(self)
        self.is_integer = np.zeros(self.num_cols, dtype=bool)
        for cols in self.integer_cols:
            self.is_integer[cols] = True
        self.build_s = time.perf_counter() - t0

    # -- building ------------------------------------------------------------
    def add_cols(self, lower: Any, upper: Any, integer: bool) -> int:
        """Append columns (no entries yet); returns the first one's index."""
        lo = np.asarray(lower, dtype=np.float64)
        k, first = len(lo), self.num_cols
        if not k:
            return first
        _check(self.h.addVars(k, lo, np.asarray(upper, dtype=np.float64)), "addVars")
        self.num_cols += k
        if integer:
            cols = np.arange(first, first + k, dtype=np.int32)
            _check(self.h.changeColsIntegrality(k, cols, np.full(k, _INTEGER, dtype=np.uint8)),
                   "changeColsIntegrality")
            self.integer_cols.append(cols)
        return first

    def row_arrays(self, row: Row) -> tuple[NDArray[np.int64], F64, float, float]:
        """Columns, coefficients and bounds of a fleet row, scaled as `Formulation.row_constraint`.

        HiGHS's feasibility tolerance is absolute (1e-6): rows whose numbers are
        all below 1 (a budget of $0.03/h) are scaled to unit size so that it is
        not loose in relative terms.
        """
        coef = np.fromiter((row.coef(c) for c in self.problem.candidates), dtype=np.float64,
                           count=self.n)
        size = self.problem.row_size(row)
        scale = size if 0.0 < size < 1.0 else 1.0
        cols = np.flatnonzero(coef)
        vals = coef[cols] / scale
        extra_cols: list[int] = []
        extra_vals: list[float] = []
        if row.t_coef:
            if self.t_col is None:
                raise ValueError("a term on the minimum goodput needs the fairness variables")
            extra_cols.append(self.t_col)
            extra_vals.append(row.t_coef / scale)
        for target, a in row.replica_coef.items():
            if a != 0.0 and target in self.replica_col:
                extra_cols.append(self.replica_col[target])
                extra_vals.append(a / scale)
        cols = np.concatenate([cols, np.asarray(extra_cols, dtype=np.int64)])
        vals = np.concatenate([vals, np.asarray(extra_vals, dtype=np.float64)])
        rhs = row.rhs / scale
        return (cols, vals, -INF, rhs) if row.sense == "<=" else (cols, vals, rhs, INF)

    def add_rows(self, rows: Sequence[Row]) -> None:
        """Append fleet rows in one call, scaled as `row_arrays` scales them."""
        block = _Block()
        for r in rows:
            cols, vals, lo, up = self.row_arrays(r)
            block.add(lo, up, np.zeros(len(cols)), cols, vals)
        block.into(self.h)

    def column_names(self) -> list[str]:
        """Each column named as `solvers.formulation` names its variable (tests, debugging)."""
        names = [f"x[{i}]" for i in range(self.n)]
        names += [f"z[{j}]" for j in range(self.num_variants)]
        names += [f"replicas[{j}]" for j in range(len(self.replica_col))]
        names += [f"level[{j},{lv}]" for j, lv in self.levels]
        if self.t_col is not None:
            names += ["t", *(f"u[{i}]" for i in range(self.n))]
        return names

    # -- one model for many solves (solvers.pareto) ---------------------------
    def add_free_row(self) -> int:
        """Append an empty row without bounds; returns its index, for `set_row`.

        A Pareto front moves a bound at every point: one row changed in place
        keeps the model the same from point to point, where a row added per
        point would pile up constraints that no longer hold.
        """
        index = int(self.h.getNumRow())
        _check(self.h.addRow(-INF, INF, 0, np.zeros(0, dtype=np.int32), np.zeros(0)), "addRow")
        self.free_rows[index] = np.zeros(self.num_cols)
        return index

    def set_row(self, index: int, row: Row | None) -> None:
        """Make free row `index` say `row` (None: no constraint), in place.

        Bounds change in one call; coefficients only where they differ (a
        bound on a sum keeps them, a bound on a ratio N - v*D moves them all).
        """
        new = np.zeros(self.num_cols)
        lo, up = -INF, INF
        if row is not None:
            cols, vals, lo, up = self.row_arrays(row)
            new[cols] = vals
        old = self.free_rows[index]
        for j in np.flatnonzero(new != old).tolist():
            _check(self.h.changeCoeff(index, j, float(new[j])), "changeCoeff")
        self.free_rows[index] = new
        _check(self.h.changeRowBounds(index, lo, up), "changeRowBounds")

    # -- what Optimizer calls ------------------------------------------------
    def add_row(self, row: Row) -> None:
        """Add a row that holds for every later run (a stage's bound, a tie-break bound)."""
        self.add_rows([row])

    def set_objective(self, obj: LinearObjective) -> None:
        """Replace the objective in place (costs and sense); rows and the start are kept.

        Raises
        ------
        ValueError
            The objective reads t but the model was built without fairness variables.
        """
        cost = np.zeros(self.num_cols)
        cost[: self.n] = np.asarray(obj.coef, dtype=np.float64)
        if obj.t_coef:
            if self.t_col is None:
                raise ValueError("a term on the minimum goodput needs the fairness variables")
            cost[self.t_col] = obj.t_coef
        for target, a in obj.replica_coef.items():
            if target in self.replica_col:
                cost[self.replica_col[target]] = a
        _check(self.h.changeColsCost(self.num_cols, np.arange(self.num_cols, dtype=np.int32),
                                     cost), "changeColsCost")
        sense = highspy.ObjSense.kMaximize if obj.sense == "maximize" else \
            highspy.ObjSense.kMinimize
        _check(self.h.changeObjectiveSense(sense), "changeObjectiveSense")

    def counts(self) -> list[int]:
        """The last solution's devices per candidate, rounded (HiGHS returns near-integers)."""
        return [int(k) for k in np.rint(self.values[: self.n])]

    def replica_counts(self) -> dict[str, int]:
        """The last solution's replicas per batched target, rounded."""
        return {t: round(float(self.values[j])) for t, j in self.replica_col.items()}

    def warm_start(self) -> None:
        """Offer the loaded solution (integers rounded) as the next run's MIP start."""
        if len(self.values) == self.num_cols:
            self.start = np.where(self.is_integer, np.rint(self.values), self.values)

    def solve(self, **highs_options: float | int | bool) -> RunResult:
        """One HiGHS run; `highs_options` apply to this run only."""
        h, o = self.h, self.options
        left = time_limit_left(o, self.started)
        options: dict[str, float | int | bool] = {
            **BASE_HIGHS_OPTIONS, "output_flag": o.tee, "mip_rel_gap": o.rel_gap,
            "mip_abs_gap": o.abs_gap, "time_limit": INF if left is None else left,
            **({"threads": o.threads} if o.threads is not None else {}), **highs_options}
        for key, value in options.items():
            _check(h.setOptionValue(key, value), f"option {key}={value}")
        started = self.start is not None
        if self.start is not None:
            h.setSolution(self.num_cols, np.arange(self.num_cols, dtype=np.int32), self.start)
            self.start = None
        t0 = time.perf_counter()
        h.run()
        if started and not self._objective_is_true():
            # HiGHS 1.16 can return a MIP start as "optimal" with an objective value
            # that is not the start's (presolve's offset is lost): run again cold.
            h.clearSolver()
            h.run()
        elapsed = time.perf_counter() - t0
        status = h.getModelStatus()
        info = h.getInfo()
        term = TERMINATION_FROM_HIGHS.get(status.name, Termination.unknown)
        has_solution = info.primal_solution_status == _FEASIBLE
        optimal = status == highspy.HighsModelStatus.kOptimal
        objective = float(info.objective_function_value) if has_solution else None
        if info.mip_node_count == -1:  # solved without branch and bound
            bound = objective if has_solution and optimal else None
        else:
            bound = float(info.mip_dual_bound)
        if has_solution:
            self.values = np.asarray(h.getSolution().col_value, dtype=np.float64)
        return RunResult(termination=term, has_solution=has_solution,
                         proven_optimal=optimal and term is Termination.optimal,
                         objective=objective, bound=bound, time_s=elapsed)


    def _objective_is_true(self) -> bool:
        """Whether the reported objective is the objective of the reported solution."""
        info = self.h.getInfo()
        if info.primal_solution_status != _FEASIBLE:
            return True
        values = np.asarray(self.h.getSolution().col_value, dtype=np.float64)
        cost = np.asarray(self.h.getLp().col_cost_, dtype=np.float64)
        true = float(cost @ values) + float(self.h.getLp().offset_)
        reported = float(info.objective_function_value)
        return abs(true - reported) <= 1e-9 * max(1.0, abs(true), abs(reported))


def define_variables(m: HighsModel) -> None:
    """x[i]: devices of candidate i's pool running it, integer in [0, pool count]."""
    m.add_cols(np.zeros(m.n), m.count_of, integer=True)


def define_assignment(m: HighsModel) -> None:
    """Every device of every pool runs exactly one configuration."""
    counts = np.array([p.count for p in m.problem.pools], dtype=np.float64)
    block = _Block()
    block.add(counts, counts, m.pool_of, np.arange(m.n), np.ones(m.n))
    block.into(m.h)


def define_variants(m: HighsModel) -> None:
    """Per pool and variant: its devices on the variant <= count * z[v]; sum z <= max."""
    p = m.problem
    if p.max_variants is None:
        return
    variants = p.variants
    vidx = {v: j for j, v in enumerate(variants)}
    vid = np.fromiter((vidx[c.variant] for c in p.candidates), dtype=np.int64, count=m.n)
    m.z0 = m.add_cols(np.zeros(len(variants)), np.ones(len(variants)), integer=True)
    m.num_variants = len(variants)
    # one row per (pool, variant) present, in (pool, variant) order
    keys, group = np.unique(m.pool_of * len(variants) + vid, return_inverse=True)
    g_pool, g_variant = keys // len(variants), keys % len(variants)
    g_count = np.array([p.pools[d].count for d in g_pool], dtype=np.float64)
    block = _Block()
    block.add(np.full(len(keys), -INF), np.zeros(len(keys)),
              np.concatenate([group, np.arange(len(keys))]),
              np.concatenate([np.arange(m.n), m.z0 + g_variant]),
              np.concatenate([np.ones(m.n), -g_count]))
    block.add(-INF, float(p.max_variants), np.zeros(len(variants)),
              m.z0 + np.arange(len(variants)), np.ones(len(variants)))
    block.into(m.h)


def define_replicas(m: HighsModel) -> None:
    """Batched verifiers: replicas r[t], one load level per target, x only at that level."""
    p = m.problem
    if not p.verifiers:
        return
    plans = p.verifiers
    r0 = m.add_cols([v.verifier.replicas.min for v in plans],
                    [v.verifier.replicas.max for v in plans], integer=True)
    m.replica_col = {plan.target: r0 + j for j, plan in enumerate(plans)}
    sizes = np.array([len(plan.levels) for plan in plans], dtype=np.int64)
    level0 = m.add_cols(np.zeros(int(sizes.sum())), np.ones(int(sizes.sum())), integer=True)
    m.levels = [(j, lv) for j, plan in enumerate(plans) for lv in range(1, len(plan.levels) + 1)]
    first = level0 + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    block = _Block()
    block.add(np.full(len(plans), -INF), np.ones(len(plans)),
              np.repeat(np.arange(len(plans)), sizes),
              np.arange(level0, level0 + int(sizes.sum())), np.ones(int(sizes.sum())))
    block.into(m.h)
    index = {plan.target: j for j, plan in enumerate(plans)}
    riders = [(i, index[c.target], c.level) for i, c in enumerate(p.candidates) if c.level > 0]
    if not riders:
        return
    i, j, lv = (np.array(a, dtype=np.int64) for a in zip(*riders))
    # one row per (pool, level): its devices at that level <= its size * level[j, l];
    # tighter than a row per candidate (the LP cannot spread a pool over fractional levels)
    total = int(sizes.sum())
    keys, group = np.unique(m.pool_of[i] * total + (first[j] + lv - 1 - level0),
                            return_inverse=True)
    n_rows = len(keys)
    size_of = np.array([pool.count for pool in p.pools], dtype=np.float64)
    block = _Block()
    block.add(np.full(n_rows, -INF), np.zeros(n_rows),
              np.concatenate([group, np.arange(n_rows)]),
              np.concatenate([i, level0 + keys % total]),
              np.concatenate([np.ones(len(i)), -size_of[keys // total]]))
    block.into(m.h)


def define_fleet_rows(m: HighsModel) -> None:
    """The fleet constraints' rows and the verifiers' load-level rows of the problem."""
    m.add_rows(m.problem.rows)


def define_fairness(m: HighsModel) -> None:
    """t <= goodput of every candidate in use (u[i] = 1 when x[i] > 0)."""
    if not m.fairness:
        return
    g = np.fromiter((c.goodput_tok_s for c in m.problem.candidates), dtype=np.float64,
                    count=m.n)
    gmax = float(g.max()) if m.n else 0.0
    m.t_col = m.add_cols([0.0], [gmax], integer=False)
    m.u0 = m.add_cols(np.zeros(m.n), np.ones(m.n), integer=True)
    rows, u = np.arange(m.n), m.u0 + np.arange(m.n)
    block = _Block()
    # use: x[i] - count * u[i] <= 0
    block.add(np.full(m.n, -INF), np.zeros(m.n), np.concatenate([rows, rows]),
              np.concatenate([np.arange(m.n), u]), np.concatenate([np.ones(m.n), -m.count_of]))
    # floor: t + (gmax - g[i]) * u[i] <= gmax
    block.add(np.full(m.n, -INF), np.full(m.n, gmax), np.concatenate([rows, rows]),
              np.concatenate([np.full(m.n, m.t_col), u]),
              np.concatenate([np.ones(m.n), gmax - g]))
    block.into(m.h)


STEPS: tuple[Callable[[HighsModel], None], ...] = (
    define_variables,
    define_assignment,
    define_variants,
    define_replicas,
    define_fleet_rows,
    define_fairness,
)
