"""Why a spec is infeasible, and the smallest change that would fix it.

An elastic copy of the model gives every relaxable constraint (each
per-device SLO as written, each fleet row, the variant limit) a slack and an
on/off switch.  First the number of constraints switched on is minimised,
then, with that number fixed, the sum of slacks relative to each limit: the
answer names the fewest constraints to relax and by how little.  What cannot
be relaxed by a number (a pool with no profile, nothing that fits memory,
pins that exclude everything) is reported as such, without a solve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyomo.environ as pyo

from configspec_opt.constraint_families import (
    DeviceSlos,
    Relaxable,
    spec_with_limit,
)
from configspec_opt.problem import Problem, build_problem
from configspec_opt.results import DiagnosisJSON, RelaxationJSON, StructuralJSON
from configspec_opt.spec import Spec
from configspec_opt.verifiers import Mode, VerifierPlan
from solvers import deadline
from solvers.adapter import HighsSession, SolverOptions
from solvers.formulation import (
    Formulation,
    define_assignment,
    define_replicas,
    define_variables,
    variant_count,
)
from solvers.status import Termination


@dataclass
class Relaxation:
    """One constraint to relax, and the value that makes the spec feasible.

    `limit` is the value written in the spec, `relax_to` the new one (in
    `unit`); `constraint` is the spec path to change, `label` how a person reads it.
    """

    constraint: str
    label: str
    limit: float
    relax_to: float
    unit: str
    integer: bool = False  # a count: written back rounded

    def to_dict(self) -> RelaxationJSON:
        """The relaxation as `solve --json` reports it under `diagnosis.relaxations`."""
        return {"constraint": self.constraint, "label": self.label, "limit": self.limit,
                "relax_to": self.relax_to, "unit": self.unit}


@dataclass
class Diagnosis:
    """Why a spec is infeasible: the fewest constraints to relax, or pools that cannot run.

    `structural` lists pools with no candidate at all (no number fixes those);
    `conflicts_with` names the unrelaxed constraints that are tight at the
    relaxed answer (what the relaxation runs into); `message` is the sentence
    to show.  A diagnosis cut short by the deadline has only a message.
    """

    relaxations: list[Relaxation] = field(default_factory=list)
    conflicts_with: list[str] = field(default_factory=list)
    structural: list[StructuralJSON] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> DiagnosisJSON:
        """The diagnosis as `solve --json` and the HTTP API report it."""
        return {"message": self.message,
                "relaxations": [r.to_dict() for r in self.relaxations],
                "conflicts_with": self.conflicts_with,
                "structural": self.structural}


OUT_OF_TIME = "not diagnosed: the time limit was reached first (raise time_limit for a diagnosis)"


def diagnose_infeasible(
    spec: Spec, *, only: set[str] | None = None, options: SolverOptions | None = None,
    plans: Sequence[VerifierPlan] = (), mode: Mode = "conservative",
) -> Diagnosis:
    """Within the request's deadline (`solvers.deadline`): past it, a diagnosis says it was
    not made, or that the relaxation it names is not proven the smallest.

    With batched verifiers (`plans`) the elastic model is the load-level model in
    `mode`: replicas are decisions and every candidate runs at its level's latency.
    The optimistic levels give a relaxation no smaller than any true fix needs
    (a lower bound), the conservative ones a relaxation that suffices at the true
    load; `solvers.solve` combines the two.
    """
    if deadline.expired():
        return Diagnosis(message=OUT_OF_TIME)
    deadline.step("diagnosing the infeasible spec")
    problem = build_problem(spec, only=only, prune=False, apply_slo=False, plans=plans,
                            mode=mode)
    structural: list[StructuralJSON] = [
        {"device": pc.device.name, "reasons": list(pc.excluded or ["no candidate"])}
        for pc in problem.structural if not pc.candidates
    ]
    if structural:
        names = ", ".join(str(s["device"]) for s in structural)
        return Diagnosis(structural=structural, message=(
            f"pool{'s' if len(structural) > 1 else ''} {names} ha"
            f"{'ve' if len(structural) > 1 else 's'} no candidate configuration at all; "
            "no numeric relaxation can fix that"))

    empty = problem.empty_pools()
    if empty:  # only with batched verifiers: no copy of the pool fits a load level
        names = ", ".join(problem.pools[d].name for d in empty)
        return Diagnosis(message=f"not diagnosed on the {mode} load levels: no configuration "
                         f"of {names} fits them")
    relax = DeviceSlos(spec).elastic(problem) + [
        r for fam in problem.families for r in fam.elastic(problem)]
    f = elastic_model(problem, relax)
    m = f.model
    n_r = len(relax)
    if deadline.expired():
        return Diagnosis(message=OUT_OF_TIME)
    session = HighsSession(m, options or SolverOptions())
    m.obj = pyo.Objective(expr=sum(m.r[j] for j in range(n_r)), sense=pyo.minimize)
    with deadline.protected():
        first = session.solve()
    if not first.has_solution:
        if first.termination is Termination.time_limit:
            return Diagnosis(message=OUT_OF_TIME)
        where = (" within what the batched verifiers can carry (replicas.max x max_batch "
                 "requests in flight)" if problem.verifiers else "")
        return Diagnosis(message="even with every constraint relaxed no assignment exists"
                         f"{where} (solver: {first.termination.value})")
    fewest = round(sum(pyo.value(m.r[j]) for j in range(n_r)))
    m.fewest = pyo.Constraint(expr=sum(m.r[j] for j in range(n_r)) <= fewest)
    m.del_component("obj")
    m.obj = pyo.Objective(expr=sum(m.s[j] for j in range(n_r)), sense=pyo.minimize)
    with deadline.protected():
        second = session.solve()
    minimal = Termination.time_limit not in (first.termination, second.termination)

    out = Diagnosis()
    relaxed = set()
    assignment = [(c, n) for c, n in zip(problem.candidates, f.counts()) if n > 0]
    replicas = f.replica_counts()
    plans_by_target = {p.target: p for p in problem.verifiers}
    for j, r in enumerate(relax):
        s = pyo.value(m.s[j])
        if pyo.value(m.r[j]) < 0.5 or s <= 1e-12:
            continue
        relaxed.add(r.key)
        out.relaxations.append(Relaxation(
            r.key, r.label, r.limit, r.relax_to(s, assignment, replicas, plans_by_target),
            r.unit, r.integer))
    for fam in problem.families:
        if fam.key not in relaxed:
            out.conflicts_with.extend(fam.tight(problem, assignment, replicas))
    parts = [f"{r.constraint} from {r.limit:g} to {r.relax_to:.6g}" for r in out.relaxations]
    out.message = ("infeasible; smallest fix: relax " if minimal else
                   "infeasible; a fix (the time limit stopped the search for the smallest): "
                   "relax ") + " and ".join(parts)
    if out.conflicts_with:
        out.message += f" (it conflicts with {', '.join(out.conflicts_with)})"
    return out


def elastic_model(problem: Problem, relax: list[Relaxable]) -> Formulation:
    """The assignment model with every limit in `relax` elastic.

    Each relaxable j gets a slack s[j] >= 0 (in units of its scale) and a switch
    r[j] (s[j] = 0 unless r[j] = 1); the slack widens its rows, lets the
    candidates that miss its SLO by at most s[j] run, or raises the variant limit.
    """
    f = Formulation(problem, pyo.ConcreteModel(name="elastic"), fairness=False)
    define_variables(f)
    define_assignment(f)
    define_replicas(f)
    m = f.model
    m.load_levels = pyo.ConstraintList()  # a batched verifier's levels are never relaxed
    for row in problem.rows:
        if row.internal:
            m.load_levels.add(f.row_constraint(row))
    cands = problem.candidates
    n_r = len(relax)
    m.s = pyo.Var(range(n_r), domain=pyo.NonNegativeReals)
    m.r = pyo.Var(range(n_r), domain=pyo.Binary)
    m.switch = pyo.Constraint(
        range(n_r), rule=lambda _m, j: m.s[j] <= relax[j].big_m / relax[j].scale * m.r[j])
    m.elastic = pyo.ConstraintList()
    users = sorted({i for r in relax for i, _ in r.misses})
    m.u = pyo.Var(users, domain=pyo.Binary)
    for i in users:
        m.elastic.add(f.xs[i] <= problem.pools[cands[i].pool].count * m.u[i])
    for j, r in enumerate(relax):
        for i, miss in r.misses:
            m.elastic.add(m.s[j] >= miss / r.scale * m.u[i])
    for j, r in enumerate(relax):
        for row in r.rows:
            expr = f.linear([row.coef(c) / r.scale for c in cands], 0.0,
                            {t: a / r.scale for t, a in row.replica_coef.items()})
            rhs = row.rhs / r.scale
            m.elastic.add(expr <= rhs + m.s[j] if row.sense == "<=" else expr >= rhs - m.s[j])
    for j, r in enumerate(relax):
        if r.kind == "variants":
            m.distinct_elastic = pyo.Constraint(
                expr=variant_count(f) <= r.limit + r.scale * m.s[j])
    return f


def relaxed_spec(spec: Spec, diagnosis: Diagnosis) -> Spec:
    """The spec with every relaxation of `diagnosis` applied (what a user would commit)."""
    data = spec.model_dump(exclude_none=True)
    for r in diagnosis.relaxations:
        spec_with_limit(data, r.constraint, r.relax_to, r.integer)
    return Spec.model_validate(data)
