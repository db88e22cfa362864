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

from dataclasses import asdict, dataclass, field
from typing import Any

import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import LinearExpression

from configspec_opt.candidates import SLO_FIELDS, slo_violations
from configspec_opt.fleet import row_activity
from configspec_opt.problem import Row, build_problem
from configspec_opt.spec import Spec
from solvers import deadline
from solvers.adapter import HighsSession, SolverOptions
from solvers.formulation import Formulation, define_assignment, define_variables
from solvers.status import Termination

SLO_UNITS = {"min_goodput_tok_s": "tok/s", "max_energy_j_per_tok": "J/tok",
             "min_cost_efficiency_tok_per_usd": "tok/$", "max_power_w": "W"}


@dataclass
class Relaxation:
    constraint: str
    label: str
    limit: float
    relax_to: float
    unit: str


@dataclass
class Diagnosis:
    relaxations: list[Relaxation] = field(default_factory=list)
    conflicts_with: list[str] = field(default_factory=list)
    structural: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message,
                "relaxations": [asdict(r) for r in self.relaxations],
                "conflicts_with": self.conflicts_with,
                "structural": self.structural}


@dataclass
class _Relaxable:
    key: str
    label: str
    unit: str
    limit: float
    direction: int  # +1: relaxing raises the limit, -1: lowers it
    big_m: float
    scale: float
    row: Row | None = None


def _slo_source(spec: Spec, device_name: str, fld: str) -> tuple[str, float] | None:
    for i, d in enumerate(spec.devices):
        if d.name == device_name and d.slo is not None and getattr(d.slo, fld) is not None:
            return f"devices[{i}].slo.{fld}", float(getattr(d.slo, fld))
    v = getattr(spec.constraints.per_device, fld)
    return (f"constraints.per_device.{fld}", float(v)) if v is not None else None


OUT_OF_TIME = "not diagnosed: the time limit was reached first (raise time_limit for a diagnosis)"


def diagnose_infeasible(
    spec: Spec, *, only: set[str] | None = None, options: SolverOptions | None = None
) -> Diagnosis:
    """Within the request's deadline (`solvers.deadline`): past it, a diagnosis says it was
    not made, or that the relaxation it names is not proven the smallest."""
    if deadline.expired():
        return Diagnosis(message=OUT_OF_TIME)
    deadline.step("diagnosing the infeasible spec")
    problem = build_problem(spec, only=only, prune=False, apply_slo=False)
    structural = [
        {"device": pc.device.name, "reasons": pc.excluded or ["no candidate"]}
        for pc in problem.structural if not pc.candidates
    ]
    if structural:
        names = ", ".join(str(s["device"]) for s in structural)
        return Diagnosis(structural=structural, message=(
            f"pool{'s' if len(structural) > 1 else ''} {names} ha"
            f"{'ve' if len(structural) > 1 else 's'} no candidate configuration at all; "
            "no numeric relaxation can fix that"))

    f = Formulation(problem, pyo.ConcreteModel(name="elastic"), fairness=False)
    define_variables(f)
    define_assignment(f)
    m = f.model
    cands = problem.candidates
    relax: list[_Relaxable] = []
    slo_rows: dict[str, list[tuple[int, float]]] = {}
    slo_limits: dict[str, float] = {}
    for i, c in enumerate(cands):
        device = problem.structural[c.pool].device
        for fld, miss in slo_violations(c, spec.slo_for(device)).items():
            src = _slo_source(spec, device.name, fld)
            if src is not None:
                slo_rows.setdefault(src[0], []).append((i, miss))
                slo_limits[src[0]] = src[1]
    for key, viol in slo_rows.items():
        fld = key.rsplit(".", 1)[1]
        limit = slo_limits[key]
        relax.append(_Relaxable(key, f"per-device {fld}", SLO_UNITS[fld], limit,
                                1 if SLO_FIELDS[fld][1] == "<=" else -1,
                                max(v for _, v in viol), max(abs(limit), 1e-9)))
    for row in problem.rows:
        coefs = [row.coef(c) for c in cands]
        worst = 0.0
        for idx in problem.by_pool:
            vals = [coefs[i] for i in idx]
            worst += problem.pools[cands[idx[0]].pool].count * (
                max(vals) if row.sense == "<=" else -min(vals))
        need = worst - row.rhs if row.sense == "<=" else worst + row.rhs
        scale = max([abs(row.rhs)] + [abs(a) for a in coefs]) or 1.0
        relax.append(_Relaxable(row.key, row.label, row.unit,
                                row.limit if row.limit is not None else row.rhs,
                                1 if row.sense == "<=" else -1, max(need, 0.0) + scale,
                                scale, row))
    variants = sorted({c.variant for c in cands})
    if problem.max_variants is not None:
        relax.append(_Relaxable("constraints.fleet.max_distinct_variants",
                                "distinct (draft, quant) variants", "", problem.max_variants,
                                1, float(len(variants)), float(problem.max_variants)))

    n_r = len(relax)
    m.s = pyo.Var(range(n_r), domain=pyo.NonNegativeReals)
    m.r = pyo.Var(range(n_r), domain=pyo.Binary)
    m.switch = pyo.Constraint(
        range(n_r), rule=lambda _m, j: m.s[j] <= relax[j].big_m / relax[j].scale * m.r[j])
    m.elastic = pyo.ConstraintList()
    pos = {r.key: j for j, r in enumerate(relax)}

    users = sorted({i for rows in slo_rows.values() for i, _ in rows})
    m.u = pyo.Var(users, domain=pyo.Binary)
    for i in users:
        m.elastic.add(f.xs[i] <= problem.pools[cands[i].pool].count * m.u[i])
    for key, viol in slo_rows.items():
        j = pos[key]
        for i, miss in viol:
            m.elastic.add(m.s[j] >= miss / relax[j].scale * m.u[i])
    for row in problem.rows:
        j = pos[row.key]
        coef = [row.coef(c) / relax[j].scale for c in cands]
        expr = f.linear(coef)
        rhs = row.rhs / relax[j].scale
        m.elastic.add(expr <= rhs + m.s[j] if row.sense == "<=" else expr >= rhs - m.s[j])
    if problem.max_variants is not None:
        vidx = {v: j for j, v in enumerate(variants)}
        m.z = pyo.Var(range(len(variants)), domain=pyo.Binary)
        for d, idx in enumerate(problem.by_pool):
            for v, j in vidx.items():
                members = [f.xs[i] for i in idx if cands[i].variant == v]
                if members:
                    m.elastic.add(LinearExpression(
                        constant=0.0, linear_coefs=[1.0] * len(members),
                        linear_vars=members) <= problem.pools[d].count * m.z[j])
        jv = pos["constraints.fleet.max_distinct_variants"]
        m.elastic.add(sum(m.z[j] for j in range(len(variants)))
                      <= problem.max_variants + relax[jv].scale * m.s[jv])

    if deadline.expired():
        return Diagnosis(message=OUT_OF_TIME)
    session = HighsSession(m, options or SolverOptions())
    m.obj = pyo.Objective(expr=sum(m.r[j] for j in range(n_r)), sense=pyo.minimize)
    with deadline.protected():
        first = session.solve()
    if not first.has_solution:
        if first.termination is Termination.time_limit:
            return Diagnosis(message=OUT_OF_TIME)
        return Diagnosis(message="even with every constraint relaxed no assignment exists "
                         f"(solver: {first.termination.value})")
    fewest = round(sum(pyo.value(m.r[j]) for j in range(n_r)))
    m.fewest = pyo.Constraint(expr=sum(m.r[j] for j in range(n_r)) <= fewest)
    m.del_component("obj")
    m.obj = pyo.Objective(expr=sum(m.s[j] for j in range(n_r)), sense=pyo.minimize)
    with deadline.protected():
        second = session.solve()
    minimal = Termination.time_limit not in (first.termination, second.termination)

    out = Diagnosis()
    relaxed = set()
    assignment = [(c, n) for c, n in zip(cands, f.counts()) if n > 0]
    for j, r in enumerate(relax):
        s = pyo.value(m.s[j])
        if pyo.value(m.r[j]) < 0.5 or s <= 1e-12:
            continue
        relaxed.add(r.key)
        if r.row is not None and r.row.ratio is not None:
            # a ratio bound: the relaxed limit is the ratio the relaxed assignment reaches
            form = r.row.ratio
            assert form.den is not None
            value = sum(n * form.num(c) for c, n in assignment) / \
                sum(n * form.den(c) for c, n in assignment)
            relax_to = value * (1 + r.direction * 1e-6)
        elif r.key.endswith("max_distinct_variants"):
            relax_to = r.limit + float(round(s * r.scale + 0.49))
        else:  # a margin above the solver's feasibility tolerance
            relax_to = r.limit + r.direction * (s * r.scale * (1 + 1e-6) + 1e-7 * r.scale)
        out.relaxations.append(Relaxation(r.key, r.label, r.limit, relax_to, r.unit))
    for row in problem.rows:
        if row.key in relaxed:
            continue
        act = row_activity(row, assignment)
        if abs(act - row.rhs) <= 1e-6 * max(1.0, abs(row.rhs)):
            out.conflicts_with.append(row.key)
    if problem.max_variants is not None and "constraints.fleet.max_distinct_variants" not in \
            relaxed and len({c.variant for c, _ in assignment}) >= problem.max_variants:
        out.conflicts_with.append("constraints.fleet.max_distinct_variants")
    parts = [f"{r.constraint} from {r.limit:g} to {r.relax_to:.6g}" for r in out.relaxations]
    out.message = ("infeasible; smallest fix: relax " if minimal else
                   "infeasible; a fix (the time limit stopped the search for the smallest): "
                   "relax ") + " and ".join(parts)
    if out.conflicts_with:
        out.message += f" (it conflicts with {', '.join(out.conflicts_with)})"
    return out


def relaxed_spec(spec: Spec, diagnosis: Diagnosis) -> Spec:
    """The spec with every relaxation of `diagnosis` applied (what a user would commit)."""
    data = spec.model_dump(exclude_none=True)
    for r in diagnosis.relaxations:
        value: float | int = r.relax_to
        if r.constraint.endswith("max_distinct_variants"):
            value = round(r.relax_to)
        if r.constraint.startswith("targets["):
            name = r.constraint[len("targets["):r.constraint.index("]")]
            target = next(t for t in data["targets"] if t["name"] == name)
            target["capacity_tok_s"] = value
        elif r.constraint.startswith("devices["):
            i = int(r.constraint[len("devices["):r.constraint.index("]")])
            data["devices"][i]["slo"][r.constraint.rsplit(".", 1)[1]] = value
        else:
            _, section, fld = r.constraint.split(".")
            data["constraints"][section][fld] = value
    return Spec.model_validate(data)
