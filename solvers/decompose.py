"""Large plain fleets: the LP bound by per-pool pricing, a repair of the split pools,
reduced-cost fixing, instead of one monolithic MILP.

Why: every pool splits its devices over its own candidates and only a handful of
rows couple the pools (budgets, capacities, fleet SLOs, a lexicographic stage's
bound).  A basic optimal solution of the LP relaxation splits at most as many
pools as there are coupling rows, so the LP optimum is a bound that an integer
plan misses by a few devices' worth, however large the fleet.  HiGHS's MIP
presolve on the monolithic model at 10,000 pools (~900,000 integer columns)
did not end in 20 minutes; this path answers in seconds.

How, for a maximisation max c.x (the solver's sense is folded into c):

1. **Bound.**  For multipliers mu on the coupling rows (mu >= 0 on an upper
   bound, <= 0 on a lower one), L(mu) = sum_r mu_r b_r + sum_p n_p max_i (c_i -
   mu.a_i) is at least c.x for every x that meets the rows: each pool's devices
   can at best all run the candidate of largest c - mu.a.  It is computed here
   from the multipliers, whatever solver produced them, and is the bound this
   path reports; it never reads the incumbent.
2. **LP by column generation.**  A restricted master LP (pool rows, coupling
   rows, a few columns per pool) in one persistent HiGHS instance; each round
   prices every candidate with the master's duals (numpy, per pool) and adds
   each pool's best column.  At convergence L(mu) equals the LP optimum.  A
   first phase with one slack per row direction finds a feasible master, or
   shows the LP infeasible.
3. **Repair.**  Pools whose LP values are whole numbers keep them; a small MILP
   over the split pools with the coupling rows' residual right-hand sides gives
   an integer plan (more pools are freed if it is infeasible).
4. **Reduced-cost fixing.**  If the gap L - incumbent is larger than asked:
   with delta_i = max_p(c - mu.a) - (c_i - mu.a_i) >= 0, every x with
   c.x >= incumbent has sum_i delta_i x_i <= L - incumbent, so a candidate with
   delta_i larger than that gap never runs in a better plan.  The MILP over what
   is left (most pools keep one candidate) is solved exactly; its bound, raised
   to the incumbent, is the bound of the whole.
5. **Variant limit.**  The limit picks at most k (draft, quant) variants.  Every
   set S of min(k, V) variants is its own problem (a smaller set is never better
   than one containing it); L_S(mu) is evaluated for all sets at once from the
   per-(pool, variant) maxima, sets are processed best bound first, and a set
   whose bound does not beat the incumbent by more than the asked gap is never
   solved.  The bound reported is the largest over all sets.

Where it does not apply (`decomposable` says why): an objective or row on the
minimum goodput (its t and per-candidate binaries couple every pool to every
other), batched verifiers (replica and load-level columns; `_solve_under_load`
keeps the monolithic model), and a variant limit with more than
`MAX_VARIANT_SETS` sets to consider.  Those keep the monolithic MILP.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import highspy
import numpy as np
from numpy.typing import NDArray

from configspec_opt.problem import Problem, Row
from solvers import deadline
from solvers.adapter import BASE_HIGHS_OPTIONS, SolverOptions, time_limit_left
from solvers.backend import LinearObjective
from solvers.decompose_master import FEAS_TOL, LpResult, Master, check
from solvers.highs_model import new_highs
from solvers.status import RunResult, Termination

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
INF = float(highspy.kHighsInf)
_INTEGER = int(highspy.HighsVarType.kInteger.value)
_FEASIBLE = 2  # HighsInfo.primal_solution_status: a feasible primal solution exists

MAX_VARIANT_SETS = 2_000  # more sets of variants to enumerate: the monolithic MILP
# The repair MILP frees the split pools and this many more, those where moving a
# device costs least: they fill what rounding the split pools leaves of the budgets.
REPAIR_POOLS = 200
# The repair's MILP stops within the gap asked, kept between these (relative to the
# objective's size): a loose gap asked still gets a plan as good as the LP's rounding
# allows, which costs little; a tight one leaves the rest to the reduced-cost fixing.
REPAIR_REL_GAP = (1e-7, 1e-6)
REPAIR_CANDIDATES = 4  # per free pool, the candidates the repair offers (by reduced cost)
_INTEGRAL_TOL = 1e-6  # an LP value this close to a whole number is that number
_SET_CHUNK = 64  # variant sets evaluated per block (memory: pools x chunk x k floats)


def decomposable(problem: Problem, fairness: bool) -> str | None:
    """Why the decomposition does not apply to this problem (None: it does)."""
    if fairness:
        return "the objective reads the minimum goodput"
    if problem.verifiers:
        return "batched verifiers"
    if any(r.t_coef or r.replica_coef for r in problem.rows):
        return "a row reads the minimum goodput or replicas"
    if problem.empty_pools() or not problem.pools:
        return "a pool without candidates"
    k = problem.max_variants
    v = len(problem.variants)
    if k is not None and k < v and math.comb(v, k) > MAX_VARIANT_SETS:
        return f"{math.comb(v, k):,} sets of {k} variants out of {v}"
    return None


@dataclass
class PoolArrays:
    """The shape of a pool-assignment problem: pools, their candidates, variants.

    Candidates are stored pool by pool; `vid` is each candidate's variant, -1 for
    one that ships none (a batched verifier's replica count, a pool of its own
    with one "device").
    """

    count: F64  # per pool: devices
    starts: I64  # per pool: its first candidate
    vid: I64
    num_variants: int
    max_variants: int | None


class DecomposedModel:
    """The plain fleet model solved by decomposition; the interface `Optimizer` drives.

    Same contract as `solvers.highs_model.HighsModel` (objective replaced in place,
    rows added for every later run, a start offered to the next run), for a model
    without fairness variables, replicas or load levels.
    """

    decomposed = True
    problem: Problem | None  # None: a model over arrays (`from_arrays`)

    def __init__(self, problem: Problem, options: SolverOptions | None = None) -> None:
        t0 = time.perf_counter()
        cands = problem.candidates
        starts = np.array([idx[0] for idx in problem.by_pool], dtype=np.int64)
        ends = np.array([idx[-1] + 1 for idx in problem.by_pool], dtype=np.int64)
        if np.any(starts[1:] != ends[:-1]) or ends[-1] != len(cands) or starts[0] != 0:
            raise ValueError("candidates must be stored pool by pool, in pool order")
        variants = problem.variants
        index = {v: j for j, v in enumerate(variants)}
        vid = np.fromiter((index[c.variant] for c in cands), dtype=np.int64, count=len(cands))
        self._setup(PoolArrays(np.array([p.count for p in problem.pools], dtype=np.float64),
                               starts, vid, len(variants), problem.max_variants), options, t0)
        self.problem = problem
        self.add_rows(problem.rows)
        self.build_s = time.perf_counter() - t0

    @classmethod
    def from_arrays(cls, pools: PoolArrays, options: SolverOptions | None = None
                    ) -> DecomposedModel:
        """A model over arrays alone (the load search's boxes); rows come by `set_arrays`."""
        self = cls.__new__(cls)
        self._setup(pools, options, time.perf_counter())
        return self

    def _setup(self, pools: PoolArrays, options: SolverOptions | None, t0: float) -> None:
        self.started = t0
        self.problem = None
        self.options = options or SolverOptions()
        self.count = pools.count
        self.starts = pools.starts
        self.num_pools = len(pools.count)
        self.n = n = len(pools.vid)
        sizes = np.diff(np.r_[pools.starts, n])
        if np.any(sizes <= 0):
            raise ValueError("every pool needs at least one candidate")
        self.pool_of = np.repeat(np.arange(self.num_pools), sizes)
        self.count_of = self.count[self.pool_of]
        self.vid = pools.vid
        self.num_variants = pools.num_variants
        self.max_variants = k = pools.max_variants
        # a pool whose candidates ship no variant (a verifier's replica count) is in every set
        self.free_pool = np.logical_and.reduceat(pools.vid < 0, pools.starts)
        self.valid = np.ones(n, dtype=bool)  # a box of load may rule candidates out
        self.sets: I64 | None = None  # rows: the variant sets to consider (None: all)
        if k is not None and k < self.num_variants:
            self.sets = np.array(list(combinations(range(self.num_variants), k)),
                                 dtype=np.int64)
            shipped = np.flatnonzero(pools.vid >= 0)
            key = self.pool_of[shipped] * self.num_variants + pools.vid[shipped]
            self.pv_order = shipped[np.argsort(key, kind="stable")]
            sorted_key = self.pool_of[self.pv_order] * self.num_variants + \
                pools.vid[self.pv_order]
            first = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
            self.pv_starts = first
            self.pv_keys = sorted_key[first]
        self.A = np.zeros((0, n))
        self.lo = np.zeros(0)
        self.up = np.zeros(0)
        self.c = np.zeros(n)
        self.sign = 1.0  # +1: the objective is maximised as given; -1: it was minimised
        self.values = np.zeros(n)
        self.start: F64 | None = None
        self._master: Master | None = None
        self.build_s = 0.0
        self.log: list[str] = []  # what each run did, for benchmarks and debugging
        self.repair_pools = REPAIR_POOLS
        # the load search's: a run whose bound is at most `prune_below` (maximised units)
        # stops before any LP; `hints` are multipliers to try first, `mus` this run's
        self.prune_below: float | None = None
        self.hints: list[F64] = []
        self.mus: list[F64] = []
        # bound_only: LPs alone (their bound; `lp_x` the best set's LP solution), no plan
        self.bound_only = False
        self.lp_x: F64 | None = None
        self.lp_value = -np.inf

    def set_arrays(self, c: F64, sense: str, A: F64, lo: F64, up: F64,
                   valid: NDArray[np.bool_]) -> None:
        """Replace objective, rows and valid candidates in place (the next box of load).

        Rows must be scaled already; the master's plans stay (warm columns).
        """
        self.sign = 1.0 if sense == "maximize" else -1.0
        self.c = self.sign * c
        self.A, self.lo, self.up = A, lo, up
        self.valid = valid

    # -- FleetModel ---------------------------------------------------------
    def add_rows(self, rows: list[Row]) -> None:
        """Append coupling rows, scaled to unit size as `HighsModel.row_arrays` scales them."""
        if self.problem is None:
            raise ValueError("a model over arrays takes its rows by set_arrays")
        for row in rows:
            if row.t_coef or row.replica_coef:
                raise ValueError("the decomposition takes rows over the candidates only")
            coef = np.fromiter((row.coef(c) for c in self.problem.candidates),
                               dtype=np.float64, count=self.n)
            if row.ratio is not None:
                size = self.problem.row_size(row)
            else:
                size = max(abs(row.rhs), float(np.abs(coef).max()) if self.n else 0.0)
            scale = size if 0.0 < size < 1.0 else 1.0
            lo, up = (-INF, row.rhs / scale) if row.sense == "<=" else (row.rhs / scale, INF)
            self.A = np.vstack([self.A, coef / scale])
            self.lo = np.append(self.lo, lo)
            self.up = np.append(self.up, up)

    def add_row(self, row: Row) -> None:
        """Add a row that holds for every later run (a stage's bound)."""
        self.add_rows([row])

    def set_objective(self, obj: LinearObjective) -> None:
        """Replace the objective (always maximised inside: a minimum is folded into c)."""
        if obj.t_coef or obj.replica_coef:
            raise ValueError("the decomposition takes objectives over the candidates only")
        self.sign = 1.0 if obj.sense == "maximize" else -1.0
        self.c = self.sign * np.asarray(obj.coef, dtype=np.float64)

    def counts(self) -> list[int]:
        """The last solution's devices per candidate."""
        return [int(k) for k in np.rint(self.values)]

    def replica_counts(self) -> dict[str, int]:
        """No batched verifier here."""
        return {}

    def warm_start(self) -> None:
        """Offer the last solution to the next run as its first incumbent (if it is feasible)."""
        self.start = np.rint(self.values)

    # -- the solve ------------------------------------------------------------
    def solve(self, **highs_options: float | int | bool) -> RunResult:
        """Bound, incumbent and gap as described in the module docstring.

        `highs_options` apply to the sub-MILPs (a node cap, say); the gap asked for
        is `options.rel_gap` / `abs_gap`, measured against the objective's size
        (sum of |c_i| x_i at the incumbent, at least |incumbent| and |bound|) so that
        an objective near zero (Dinkelbach's last step) is judged on its terms.
        """
        t0 = time.perf_counter()
        self.log = []
        self.lp_x, self.lp_value = None, -np.inf
        self.highs_options = highs_options
        nsets = 1 if self.sets is None else len(self.sets)
        stage = np.zeros(nsets, dtype=np.int8)  # 0: nothing yet, 1: LP, 2: repaired, 3: exact
        lps: dict[int, LpResult] = {}
        inc_val, inc_x = -np.inf, None
        if self.start is not None and self._feasible(self.start):
            inc_x = self.start
            inc_val = float(self.c @ inc_x)
        self.start = None
        ub = self._bound_all(np.zeros(len(self.lo)))
        self.mus = []
        for hint in self.hints:  # an earlier box's multipliers: a bound for one pass
            if len(hint) == len(self.lo):
                ub = np.minimum(ub, self._bound_all(hint))
        if self.prune_below is not None and float(ub.max()) <= self.prune_below:
            return RunResult(termination=Termination.unknown, has_solution=False,
                             proven_optimal=False, objective=None,
                             bound=self.sign * float(ub.max()),
                             time_s=time.perf_counter() - t0)
        if self.sets is not None:  # the LP without the limit: multipliers for every set
            whole = self._lp(self.valid.copy())
            if whole.status == "infeasible":  # no set has a plan the rows allow
                ub[:] = -np.inf
            elif whole.mu is not None:
                ub = np.minimum(ub, self._bound_all(whole.mu))
                self.mus.append(whole.mu)
        stopped = False
        # Best bound first, one step at a time: a set's LP (which bounds every set), then
        # its repair, then the exact search; a set whose bound the incumbent meets stops.
        last = 1 if self.bound_only else 3
        floor = -np.inf if self.prune_below is None or not self.bound_only else self.prune_below
        while True:
            open_ = (stage < last) & (ub > max(floor, inc_val + self._tolerance(inc_val, ub,
                                                                                  inc_x)))
            if not open_.any():
                break
            if self._out_of_time():
                stopped = True
                break
            if self.bound_only and stage[int(np.argmax(ub))] >= 1:
                break  # the largest bound is an LP's: no other set's LP can raise it
            s = int(np.argmax(np.where(open_, ub, -np.inf)))
            t1 = time.perf_counter()
            if stage[s] == 0:
                lp = self._lp(self.in_set(s))
                if lp.status == "time_limit":
                    stopped = True
                    break
                if lp.status == "infeasible":
                    ub[s] = -np.inf
                    if lp.mu is not None:  # the same multipliers may rule out other sets
                        ub[self._bound_all(lp.mu, np.zeros(self.n)) < -FEAS_TOL] = -np.inf
                    self.log.append(f"set {s}: LP infeasible ({int(np.sum(ub == -np.inf))} "
                                    "sets)")
                    stage[s] = 3
                    continue
                assert lp.mu is not None
                ub = np.minimum(ub, self._bound_all(lp.mu))
                self.mus.append(lp.mu)
                if self.lp_x is None or lp.value > self.lp_value:
                    self.lp_x, self.lp_value = lp.x, lp.value
                lps[s] = lp
                stage[s] = 1
                self.log.append(f"set {s}: LP {lp.value:.10g} in {lp.rounds} rounds, bound "
                                f"{ub[s]:.10g} ({time.perf_counter() - t1:.2f} s)")
            elif stage[s] == 1:
                lp = lps[s]
                assert lp.x is not None and lp.mu is not None
                size = float(np.abs(self.c) @ np.abs(lp.x))
                x, val, st = self._repair(s, lp.x, lp.mu, min(max(
                    self._tolerance(lp.value, ub[s:s + 1], lp.x), REPAIR_REL_GAP[0] * size),
                    REPAIR_REL_GAP[1] * size))
                lp.x = None
                stage[s] = 2
                self.log.append(f"set {s}: repair {st} {val:.10g} "
                                f"({time.perf_counter() - t1:.2f} s)")
                if x is not None and val > inc_val:
                    inc_val, inc_x = val, x
                if st == "infeasible":  # every pool free: no whole plan in this set
                    ub[s] = -np.inf
                if st == "time_limit":
                    stopped = True
                    break
            else:
                mu = lps[s].mu
                assert mu is not None
                status, bound, x, val = self._exact(s, mu, float(ub[s]), inc_val, inc_x,
                                                    self._tolerance(inc_val, ub, inc_x))
                stage[s] = 3
                self.log.append(f"set {s}: exact {status}, bound {bound:.10g}, plan "
                                f"{val:.10g} ({time.perf_counter() - t1:.2f} s)")
                if x is not None and val > inc_val:
                    inc_val, inc_x = val, x
                ub[s] = min(ub[s], max(bound, inc_val))
                if status == "time_limit":
                    stopped = True
                    break
        elapsed = time.perf_counter() - t0
        finite = ub[ub > -np.inf]
        if self.bound_only and inc_x is None:
            term = Termination.time_limit if stopped else Termination.infeasible \
                if not len(finite) else Termination.unknown
            return RunResult(termination=term, has_solution=False, proven_optimal=False,
                             objective=None, time_s=elapsed,
                             bound=self.sign * float(finite.max()) if len(finite) else None)
        if inc_x is None:
            term = Termination.time_limit if stopped else Termination.infeasible
            return RunResult(termination=term, has_solution=False, proven_optimal=False,
                             objective=None, bound=None, time_s=elapsed)
        bound = max(float(finite.max()) if len(finite) else inc_val, inc_val)
        self.values = inc_x
        met = bound - inc_val <= self._tolerance(inc_val, np.array([bound]), inc_x)
        term = Termination.optimal if met and not stopped else Termination.time_limit \
            if stopped else Termination.unknown
        return RunResult(termination=term, has_solution=True,
                         proven_optimal=term is Termination.optimal,
                         objective=self.sign * inc_val, bound=self.sign * bound,
                         time_s=elapsed)

    # -- pieces -------------------------------------------------------------
    def _tolerance(self, inc_val: float, ub: F64, inc_x: F64 | None) -> float:
        """The gap the options accept, in objective units."""
        if inc_x is None:
            return 0.0
        top = float(np.max(ub[np.isfinite(ub)], initial=inc_val))
        size = max(abs(inc_val), abs(top), float(np.abs(self.c) @ inc_x))
        return max(self.options.abs_gap, self.options.rel_gap * size)

    def _out_of_time(self) -> bool:
        left = time_limit_left(self.options, self.started)
        return left is not None and left <= deadline.MIN_RUN_S

    def _feasible(self, x: F64) -> bool:
        """Whether whole numbers `x` fill every pool and meet every row (HiGHS's tolerance)."""
        if len(x) != self.n or np.any(x < 0):
            return False
        if not np.array_equal(np.add.reduceat(x, self.starts), self.count):
            return False
        if np.any((x > 0) & ~self.valid):
            return False
        if self.sets is not None:
            k = self.max_variants
            assert k is not None
            if len(np.unique(self.vid[(x > 0) & (self.vid >= 0)])) > k:
                return False
        act = self.A @ x
        tol = 1.5 * FEAS_TOL  # HiGHS's tolerance, and the rounding of near-whole values
        return bool(np.all(act >= self.lo - tol) and np.all(act <= self.up + tol))

    def in_set(self, s: int) -> NDArray[np.bool_]:
        """Which candidates set `s` of variants allows."""
        if self.sets is None:
            return self.valid.copy()
        return self.valid & (np.isin(self.vid, self.sets[s]) | (self.vid < 0))

    def _mu_b(self, mu: F64) -> float:
        """sum_r mu_r b_r with b_r the bound on the side mu_r prices."""
        return float(np.sum(np.where(mu > 0, mu * np.where(np.isfinite(self.up), self.up, 0.0),
                                     np.where(mu < 0, mu * np.where(np.isfinite(self.lo),
                                                                    self.lo, 0.0), 0.0))))

    def _valid_mu(self, mu: F64) -> F64:
        """Multipliers of a sign that makes L(mu) a bound (a wrong sign becomes 0)."""
        mu = np.where((mu > 0) & ~np.isfinite(self.up), 0.0, mu)
        return np.where((mu < 0) & ~np.isfinite(self.lo), 0.0, mu)

    def _bound_all(self, mu: F64, c: F64 | None = None) -> F64:
        """L_S(mu) for every variant set S (one value without a variant limit).

        With `c` zero it is Farkas's test: a set whose value is negative has no plan
        that meets the rows (module docstring, 1, with nothing to maximise).
        """
        c = self.c if c is None else c
        mu = self._valid_mu(mu)
        r = c - mu @ self.A if len(mu) else c
        r = np.where(self.valid, r, -np.inf)
        const = self._mu_b(mu)
        if self.sets is None:
            return np.array([const + float(self.count @ np.maximum.reduceat(r, self.starts))])
        if self.free_pool.any():
            top = np.maximum.reduceat(r, self.starts)[self.free_pool]
            const += float(self.count[self.free_pool] @ top)
        m = np.full(self.num_pools * self.num_variants, -np.inf)
        m[self.pv_keys] = np.maximum.reduceat(r[self.pv_order], self.pv_starts)
        per = m.reshape(self.num_pools, self.num_variants)
        per = per[~self.free_pool]
        count = self.count[~self.free_pool]
        out = np.empty(len(self.sets))
        for a in range(0, len(self.sets), _SET_CHUNK):
            chunk = self.sets[a:a + _SET_CHUNK]
            best = per[:, chunk].max(axis=2)  # pools x sets
            with np.errstate(invalid="ignore"):
                out[a:a + len(chunk)] = const + count @ best
        return out

    def _lp(self, allowed: NDArray[np.bool_]) -> LpResult:
        """The LP relaxation over the allowed candidates (`_Master`)."""
        if self._master is None:
            self._master = Master(self)
        return self._master.solve(allowed)

    def _pool_best(self, r: F64, allowed: NDArray[np.bool_]) -> tuple[F64, I64]:
        """Per pool: the largest r over allowed candidates, and (first) where it is."""
        masked = np.where(allowed, r, -np.inf)
        top = np.maximum.reduceat(masked, self.starts)
        at = np.flatnonzero(masked >= top[self.pool_of])
        _, first = np.unique(self.pool_of[at], return_index=True)
        return top, at[first]

    def _repair(self, s: int, x_lp: F64, mu: F64, gap: float
                ) -> tuple[F64 | None, float, str]:
        """An integer plan from the LP's: whole pools kept, split pools solved as a MILP.

        `gap`: the absolute gap its MILP may stop at.
        """
        allowed = self.in_set(s)
        frac = np.abs(x_lp - np.rint(x_lp)) > _INTEGRAL_TOL
        split = np.maximum.reduceat(frac, self.starts).astype(bool)
        fixed = np.where(split[self.pool_of], 0.0, np.rint(x_lp))
        if not split.any():
            if self._feasible(fixed):
                return fixed, float(self.c @ fixed), "whole"
            split = np.zeros(self.num_pools, dtype=bool)
        # pools ordered by how little moving one device costs (the cheapest to free next)
        r = self.c - mu @ self.A if len(mu) else self.c
        top, _ = self._pool_best(r, allowed)
        second = np.maximum.reduceat(np.where(allowed & (r < top[self.pool_of]), r, -np.inf),
                                     self.starts)
        order = np.argsort(top - second, kind="stable")
        free = split.copy()
        free[order[:self.repair_pools]] = True
        if not free.any():
            free[order[:1]] = True
        # each free pool offers its few candidates cheapest to move to (and the LP's own):
        # the MILP stays small; only the last try, over every pool, offers them all
        delta = np.where(allowed, top[self.pool_of] - r, np.inf)
        by_delta = np.lexsort((delta, self.pool_of))
        rank = np.empty(self.n, dtype=np.int64)
        rank[by_delta] = np.arange(self.n) - self.starts[self.pool_of[by_delta]]
        offered = allowed & ((rank < REPAIR_CANDIDATES) | (x_lp > 0))
        extra = 8 * max(1, self.repair_pools)
        while True:
            every = free.all()
            res = self._sub_milp(allowed if every else offered, free,
                                 np.where(free[self.pool_of], 0.0, fixed), gap)
            if res.x is not None:
                return res.x, float(self.c @ res.x), f"{int(free.sum())} pools"
            if res.status == "time_limit" or every:
                return None, -np.inf, res.status
            more = order[~free[order]][:extra]
            free[more] = True
            extra *= 8

    def _exact(self, s: int, mu: F64, bound: float, inc_val: float, inc_x: F64 | None,
               tolerance: float) -> tuple[str, float, F64 | None, float]:
        """Reduced-cost fixing, then the exact MILP over what is left (module docstring, 4).

        Returns the status, the set's bound (at least the incumbent: nothing better
        is left out), and the MILP's plan and value if it found one.
        """
        allowed = self.in_set(s)
        r = self.c - mu @ self.A if len(mu) else self.c
        top, _ = self._pool_best(r, allowed)
        delta = top[self.pool_of] - r
        gap = bound - inc_val if inc_x is not None else np.inf
        if gap < 0:
            return "pruned", inc_val, None, -np.inf
        eps = 1e-9 * max(1.0, abs(bound)) + 1e-12
        keep = allowed & (delta <= gap + eps)
        kept = np.add.reduceat(keep, self.starts)
        free = kept >= 2
        fixed = np.where(keep & ~free[self.pool_of], self.count_of, 0.0)
        extra = None
        if np.isfinite(gap):
            extra = (np.where(keep & free[self.pool_of], delta, 0.0), gap + eps)
        start = None
        if inc_x is not None and not np.any((inc_x > 0) & ~keep) and \
                np.array_equal(np.where(free[self.pool_of], 0.0, inc_x), fixed):
            start = inc_x
        self.log.append(f"set {s}: reduced-cost fixing leaves {int(free.sum())} of "
                        f"{self.num_pools} pools ({int((keep & free[self.pool_of]).sum())} "
                        "candidates)")
        res = self._sub_milp(keep, free, fixed, tolerance, extra, start)
        if res.status == "infeasible":
            return "infeasible", inc_val, None, -np.inf
        fixed_val = float(self.c @ fixed)
        b = bound if res.bound is None else min(bound, res.bound + fixed_val)
        if res.x is None:
            return res.status, max(b, inc_val), None, -np.inf
        return res.status, max(b, inc_val), res.x, float(self.c @ res.x)

    def _sub_milp(self, allowed: NDArray[np.bool_], free: NDArray[np.bool_], fixed: F64,
                  gap: float, extra: tuple[F64, float] | None = None,
                  start: F64 | None = None) -> _SubResult:
        """max c.x over the free pools' allowed candidates, the rest at `fixed`.

        `gap`: the absolute gap HiGHS may stop at (the whole problem's tolerance, not
        one relative to the free part's smaller objective).  `extra`: one more row
        sum coef.x <= limit (the reduced-cost row).  Returns the whole plan (fixed
        part included), the status, and the free part's bound.
        """
        cols = np.flatnonzero(allowed & free[self.pool_of])
        act = self.A @ fixed if len(self.lo) else np.zeros(0)
        k = len(cols)
        h = new_highs()
        check(h.addVars(k, np.zeros(k), self.count_of[cols]), "addVars")
        check(h.changeColsIntegrality(k, np.arange(k, dtype=np.int32),
                                       np.full(k, _INTEGER, dtype=np.uint8)), "integrality")
        check(h.changeColsCost(k, np.arange(k, dtype=np.int32), -self.c[cols]), "cost")
        pools = np.flatnonzero(free)
        pool_local = np.searchsorted(pools, self.pool_of[cols])
        starts = np.searchsorted(pool_local, np.arange(len(pools))).astype(np.int32)
        check(h.addRows(len(pools), self.count[pools], self.count[pools], k, starts,
                         np.arange(k, dtype=np.int32), np.ones(k)), "addRows")
        rows = [(self.A[j, cols], self.lo[j] - act[j], self.up[j] - act[j])
                for j in range(len(self.lo))]
        if extra is not None:
            rows.append((extra[0][cols], -INF, extra[1]))
        for coef, lo, up in rows:
            nz = np.flatnonzero(coef).astype(np.int32)
            check(h.addRow(lo, up, len(nz), nz, coef[nz]), "addRow")
        left = time_limit_left(self.options, self.started)
        opts: dict[str, Any] = {**BASE_HIGHS_OPTIONS, "output_flag": self.options.tee,
                                "mip_rel_gap": self.options.rel_gap,
                                "mip_abs_gap": max(self.options.abs_gap, gap),
                                "time_limit": INF if left is None else left,
                                **({"threads": self.options.threads}
                                   if self.options.threads is not None else {}),
                                **self.highs_options}
        for key, value in opts.items():
            check(h.setOptionValue(key, value), f"option {key}")
        if start is not None:
            h.setSolution(k, np.arange(k, dtype=np.int32), start[cols])
        with deadline.protected():
            h.run()
        status = h.getModelStatus()
        info = h.getInfo()
        if status == highspy.HighsModelStatus.kInfeasible:
            return _SubResult("infeasible", None, None)
        name = "optimal" if status == highspy.HighsModelStatus.kOptimal else \
            "time_limit" if status == highspy.HighsModelStatus.kTimeLimit else "stopped"
        bound = None
        if name == "optimal" and info.mip_node_count == -1:
            bound = -float(info.objective_function_value)
        elif info.mip_node_count != -1 and math.isfinite(info.mip_dual_bound):
            bound = -float(info.mip_dual_bound)
        if info.primal_solution_status != _FEASIBLE:
            return _SubResult(name, None, bound)
        x = fixed.copy()
        x[cols] = np.rint(np.asarray(h.getSolution().col_value, dtype=np.float64))
        if bound is not None:  # the bound of the free part, on our own c
            bound = max(bound, float(self.c @ x) - float(self.c @ fixed))
        if not self._feasible(x):
            return _SubResult("stopped", None, bound)
        return _SubResult(name, x, bound)


@dataclass
class _SubResult:
    status: str
    x: F64 | None
    bound: float | None  # on the free pools' part of c.x
