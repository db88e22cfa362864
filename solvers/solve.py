"""Solving a spec: objectives, lexicographic stages, Dinkelbach, tie-break.

Exactness: every MILP runs with a relative gap of 1e-9 by default; ratio
objectives (fleet cost efficiency, fleet energy per token) are solved by
Dinkelbach's method, which is exact for mixed-integer problems with a
positive denominator: it solves max N(x) - lam*D(x) and updates
lam = N(x)/D(x) until the parametric optimum reaches zero.

Determinism: the model is built in a canonical order (pools as in the spec,
candidates sorted by (target, draft, quant, K)) and HiGHS runs single-threaded
with a fixed seed, so the same spec gives the same assignment.  Equal optima
are then broken by one more MILP that keeps the objective at its optimum and
minimises the sum of candidate ranks, a rank being a candidate's position in
its pool's sorted list: ties resolve to the alphabetically first
target/draft/quant and the smallest K.  That search is capped by a node count
(`TIE_BREAK_NODES`, never by time) and skipped for models above
`TIE_BREAK_MAX_CANDIDATES`; `solver.tie_break` says "exact" when it proved the
least rank, "node_limit" when it stopped at the node cap, "skipped" for large
models (whose answer is still the same for the same spec: canonical order,
single-threaded HiGHS, fixed seed).  Under batched verifiers the same rule
runs on the conservative load levels (`_tie_break_under_load`).

Large plain fleets (more than `TIE_BREAK_MAX_CANDIDATES` candidates, no batched
verifier, no minimum-goodput term) are solved by decomposition instead
of one monolithic MILP (`SolverOptions.method`): each stage's run returns a plan
and a bound computed from LP multipliers, so gaps and `proven_optimal` keep their
meaning; its tie-break is "skipped", as for any model that large.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from configspec_opt.candidates import Candidate, PoolCandidates, enumerate_candidates
from configspec_opt.constraint_families import slo_violations
from configspec_opt.errors import UsageError
from configspec_opt.fleet import (
    FleetMetrics,
    Settled,
    evaluate_settled,
    fleet_metrics,
    metric_value,
    violated_constraints,
)
from configspec_opt.problem import METRICS, Problem, Row, Sense, build_problem, ratio_row
from configspec_opt.spec import Metric, Objective, Spec, Term
from configspec_opt.verifiers import (
    VerifierPlan,
    VerifierState,
    plans_for,
    refine,
)
from solvers import deadline
from solvers.adapter import HighsSession, SolverOptions, require_solver
from solvers.backend import FleetModel, Session
from solvers.load_search import LOAD_REL_GAP, BoxRun, BoxSolver, LoadSearch, MilpBoxes
from solvers.status import RunResult, StageInfo, Status, Termination, rel_gap

if TYPE_CHECKING:
    from solvers.diagnose import Diagnosis

DINKELBACH_MAX_ITER = 100
TIE_BREAK_NODES = 500
# Above this many candidates (after pruning) the tie-break stage roughly doubles
# the solve; such models keep HiGHS's own deterministic choice (canonical model,
# one thread, fixed seed): same spec, same assignment, just not the rank rule.
TIE_BREAK_MAX_CANDIDATES = 20_000
# `proven_optimal` means the certified gap of every objective term is at most
# this: HiGHS closes its own gap to 1e-9, and the rows that hold earlier terms
# at their optimum in later stages hold to its feasibility tolerance (~1e-6).
PROVEN_REL_GAP = 1e-6
# Batched verifiers: the load levels are refined until the optimistic model's
# bound is within LOAD_REL_GAP of the best settled answer (at most LOAD_MAX_ROUNDS).
LOAD_MAX_ROUNDS = 6
# Above this many candidate copies (candidates on a batched verifier times its load
# levels) the level model is too large for one MILP (at 48 pools and two verifiers,
# 600,000 copies did not finish in two minutes): `solvers.load_search` searches
# boxes of load instead, one small MILP each.
LEVEL_MODEL_MAX_COPIES = 60_000
# From this many pools on, boxes of load are solved on arrays by decomposition.
ARRAY_MIN_POOLS = 20


@dataclass
class Solution:
    """The outcome of `solve`: the assignment, its fleet figures, and how sure the solver is.

    `assignment` holds (candidate, devices) pairs with devices > 0 and is empty
    unless `status` is optimal or feasible.  `objective_values` has one value per
    term of the objective, `term_gaps` the certified relative gap of each (None:
    unknown).  `proven_optimal` is true only when every gap is within
    `proven_within`: `PROVEN_REL_GAP`, or `LOAD_REL_GAP` under batched verifiers
    (whose load levels are refined to that); `diagnosis` is set for an infeasible spec.
    """

    status: Status
    objective: Objective
    problem: Problem
    assignment: list[tuple[Candidate, int]] = field(default_factory=list)
    fleet: FleetMetrics | None = None
    objective_values: list[float] = field(default_factory=list)
    proven_optimal: bool = False
    time_s: float = 0.0
    build_s: float = 0.0
    gap: float | None = None
    proven_within: float = PROVEN_REL_GAP  # the gap `proven_optimal` certifies
    stages: list[StageInfo] = field(default_factory=list)
    tie_break: str = "off"  # exact | node_limit | time_limit | skipped | off
    term_gaps: list[float | None] = field(default_factory=list)
    verifiers: list[VerifierState] = field(default_factory=list)  # batched, as settled
    load_levels: dict[str, int] = field(default_factory=dict)  # levels per batched verifier
    diagnosis: Diagnosis | None = None
    message: str = ""

    @property
    def objective_value(self) -> float | None:
        """The objective as one number: the first term's value, or the signed weighted sum.

        For a lexicographic objective this is the first (most important) term.
        None when nothing was solved.
        """
        if not self.objective_values:
            return None
        if self.objective.mode == "weighted":
            return sum((1 if t.sense == "maximize" else -1) * t.weight * v
                       for t, v in zip(self.objective.terms(), self.objective_values))
        return self.objective_values[0]


def _ratio_bound(lam: float, parametric_bound: float | None, d_lb: float,
                 sense: str) -> float | None:
    """The bound on a ratio certified by the last Dinkelbach MILP (see `dinkelbach`)."""
    if parametric_bound is None:
        return None
    slack = max(0.0, parametric_bound) if sense == "maximize" else max(0.0, -parametric_bound)
    if slack == 0.0:
        return lam
    if d_lb <= 0.0:
        return float("inf") if sense == "maximize" else float("-inf")
    return lam + slack / d_lb if sense == "maximize" else lam - slack / d_lb


def _decompose(problem: Problem, fairness: bool, options: SolverOptions) -> bool:
    """Whether `options.method` and the problem call for `solvers.decompose`.

    "auto" decomposes above `TIE_BREAK_MAX_CANDIDATES`, where the monolithic model
    skips its tie-break too (so no answer's rule changes): at 1,000 pools (~70,000
    candidates) the monolithic MILP took 15 s and the decomposition 1.5 s; below
    that size the monolithic MILP is fast and keeps the rank tie-break.
    """
    if options.method == "milp":
        return False
    from solvers.decompose import decomposable

    if options.method == "auto" and len(problem.candidates) <= TIE_BREAK_MAX_CANDIDATES:
        return False
    return decomposable(problem, fairness) is None


class StageStopped(Exception):
    """A MILP ended without an assignment (infeasible, or out of time before finding one);
    `result` says which.  Public: `solvers.pareto` drives `Optimizer` stage by stage too."""

    def __init__(self, result: RunResult) -> None:
        self.result = result


class Optimizer:
    """Runs the stages of one solve on one persistent model."""

    def __init__(self, problem: Problem, objective: Objective, options: SolverOptions) -> None:
        self.problem = problem
        self.objective = objective
        fairness = any(t.metric is Metric.min_goodput for t in objective.terms())
        t0 = time.perf_counter()
        self.f: FleetModel
        self.session: Session
        self.method = "milp"
        if options.backend == "pyomo":
            from solvers.formulation import build

            formulation = build(problem, fairness=fairness)
            self.f, self.session = formulation, HighsSession(formulation.model, options)
        elif _decompose(problem, fairness, options):
            from solvers.decompose import DecomposedModel

            self.f = self.session = DecomposedModel(problem, options)
            self.method = "decomposition"
        else:
            from solvers.highs_model import HighsModel

            self.f = self.session = HighsModel(problem, fairness=fairness, options=options)
        self.build_s = time.perf_counter() - t0
        self.stages: list[StageInfo] = []
        self.complete = True  # every stage of the user's objective ran to its own end
        self.bounds: list[float | None] = []  # per term: what no assignment can beat
        self.stage_values: list[float] = []  # per term: its value when its own stage ended
        self.last: list[int] = []
        self.tie = "off"
        self.stopped: Termination | None = None
        self._bound: float | None = None

    # -- one MILP ---------------------------------------------------------
    def run(self, what: str) -> list[int]:
        """One MILP of the user's objective; its dual bound is kept in `_bound`."""
        with deadline.protected():
            r = self.session.solve()
        if self.method == "decomposition":
            what += " (decomposition)"
        self.stages.append(StageInfo(what, r.termination.value, r.time_s, r.gap))
        if not r.has_solution:
            raise StageStopped(r)
        if r.termination is not Termination.optimal:
            self.complete = False
            self.stopped = r.termination
        self._bound = r.bound
        self.last = self.f.counts()
        return self.last

    def tie_break(self) -> None:
        """Among the optima, prefer the smallest total rank (a bounded, deterministic search).

        The objective is already held at its optimum by a row.  Proving that an
        assignment has the least rank among all optima can cost far more than
        the solve itself on large fleets, so the search is capped by a node
        count (never by time, which would make the answer depend on the
        machine's load) and only ever moves to an assignment of smaller rank.
        """
        from solvers.backend import LinearObjective

        ranks = self.ranks()
        best = list(self.last)
        best_rank = sum(r * k for r, k in zip(ranks, best))
        if best_rank == 0:
            self.tie = "exact"
            return
        rank_of = {id(c): r for c, r in zip(self.problem.candidates, ranks)}
        self.f.add_row(Row("tie_break", "rank bound", lambda c: rank_of[id(c)], "<=",
                           best_rank))
        self.f.set_objective(LinearObjective(ranks, "minimize"))
        self.session.warm_start()
        with deadline.protected():
            r = self.session.solve(mip_max_nodes=TIE_BREAK_NODES)
        self.stages.append(StageInfo("tie-break", r.termination.value, r.time_s, r.gap))
        self.tie = ("exact" if r.proven_optimal else
                    "time_limit" if r.termination is Termination.time_limit else "node_limit")
        if r.has_solution:
            counts = self.f.counts()
            if sum(rk * k for rk, k in zip(ranks, counts)) < best_rank:
                best = counts
        self.last = best

    # -- terms --------------------------------------------------------------
    def coef(self, term: Term) -> tuple[list[float], float]:
        """A term's coefficients over the candidates, and its coefficient on t.

        A min_goodput term reads only t (the smallest goodput in use); every other
        term reads the candidates' numerators and not t.
        """
        form = METRICS[term.metric]
        if form.kind == "min":
            return [0.0] * len(self.problem.candidates), 1.0
        return [form.num(c) for c in self.problem.candidates], 0.0

    def replica_coef(self, per_replica: Callable[[VerifierPlan], float] | None,
                     scale: float = 1.0) -> dict[str, float]:
        """What each replica of a batched verifier adds to a term (scaled)."""
        if per_replica is None:
            return {}
        return {p.target: scale * per_replica(p) for p in self.problem.verifiers}

    def replica_total(self, coef: dict[str, float]) -> float:
        """A replica term's value at the model's current replica counts."""
        if not coef:
            return 0.0
        counts = self.f.replica_counts()
        return sum(a * counts.get(t, 0) for t, a in coef.items())

    def optimize_term(self, term: Term) -> float:
        """Optimise one term on the model as it stands (earlier stages' rows kept); its value.

        A ratio metric goes through `dinkelbach`; the dual bound of the term is
        appended to `bounds`.

        Raises
        ------
        UsageError
            min_goodput asked to be minimised.
        """
        from solvers.backend import LinearObjective

        form = METRICS[term.metric]
        if form.kind == "min" and term.sense == "minimize":
            raise UsageError("min_goodput can only be maximised")
        if form.kind != "ratio":
            coef, t_coef = self.coef(term)
            self.f.set_objective(LinearObjective(coef, term.sense, t_coef,
                                                 self.replica_coef(form.num_per_replica)))
            counts = self.run(f"{term.sense} {term.metric.value}")
            self.bounds.append(self._bound)
            return self.value(term, counts)
        return self.dinkelbach(term)

    def dinkelbach(self, term: Term) -> float:
        """max (or min) N/D by a sequence of parametric MILPs max N - lam*D.

        The last MILP's dual bound certifies the ratio: for any feasible x,
        N(x) - lam*D(x) <= ub, so N(x)/D(x) <= lam + max(0, ub)/D_lb with D_lb a
        lower bound on D over all assignments (every device runs some
        candidate, so each pool contributes at least count * its least D).
        """
        from solvers.backend import LinearObjective

        form = METRICS[term.metric]
        assert form.den is not None
        nums = [form.num(c) for c in self.problem.candidates]
        dens = [form.den(c) for c in self.problem.candidates]
        num_r = self.replica_coef(form.num_per_replica)
        den_r = self.replica_coef(form.den_per_replica)
        d_lb = sum(pool.count * min(dens[i] for i in idx)
                   for pool, idx in zip(self.problem.pools, self.problem.by_pool))
        d_lb += sum(den_r[p.target] * p.verifier.replicas.min for p in self.problem.verifiers
                    if p.target in den_r)
        lam = run_lam = 0.0
        for it in range(DINKELBACH_MAX_ITER):
            if it > 0 and deadline.expired():  # the last MILP (at `run_lam`) certifies a bound
                self.complete = False
                self.stopped = Termination.time_limit
                self.bounds.append(_ratio_bound(run_lam, self._bound, d_lb, term.sense))
                return lam
            run_lam = lam
            coef = [a - lam * b for a, b in zip(nums, dens)]
            rcoef = {t: num_r.get(t, 0.0) - lam * den_r.get(t, 0.0)
                     for t in {*num_r, *den_r}}
            self.f.set_objective(LinearObjective(coef, term.sense, 0.0, rcoef))
            counts = self.run(f"{term.sense} {term.metric.value} (Dinkelbach {it + 1})")
            n = sum(k * a for k, a in zip(counts, nums)) + self.replica_total(num_r)
            d = sum(k * b for k, b in zip(counts, dens)) + self.replica_total(den_r)
            gain = n - lam * d
            tol = 1e-9 * max(1.0, abs(lam) * d)
            if it > 0 and (gain <= tol if term.sense == "maximize" else gain >= -tol):
                self.bounds.append(_ratio_bound(lam, self._bound, d_lb, term.sense))
                return lam
            lam = n / d
        self.complete = False
        self.bounds.append(None)
        return lam

    def value(self, term: Term, counts: list[int]) -> float:
        """The term's fleet value at `counts`, as the model sees the fleet (its load levels)."""
        return metric_value(self.fleet(counts), term.metric)

    def fleet(self, counts: list[int]) -> FleetMetrics:
        """Fleet figures as the model sees them (its load levels, its replicas)."""
        cost = self.replica_total(self.replica_coef(METRICS[Metric.cost].num_per_replica))
        return fleet_metrics(self.assignment(counts), cost)

    def bound_row(self, term: Term, value: float, tolerance: float) -> Row:
        """Keep `term` at least as good as `value` (less `tolerance`, relative)."""
        form = METRICS[term.metric]
        slack = max(tolerance * abs(value), 1e-9 * max(1.0, abs(value)))
        better: Sense = ">=" if term.sense == "maximize" else "<="
        key = f"objective.{term.metric.value}"
        if form.kind == "ratio":
            assert form.den is not None
            v = value - slack if term.sense == "maximize" else value + slack
            rcoef = self.replica_coef(form.num_per_replica)
            for t, a in self.replica_coef(form.den_per_replica, -v).items():
                rcoef[t] = rcoef.get(t, 0.0) + a
            return Row(key, f"{term.metric.value} bound", ratio_row(form.num, form.den, v),
                       better, 0.0, replica_coef=rcoef)
        rhs = value - slack if term.sense == "maximize" else value + slack
        if form.kind == "min":
            return Row(key, "min goodput bound", lambda c: 0.0, better, rhs, t_coef=1.0)
        return Row(key, f"{term.metric.value} bound", form.num, better, rhs,
                   replica_coef=self.replica_coef(form.num_per_replica))

    def weighted_row(self, value: float,
                     form: tuple[list[float], float, dict[str, float]] | None = None) -> Row:
        """Keep the weighted objective at least at `value` (less 1e-9, relative).

        `form`: `weighted()`'s result when the caller has it already.
        """
        coef, t_coef, r_coef = form if form is not None else self.weighted()
        weights = {id(c): a for c, a in zip(self.problem.candidates, coef)}
        return Row("objective.weighted", "weighted objective bound", lambda c: weights[id(c)],
                   ">=", value - 1e-9 * max(1.0, abs(value)), t_coef=t_coef,
                   replica_coef=r_coef)

    def weighted(self) -> tuple[list[float], float, dict[str, float]]:
        """The weighted objective as one linear form: candidate, t and replica coefficients.

        A minimised term enters with a negative weight, so the form is always
        maximised.
        """
        total = [0.0] * len(self.problem.candidates)
        t_total = 0.0
        r_total: dict[str, float] = {}
        for term in self.objective.terms():
            coef, t_coef = self.coef(term)
            s = term.weight * (1.0 if term.sense == "maximize" else -1.0)
            total = [a + s * b for a, b in zip(total, coef)]
            t_total += s * t_coef
            for t, a in self.replica_coef(METRICS[term.metric].num_per_replica, s).items():
                r_total[t] = r_total.get(t, 0.0) + a
        return total, t_total, r_total

    # -- whole objective ----------------------------------------------------
    def solve(self, tie_break: bool) -> list[int]:
        """Run every stage of the objective, then the tie-break if asked; the final counts.

        Each finished stage adds a row that holds its term at its optimum (less its
        tolerance), so later stages cannot trade it away.  The tie-break is skipped
        above `TIE_BREAK_MAX_CANDIDATES` or once the deadline has passed.

        Raises
        ------
        StageStopped
            A stage ended without any assignment (infeasible, or out of time).
        """
        from solvers.backend import LinearObjective

        obj = self.objective
        if obj.mode == "weighted":
            coef, t_coef, r_coef = self.weighted()
            self.f.set_objective(LinearObjective(coef, "maximize", t_coef, r_coef))
            counts = self.run("weighted sum")
            self.bounds.append(self._bound)
            best = sum(k * a for k, a in zip(counts, coef)) + self.replica_total(r_coef)
            if t_coef:
                best += t_coef * metric_value(self.fleet(counts), Metric.min_goodput)
            self.f.add_row(self.weighted_row(best, (coef, t_coef, r_coef)))
        else:
            terms = obj.terms()
            for i, term in enumerate(terms):
                if i > 0 and deadline.expired():
                    self.out_of_time(terms[i:])
                    break
                value = self.optimize_term(term)
                self.stage_values.append(value)
                self.f.add_row(self.bound_row(term, value, term.tolerance))
        if tie_break and (len(self.problem.candidates) > TIE_BREAK_MAX_CANDIDATES
                          or self.method == "decomposition"):
            self.tie = "skipped"
        elif tie_break and deadline.expired():
            self.tie = "time_limit"
        elif tie_break:
            self.tie_break()
        return self.last

    def out_of_time(self, terms: list[Term]) -> None:
        """The deadline passed between lexicographic stages: the later terms keep the
        assignment found so far (feasible, held to the earlier terms), without a bound."""
        self.complete = False
        self.stopped = Termination.time_limit
        for term in terms:
            self.bounds.append(None)
            self.stage_values.append(self.value(term, self.last))

    def term_gaps(self, values: list[float]) -> list[float | None]:
        """Per objective term (one for a weighted sum): relative distance to its bound.

        A single or weighted objective is measured on the final assignment, so
        the gap covers the tie-break too.  A lexicographic term is measured when
        its stage ended: later stages may then spend its declared tolerance,
        which is the objective the user asked for, not a loss of optimality.
        """
        obj = self.objective
        if obj.mode == "weighted":
            total = sum((1 if t.sense == "maximize" else -1) * t.weight * v
                        for t, v in zip(obj.terms(), values))
            return [rel_gap(total, self.bounds[0] if self.bounds else None, "maximize")]
        if obj.mode == "lexicographic":
            values = self.stage_values
        return [rel_gap(v, b, t.sense)
                for t, v, b in zip(obj.terms(), values, self.bounds)]

    def ranks(self) -> list[float]:
        """Each candidate's rank within its pool (0 = first in (target, draft, quant, K) order).

        The tie-break minimises the summed rank, so equal optima resolve to the
        same assignment on every machine.
        """
        return config_ranks(self.problem)[0]

    def assignment(self, counts: list[int]) -> list[tuple[Candidate, int]]:
        """The (candidate, devices) pairs that `counts` uses, in candidate order."""
        return [(c, n) for c, n in zip(self.problem.candidates, counts) if n > 0]


def _not_proven_message(gap: float | None, stopped: Termination | None,
                        options: SolverOptions, why: str | None = None) -> str:
    why = why or ("the solver stopped at the time limit" if stopped is Termination.time_limit
           else f"the solver stopped ({stopped.value})" if stopped is not None
           else f"the requested gap is {options.rel_gap:g}"
           if options.rel_gap > PROVEN_REL_GAP else "Dinkelbach did not converge")
    within = "an unknown distance" if gap is None else f"at most {gap:.3%}" \
        if gap >= 1e-4 else f"at most {100 * gap:.2g}%"
    return f"not proven optimal: {why}; the objective is within {within} of the optimum"


def solve(
    spec: Spec,
    *,
    objective: Objective | None = None,
    only: set[str] | None = None,
    options: SolverOptions | None = None,
    tie_break: bool = True,
    prune: bool = True,
    diagnose: bool = True,
    load_blind: bool = False,
) -> Solution:
    """Pick a configuration for every pool of the spec (or of `only`).

    Batched verifiers (`targets[].verifier`) make the latency depend on the
    fleet's own load; those specs are solved by `_solve_under_load`.
    `load_blind` solves as if every verifier had its fixed `verify_latency_s`
    and per-token price (what the model without load would pick).
    """
    require_solver()
    options = options or SolverOptions()
    objective = objective or spec.objective
    if load_blind:
        spec = spec.load_blind()
    t0 = time.perf_counter()
    plans = plans_for(spec)
    if plans:
        sol = _solve_under_load(spec, objective, only, options, prune, plans, tie_break)
        sol.proven_within = LOAD_REL_GAP
    else:
        sol = _solve_fixed(spec, objective, only, options, prune, tie_break)
    if sol.status is Status.infeasible and diagnose:
        if plans:
            sol.diagnosis = _diagnose_under_load(spec, objective, only, options, plans)
        else:
            from solvers.diagnose import diagnose_infeasible  # lazy: Pyomo, start-up

            sol.diagnosis = diagnose_infeasible(spec, only=only, options=options)
    sol.time_s = time.perf_counter() - t0
    return sol


def _diagnose_under_load(spec: Spec, objective: Objective, only: set[str] | None,
                         options: SolverOptions, plans: list[VerifierPlan]) -> Diagnosis:
    """The relaxation diagnosis with batched verifiers, bracketed like the solve.

    On the optimistic load levels (every latency at its lightest) the elastic
    model gives the fewest constraints and the smallest relaxation any true fix
    needs; on the conservative levels, one that suffices at the true load.  The
    conservative fix is checked by solving the relaxed spec under load.  When it
    works and equals the optimistic one, it is the smallest fix; when it works,
    it is a fix and the optimistic one bounds how small a fix can be; otherwise
    only that bound is reported.
    """
    from solvers.diagnose import diagnose_infeasible, relaxed_spec  # lazy: Pyomo, start-up

    low = diagnose_infeasible(spec, only=only, options=options, plans=plans,
                              mode="optimistic")
    if not low.relaxations:
        return low
    fix = diagnose_infeasible(spec, only=only, options=options, plans=plans,
                              mode="conservative")
    works = False
    if fix.relaxations and not deadline.expired():
        check = solve(relaxed_spec(spec, fix), objective=objective, only=only,
                      options=options, diagnose=False)
        works = check.status in (Status.optimal, Status.feasible)
    at_least = " and ".join(f"{r.constraint} to {r.relax_to:.6g}" for r in low.relaxations)
    if works and _same_relaxation(low, fix):
        fix.message += " (at the fleet's true load: checked by solving the relaxed spec)"
        return fix
    if works:
        fix.message = fix.message.replace("smallest fix", "a fix at the fleet's true load") \
            + f"; no fix can relax less than: {at_least}"
        return fix
    low.message = ("infeasible; at least: relax " + at_least + " (a fix at the fleet's true "
                   "load was not confirmed: the load levels are coarse here; relax somewhat "
                   "more and solve again)")
    return low


def config_ranks(problem: Problem, also: Sequence[Candidate] = ()
                 ) -> tuple[list[float], dict[tuple[int, tuple[str, str, str, int]], float]]:
    """Each candidate's rank in its pool by (target, draft, quant, K); level copies share it.

    `also`: configurations to rank with their pool's even if the problem pruned them (an
    answer found on other levels).  Returns the ranks and the (pool, config) -> rank map.
    """
    out = [0.0] * len(problem.candidates)
    extra: dict[int, set[tuple[str, str, str, int]]] = {}
    for c in also:
        extra.setdefault(c.pool, set()).add(c.config)
    rank: dict[tuple[int, tuple[str, str, str, int]], float] = {}
    for d, idx in enumerate(problem.by_pool):
        keys = sorted({problem.candidates[i].config for i in idx} | extra.get(d, set()))
        rank.update({(d, key): float(r) for r, key in enumerate(keys)})
        for i in idx:
            out[i] = rank[(d, problem.candidates[i].config)]
    return out, rank


def _tie_break_under_load(spec: Spec, objective: Objective, only: set[str] | None,
                          options: SolverOptions, plans: list[VerifierPlan],
                          best: Settled) -> tuple[Settled, str, list[StageInfo]]:
    """Equal answers under load resolve to the least rank, as without load (bounded search).

    Each verifier's settled load becomes a level boundary (so an equal answer
    at that load fits the rows exactly) and its replicas are held; one MILP on
    the unpruned conservative copies keeps every term at least at the best
    answer's settled value and the summed rank of the chosen configurations
    below the best answer's, and minimises the rank under the same node cap as
    `Optimizer.tie_break`.  Its answer is settled at its true load and taken
    only if it is feasible there, at least as good and of smaller rank.  An
    equal answer at another load (the same cost with a shorter K, say) is found
    where the conservative levels certify it.  "exact" says no smaller-rank
    answer at the same replicas exists that they certify.
    """
    from solvers.backend import LinearObjective

    by_target = {p.target: p for p in plans}
    for st in best.states:  # T at exactly the answer's load: its equals fit the rows
        refine(by_target[st.target], [st.in_flight_per_replica], [])
    # unpruned: a configuration pruned as dominated may still tie on the objective, and
    # the least-rank answer is decided over every configuration
    pb = build_problem(spec, only=only, objective=objective, prune=False, plans=plans,
                       mode="conservative")
    if len(pb.candidates) > TIE_BREAK_MAX_CANDIDATES:
        return best, "skipped", []
    ranks, rank_of = config_ranks(pb, [c for c, _ in best.assignment])
    best_rank = sum(n * rank_of[(c.pool, c.config)] for c, n in best.assignment)
    if best_rank == 0 or pb.empty_pools():
        return best, "exact", []
    opt = Optimizer(pb, objective, options)
    if objective.mode == "weighted":
        opt.f.add_row(opt.weighted_row(best.key[0]))
    else:
        for term in objective.terms():
            opt.f.add_row(opt.bound_row(term, metric_value(best.fleet, term.metric), 0.0))
    for st in best.states:
        for sense in ("<=", ">="):
            opt.f.add_row(Row("tie_break", f"the replicas of {st.target}", lambda c: 0.0,
                              sense, float(st.replicas), replica_coef={st.target: 1.0},
                              internal=True))
    by_id = {id(c): r for c, r in zip(pb.candidates, ranks)}
    opt.f.add_row(Row("tie_break", "rank bound", lambda c: by_id[id(c)], "<=", best_rank - 1))
    opt.f.set_objective(LinearObjective(ranks, "minimize"))
    with deadline.protected():
        r = opt.session.solve(mip_max_nodes=TIE_BREAK_NODES)
    stages = [StageInfo("tie-break", r.termination.value, r.time_s, r.gap)]
    if not r.has_solution:
        done = r.termination is Termination.infeasible
        return best, "exact" if done else "node_limit", stages
    got = _settle(pb, objective, opt, opt.f.counts())
    label = "exact" if r.proven_optimal else "node_limit"
    if got is None or any(a < b - 1e-9 * max(1.0, abs(b)) for a, b in zip(got.key, best.key)):
        return best, "node_limit", stages
    return got, label, stages


def _same_relaxation(a: Diagnosis, b: Diagnosis) -> bool:
    """The same constraints relaxed to the same limits (to 1e-6, relative)."""
    x = {r.constraint: r.relax_to for r in a.relaxations}
    y = {r.constraint: r.relax_to for r in b.relaxations}
    return x.keys() == y.keys() and all(
        abs(x[k] - y[k]) <= 1e-6 * max(1.0, abs(x[k])) for k in x)


def _solve_fixed(spec: Spec, objective: Objective, only: set[str] | None,
                 options: SolverOptions, prune: bool, tie_break: bool) -> Solution:
    """Every latency fixed: one model, solved exactly."""
    deadline.step("building the candidates")
    problem = build_problem(spec, only=only, objective=objective, prune=prune)
    sol = Solution(Status.error, objective, problem)
    if not problem.pools:
        raise UsageError("no device pool selected")

    if problem.empty_pools():
        sol.status = Status.infeasible
        return sol
    if deadline.expired():
        return _timed_out(sol, "building the candidates")
    deadline.step("building the model")
    opt = Optimizer(problem, objective, options)
    sol.build_s = opt.build_s
    if deadline.expired():
        return _timed_out(sol, "building the model")
    deadline.step("solving")
    try:
        counts = opt.solve(tie_break)
    except StageStopped as stop:
        term = stop.result.termination
        sol.status = {Termination.infeasible: Status.infeasible,
                      Termination.time_limit: Status.time_limit}.get(term, Status.error)
        sol.message = f"solver stopped: {term.value}"
    else:
        sol.assignment = opt.assignment(counts)
        sol.fleet = fleet_metrics(sol.assignment)
        sol.objective_values = [metric_value(sol.fleet, t.metric) for t in objective.terms()]
        sol.term_gaps = opt.term_gaps(sol.objective_values)
        known = [g for g in sol.term_gaps if g is not None]
        sol.gap = max(known) if len(known) == len(sol.term_gaps) else None
        sol.proven_optimal = (opt.complete and sol.gap is not None
                              and sol.gap <= PROVEN_REL_GAP)
        sol.status = Status.optimal if sol.proven_optimal else Status.feasible
        if not sol.proven_optimal:
            sol.message = _not_proven_message(sol.gap, opt.stopped, options)
        broken = violated_constraints(problem, sol.assignment)
        if broken:
            sol.status = Status.error
            sol.message = "solver returned an assignment that breaks " + ", ".join(broken)
    sol.stages = opt.stages
    sol.tie_break = opt.tie
    return sol


def _timed_out(sol: Solution, during: str) -> Solution:
    """No MILP ran: the request's deadline passed while `during`."""
    sol.status = Status.time_limit
    sol.message = (f"the time limit of {deadline.limit() or 0:g} s was reached while {during} "
                   f"({len(sol.problem.candidates):,} candidates); no assignment was searched "
                   "for: raise time_limit")
    return sol


def _settle(problem: Problem, objective: Objective, opt: Optimizer,
            counts: list[int]) -> Settled | None:
    """The MILP's choice at its true fixed point, if it meets every constraint there."""
    got = evaluate_settled(problem, objective, opt.assignment(counts),
                           opt.f.replica_counts())
    if got is None or got.broken:
        return None
    slos = {d.name: problem.spec.slo_for(d) for d in problem.spec.devices}
    if any(slo_violations(c, slos[c.device]) for c, _ in got.assignment):
        return None
    return got


def _solve_under_load(spec: Spec, objective: Objective, only: set[str] | None,
                      options: SolverOptions, prune: bool,
                      plans: list[VerifierPlan], tie_break: bool = True) -> Solution:
    """Batched verifiers: bracket the true optimum between two level models, refine, settle.

    Each round solves the conservative model (its answer, settled at its
    true load, is feasible and at least as good as it assumed) and the
    optimistic one (its bound is at least the true optimum), keeps the best
    settled answer of both, and stops when the bound is within
    `LOAD_REL_GAP` of it; otherwise the levels around both answers' loads are
    refined.  The gap reported is that certified distance.
    """
    structural = enumerate_candidates(spec, only)
    if _level_model_size(structural, plans) > LEVEL_MODEL_MAX_COPIES:
        return _solve_by_boxes(spec, objective, only, options, prune, plans, tie_break,
                               structural)
    best: Settled | None = None
    stages: list[StageInfo] = []
    bound: float | None = None
    complete = True
    build_s = 0.0
    problem: Problem | None = None
    first = objective.terms()[0]
    relaxed_found = False  # the optimistic model had an answer: not proven infeasible
    timed_out = False  # the request's deadline ended the refinement
    for _ in range(LOAD_MAX_ROUNDS):
        loads: dict[str, list[float]] = {p.target: [] for p in plans}
        chosen: dict[str, list[int]] = {p.target: [] for p in plans}
        for mode in ("conservative", "optimistic"):
            if problem is not None and deadline.expired():
                timed_out = True
                break
            deadline.step(f"building the {mode} load model")
            pb = build_problem(spec, only=only, objective=objective, prune=prune,
                               plans=plans, mode=mode)
            if not pb.pools:
                raise UsageError("no device pool selected")
            problem = problem or pb
            if pb.empty_pools():
                if mode == "optimistic":  # not even at the lightest load: proven infeasible
                    return Solution(Status.infeasible, objective, pb, stages=stages)
                continue  # no conservative copy fits yet: the refined levels may give one
            if deadline.expired():
                timed_out = True
                break
            opt = Optimizer(pb, objective, options)
            deadline.step(f"solving the {mode} load model")
            build_s += opt.build_s
            try:
                counts = opt.solve(tie_break=False)
            except StageStopped as stop:
                stages.extend(opt.stages)
                term = stop.result.termination
                if term is Termination.infeasible and mode == "optimistic":
                    sol = Solution(Status.infeasible, objective, pb, stages=stages)
                    sol.message = "no assignment and replica count meets the constraints " \
                                  "at any load the verifiers can carry"
                    return sol
                if term is not Termination.infeasible:
                    complete = False
                continue
            stages.extend(opt.stages)
            complete = complete and opt.complete
            for p in plans:
                chosen[p.target].extend({c.level for c, n in opt.assignment(counts)
                                         if c.target == p.target})
            if mode == "optimistic":
                relaxed_found = True
                b = opt.bounds[0] if opt.bounds else None
                if b is not None:
                    sign = 1.0 if objective.mode == "weighted" or first.sense == "maximize" \
                        else -1.0
                    bound = sign * b
            got = _settle(pb, objective, opt, counts)
            if got is None:
                continue
            for st in got.states:
                loads[st.target].append(st.in_flight_per_replica)
            if best is None or got.key > best.key:
                best = got
        if timed_out:
            complete = False
            break
        gap = None if best is None else rel_gap(best.key[0], bound, "maximize")
        if gap is not None and gap <= LOAD_REL_GAP:
            break
        if not any([refine(p, loads[p.target], chosen[p.target]) for p in plans]):
            break
    assert problem is not None
    sol = Solution(Status.error, objective, problem, stages=stages, build_s=build_s)
    sol.tie_break = "off"
    if best is None and timed_out:
        return _timed_out(sol, "refining the load levels")
    if best is None:
        sol.status = Status.infeasible if complete and not relaxed_found else Status.error
        sol.message = ("no assignment found that meets the constraints at its true load "
                       f"after {LOAD_MAX_ROUNDS} refinements of the load levels")
        return sol
    return _finish_under_load(sol, spec, objective, only, options, plans, best, bound,
                              complete, timed_out, tie_break,
                              {p.target: len(p.levels) for p in plans},
                              "refining the load levels (at most "
                              f"{LOAD_MAX_ROUNDS} rounds) left the bound more than "
                              f"{LOAD_REL_GAP:g} away")


def _finish_under_load(sol: Solution, spec: Spec, objective: Objective,
                       only: set[str] | None, options: SolverOptions,
                       plans: list[VerifierPlan], best: Settled, bound: float | None,
                       complete: bool, timed_out: bool, tie_break: bool,
                       levels: dict[str, int], why_open: str) -> Solution:
    """The tie-break, then the answer and its certified gap (`bound`: larger is better)."""
    if tie_break and not timed_out:
        if deadline.expired():
            sol.tie_break = "time_limit"
        else:
            best, sol.tie_break, tie_stages = _tie_break_under_load(
                spec, objective, only, options, plans, best)
            sol.stages.extend(tie_stages)
    sol.assignment = best.assignment
    sol.fleet = best.fleet
    sol.verifiers = best.states
    sol.objective_values = [metric_value(best.fleet, t.metric) for t in objective.terms()]
    # key[0] is the first term (or the weighted sum), larger is better; so is `bound`.
    gap = rel_gap(best.key[0], bound, "maximize")
    sol.gap = gap
    sol.term_gaps = [gap]
    sol.load_levels = levels
    sol.proven_optimal = complete and gap is not None and gap <= LOAD_REL_GAP
    sol.status = Status.optimal if sol.proven_optimal else Status.feasible
    if not sol.proven_optimal:
        sol.message = _not_proven_message(
            gap, None if complete else Termination.time_limit if timed_out
            else Termination.unknown, options, None if not complete else why_open)
    return sol


def _run_box(problem: Problem, objective: Objective, options: SolverOptions) -> BoxRun:
    """One box's MILP for `LoadSearch`: its bound, its answer settled, the load it assumed."""
    opt = Optimizer(problem, objective, options)
    try:
        counts = opt.solve(tie_break=False)
    except StageStopped as stop:
        infeasible = stop.result.termination is Termination.infeasible
        return BoxRun("infeasible" if infeasible else "stopped", opt.stages, opt.build_s)
    first = objective.terms()[0]
    sign = 1.0 if objective.mode == "weighted" or first.sense == "maximize" else -1.0
    b = opt.bounds[0] if opt.bounds else None
    reps = opt.f.replica_counts()
    chosen = opt.assignment(counts)
    assumed = tuple(
        sum(n * c.in_flight for c, n in chosen if c.target == p.target) / reps[p.target]
        if reps.get(p.target) else None for p in problem.verifiers)
    return BoxRun("solved", opt.stages, opt.build_s, None if b is None else sign * b,
                  _settle(problem, objective, opt, counts), assumed)


def _level_model_size(structural: Sequence[PoolCandidates], plans: list[VerifierPlan]
                      ) -> int:
    """About how many candidate copies the level model would hold (before pruning)."""
    per_target: dict[str, int] = {}
    for pc in structural:
        for c in pc.candidates:
            per_target[c.target] = per_target.get(c.target, 0) + 1
    levels = {p.target: len(p.levels) for p in plans}
    return sum(n * levels.get(t, 1) for t, n in per_target.items())


def _solve_by_boxes(spec: Spec, objective: Objective, only: set[str] | None,
                    options: SolverOptions, prune: bool, plans: list[VerifierPlan],
                    tie_break: bool, structural: Sequence[PoolCandidates]) -> Solution:
    """Large level models: the search over boxes of load (`solvers.load_search`)."""
    if not structural:
        raise UsageError("no device pool selected")
    found = LoadSearch(plans, _box_solver(spec, objective, only, options, prune, plans,
                                          structural)).run()
    problem = found.problem or build_problem(spec, only=only, objective=objective,
                                             prune=prune, plans=plans, structural=structural)
    sol = Solution(Status.error, objective, problem, stages=found.stages,
                   build_s=found.build_s)
    sol.tie_break = "off"
    if found.best is None and found.timed_out:
        return _timed_out(sol, "searching the verifiers' loads")
    if found.best is None:
        sol.status = Status.infeasible if found.infeasible else Status.error
        sol.message = ("no assignment and replica count meets the constraints at any load "
                       "the verifiers can carry" if found.infeasible else
                       "no assignment found that meets the constraints at its true load "
                       f"in {found.boxes} boxes of load")
        return sol
    # the tie-break's unpruned level model has more than LEVEL_MODEL_MAX_COPIES copies
    # before SLOs (that is why the boxes ran): building it alone took minutes at 1,000
    # pools, mostly to find it above TIE_BREAK_MAX_CANDIDATES and skip itself
    out = _finish_under_load(sol, spec, objective, only, options, plans, found.best,
                             found.bound, found.complete, found.timed_out, False,
                             {p.target: found.boxes for p in plans},
                             f"the search over boxes of load left the bound more than "
                             f"{LOAD_REL_GAP:g} away")
    if tie_break:
        out.tie_break = "skipped"
    return out


def _box_solver(spec: Spec, objective: Objective, only: set[str] | None,
                options: SolverOptions, prune: bool, plans: list[VerifierPlan],
                structural: Sequence[PoolCandidates], arrays: bool | None = None
                ) -> BoxSolver:
    """Boxes on arrays by decomposition where the arrays represent the problem and the
    fleet has at least `ARRAY_MIN_POOLS` pools (or `arrays`); else a problem of
    candidate copies and one MILP per box (`solvers.load_arrays`: why).

    The decomposition's bound is the LP's: within a few devices' worth of the integer
    optimum on a large fleet, but on a handful of pools more than the search's gap,
    which no split of the boxes closes; there the MILP's bound is the one to split on.
    """
    from solvers.load_arrays import BoxArrays, NotAffine
    from solvers.load_boxes import ArrayBoxes

    if arrays is None:
        arrays = len(structural) >= ARRAY_MIN_POOLS
    if arrays and options.backend != "pyomo" and options.method != "milp":
        try:
            return ArrayBoxes(BoxArrays(spec, objective, structural, plans), objective,
                              options)
        except NotAffine:
            pass
    return MilpBoxes(spec, objective, only, options, prune, plans, structural, _run_box)
