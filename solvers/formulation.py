"""The fleet MILP in Pyomo, as an ordered list of small `define_*` steps.

This is the `pyomo` backend (and the base of the diagnosis); the default
backend, `solvers.highs_model`, builds the same model directly in HiGHS.

Variables: x[i] = how many devices of candidate i's pool run candidate i
(integer, so a pool may be split); z[v] = variant v (a (draft, quant) file)
is shipped; t = the smallest per-device goodput in use, with u[i] = candidate
i is in use (only when a fairness term needs it).

One model serves every objective: objectives are linear forms over x (and
t) handed in by `solvers.solve`, which also adds rows for lexicographic
stages, ratio bounds and the tie-break.  Ratio objectives are never
approximated here: Dinkelbach in `solvers.solve` turns them into a sequence
of linear objectives on this same model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import LinearExpression

from configspec_opt.problem import Problem, Row
from solvers.backend import LinearObjective, Sense

__all__ = ["STEPS", "Formulation", "LinearObjective", "Sense", "build"]


@dataclass
class Formulation:
    """The Pyomo model of one problem and the handles the solve stages need.

    `xs[i]` is candidate i's count variable; `replicas` maps a batched target to
    its replica variable.  The fairness variables (t, u) exist only when
    `fairness` is true.
    """

    problem: Problem
    model: Any
    fairness: bool
    xs: list[Any] = field(default_factory=list)
    replicas: dict[str, Any] = field(default_factory=dict)

    def linear(self, coef: Sequence[float], t_coef: float = 0.0,
               replica_coef: dict[str, float] | None = None) -> Any:
        """sum a_i x_i + t_coef * t + replica terms as a Pyomo expression; zero terms are left out.

        Raises
        ------
        ValueError
            `t_coef` is non-zero on a model built without the fairness variables.
        """
        pairs = [(a, x) for a, x in zip(coef, self.xs) if a != 0.0]
        if t_coef:
            if not self.fairness:
                raise ValueError("a term on the minimum goodput needs the fairness variables")
            pairs.append((t_coef, self.model.t))
        for target, a in (replica_coef or {}).items():
            if a != 0.0 and target in self.replicas:
                pairs.append((a, self.replicas[target]))
        return LinearExpression(constant=0.0, linear_coefs=[float(a) for a, _ in pairs],
                                linear_vars=[x for _, x in pairs])

    def row_constraint(self, row: Row) -> Any:
        """The row, scaled up when its numbers are small.

        HiGHS's feasibility tolerances are absolute (1e-6 for MIP rows): a budget
        of $0.03/h would be loose by 3e-5 relative.  Rows whose largest number is
        below 1 are scaled to unit size; larger rows are left alone, where an
        absolute 1e-6 is already a smaller relative error.
        """
        coef = [row.coef(c) for c in self.problem.candidates]
        size = self.problem.row_size(row)
        scale = size if 0.0 < size < 1.0 else 1.0
        expr = self.linear([a / scale for a in coef], row.t_coef / scale,
                           {t: a / scale for t, a in row.replica_coef.items()})
        rhs = row.rhs / scale
        return expr <= rhs if row.sense == "<=" else expr >= rhs

    def set_objective(self, obj: LinearObjective) -> None:
        """Replace the model's objective (a stage changes it; rows added earlier stay)."""
        m = self.model
        if hasattr(m, "obj"):
            m.del_component("obj")
        m.obj = pyo.Objective(
            expr=self.linear(obj.coef, obj.t_coef, obj.replica_coef),
            sense=pyo.maximize if obj.sense == "maximize" else pyo.minimize)

    def add_row(self, row: Row) -> Any:
        """Add a row (a stage's bound, a tie-break bound) that holds for every later run."""
        return self.model.extra.add(self.row_constraint(row))

    def counts(self) -> list[int]:
        """The last solution's devices per candidate, rounded (HiGHS returns near-integers)."""
        return [round(pyo.value(x)) for x in self.xs]

    def replica_counts(self) -> dict[str, int]:
        """The last solution's replicas per batched target, rounded."""
        return {t: round(pyo.value(r)) for t, r in self.replicas.items()}


def define_variables(f: Formulation) -> None:
    p, m = f.problem, f.model
    n = len(p.candidates)
    m.x = pyo.Var(range(n), domain=pyo.NonNegativeIntegers,
                  bounds=lambda _m, i: (0, p.pools[p.candidates[i].pool].count))
    f.xs = [m.x[i] for i in range(n)]


def define_assignment(f: Formulation) -> None:
    """Every device of every pool runs exactly one configuration."""
    p, m = f.problem, f.model
    m.assign = pyo.Constraint(
        range(len(p.pools)),
        rule=lambda _m, d: LinearExpression(
            constant=0.0, linear_coefs=[1.0] * len(p.by_pool[d]),
            linear_vars=[f.xs[i] for i in p.by_pool[d]]) == p.pools[d].count)


def define_variants(f: Formulation) -> None:
    """z[v] >= share of pool d on variant v, for every pool; sum z <= max."""
    limit = f.problem.max_variants
    if limit is not None:
        f.model.distinct = pyo.Constraint(expr=variant_count(f) <= limit)


def variant_count(f: Formulation) -> Any:
    """Binaries z[v] linked to the pools' use of each variant; returns sum z.

    Shared with the diagnosis, which bounds the same sum elastically.
    """
    p, m = f.problem, f.model
    variants = p.variants
    vidx = {v: j for j, v in enumerate(variants)}
    m.z = pyo.Var(range(len(variants)), domain=pyo.Binary)
    links: list[tuple[int, int, list[int]]] = []
    for d, idx in enumerate(p.by_pool):
        groups: dict[int, list[int]] = {}
        for i in idx:
            groups.setdefault(vidx[p.candidates[i].variant], []).append(i)
        links.extend((d, j, members) for j, members in sorted(groups.items()))
    m.variant_link = pyo.Constraint(
        range(len(links)),
        rule=lambda _m, r: LinearExpression(
            constant=0.0,
            linear_coefs=[1.0] * len(links[r][2]) + [-float(p.pools[links[r][0]].count)],
            linear_vars=[f.xs[i] for i in links[r][2]] + [m.z[links[r][1]]]) <= 0)
    return sum(m.z[j] for j in range(len(variants)))


def define_replicas(f: Formulation) -> None:
    """Batched verifiers: replicas r[t], one load level per target (y), x only at that level."""
    p, m = f.problem, f.model
    if not p.verifiers:
        return
    m.replicas = pyo.Var(range(len(p.verifiers)), domain=pyo.NonNegativeIntegers,
                         bounds=lambda _m, j: (p.verifiers[j].verifier.replicas.min,
                                               p.verifiers[j].verifier.replicas.max))
    f.replicas = {plan.target: m.replicas[j] for j, plan in enumerate(p.verifiers)}
    keys = [(j, level) for j, plan in enumerate(p.verifiers)
            for level in range(1, len(plan.levels) + 1)]
    m.level = pyo.Var(keys, domain=pyo.Binary)
    m.one_level = pyo.Constraint(
        range(len(p.verifiers)),
        rule=lambda _m, j: sum(m.level[j, lv] for lv in range(1, len(p.verifiers[j].levels) + 1))
        <= 1)
    index = {plan.target: j for j, plan in enumerate(p.verifiers)}
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, c in enumerate(p.candidates):
        if c.level > 0:
            groups.setdefault((c.pool, index[c.target], c.level), []).append(i)
    links = sorted(groups.items())
    # one row per (pool, level): tighter than one per candidate
    m.at_level = pyo.Constraint(
        range(len(links)),
        rule=lambda _m, r: sum(f.xs[i] for i in links[r][1])
        <= p.pools[links[r][0][0]].count * m.level[links[r][0][1], links[r][0][2]])


def define_fleet_rows(f: Formulation) -> None:
    p, m = f.problem, f.model
    m.fleet = pyo.ConstraintList()
    for row in p.rows:
        m.fleet.add(f.row_constraint(row))


def define_fairness(f: Formulation) -> None:
    """t <= goodput of every candidate in use (u[i] = 1 when x[i] > 0)."""
    if not f.fairness:
        return
    p, m = f.problem, f.model
    gmax = max((c.goodput_tok_s for c in p.candidates), default=0.0)
    n = len(p.candidates)
    m.t = pyo.Var(bounds=(0.0, gmax))
    m.u = pyo.Var(range(n), domain=pyo.Binary)
    m.use = pyo.Constraint(
        range(n), rule=lambda _m, i: m.x[i] <= p.pools[p.candidates[i].pool].count * m.u[i])
    m.floor = pyo.Constraint(
        range(n), rule=lambda _m, i: m.t <= p.candidates[i].goodput_tok_s
        + (gmax - p.candidates[i].goodput_tok_s) * (1 - m.u[i]))


def define_extra(f: Formulation) -> None:
    f.model.extra = pyo.ConstraintList()


STEPS: tuple[Callable[[Formulation], None], ...] = (
    define_variables,
    define_assignment,
    define_variants,
    define_replicas,
    define_fleet_rows,
    define_fairness,
    define_extra,
)


def build(problem: Problem, *, fairness: bool) -> Formulation:
    """The Pyomo model of `problem`, by running every step of `STEPS` in order.

    `fairness` adds t and u[i] (needed only by a min_goodput term).
    """
    f = Formulation(problem, pyo.ConcreteModel(name=problem.spec.name), fairness)
    for step in STEPS:
        step(f)
    return f
