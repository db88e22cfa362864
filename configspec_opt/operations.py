"""What validate / evaluate / solve / pareto compute, as the dicts `--json` prints.

One implementation for every front end: the CLI prints these dicts (or renders
them as tables), the HTTP API returns them, so the two cannot disagree.  Pure
functions over a loaded spec: no typer, no FastAPI, no file access; solver
modules are imported only when a solve needs them.
"""

from __future__ import annotations

import math
from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from configspec_opt.consistency import devices_without_power
from configspec_opt.constraint_families import slo_violations
from configspec_opt.errors import UsageError
from configspec_opt.loader import LoadedSpec
from configspec_opt.metric_registry import POWER_METRICS, metric_def
from configspec_opt.problem import build_problem
from configspec_opt.report import candidate_dict
from configspec_opt.results import ParetoJSON, RobustJSON, SolveJSON
from configspec_opt.robust import is_robust, measured_ci, measured_intervals
from configspec_opt.spec import Metric, Objective, Robust, Spec, Term
from configspec_opt.usability import analyse, strict_error

EXPLAIN_MAX_CANDIDATES = 5000

SENSE_ALIASES = {"max": "maximize", "maximize": "maximize", "maximise": "maximize",
                 "min": "minimize", "minimize": "minimize", "minimise": "minimize"}

if TYPE_CHECKING:
    from solvers.solve import Solution


class SortKey(str, Enum):
    """What `configspec evaluate --sort` orders candidates by."""

    goodput = "goodput"
    cost_efficiency = "cost_efficiency"
    energy = "energy"
    k = "k"


SORT_FIELDS = {SortKey.goodput: ("goodput_tok_s", True),
               SortKey.cost_efficiency: ("cost_tok_per_usd", True),
               SortKey.energy: ("energy_j_per_tok", False), SortKey.k: ("k", False)}


def parse_term(text: str) -> Term:
    """`goodput`, `max:goodput` or `minimize:energy`."""
    sense, _, name = text.rpartition(":")
    try:
        metric = Metric(name.strip())
    except ValueError:
        raise UsageError(f"unknown metric '{name}' (one of: "
                         f"{', '.join(m.value for m in Metric)})") from None
    if sense:
        if sense.strip().lower() not in SENSE_ALIASES:
            raise UsageError(f"unknown direction '{sense}' (max or min)")
        direction = SENSE_ALIASES[sense.strip().lower()]
    else:
        direction = metric_def(metric).better
    return Term.model_validate({direction: metric})


def select_pools(spec: Spec, devices: list[str] | None) -> set[str] | None:
    """The pools a command is restricted to (None: all), refusing unknown names."""
    if not devices:
        return None
    known = [d.name for d in spec.devices]
    unknown = [d for d in devices if d not in known]
    if unknown:
        raise UsageError(f"unknown device {', '.join(unknown)} (known: {', '.join(known)})")
    return set(devices)


def check_energy_available(spec: Spec, obj: Objective | None, only: set[str] | None) -> None:
    """An energy or power objective over pools without power data is an error that says so."""
    if obj is None:
        return
    wanted = [t.metric.value for t in obj.terms() if t.metric in POWER_METRICS]
    if not wanted:
        return
    missing = devices_without_power(spec, only)
    if missing:
        raise UsageError(f"{' and '.join(dict.fromkeys(wanted))} is not available for "
                         f"{', '.join(missing)}: no power data "
                         "(use --device to leave those pools out, or add power_w)")


def spec_schema() -> dict[str, Any]:
    """JSON Schema of the spec, for editors (yaml-language-server) and tools."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "configspec-opt deployment spec"
    return schema


def validate_report(loaded: LoadedSpec, *, strict: bool = False) -> dict[str, Any]:
    """The spec's size, and warnings: the loader's, then pools without candidates and
    profiles that can never be used (located).  `strict`: a pool without candidates
    raises SpecError (invalid spec, exit 2)."""
    problem = build_problem(loaded.spec, prune=False)
    usability = analyse(loaded, problem.structural)
    error = strict_error(usability) if strict else None
    if error is not None:
        raise error
    return {
        "status": "valid", "name": loaded.spec.name, "spec_sha256": loaded.sha256,
        "pools": len(problem.pools), "devices": sum(p.count for p in problem.pools),
        "candidates": sum(len(pc.candidates) for pc in problem.structural),
        "candidates_meeting_slo": len(problem.candidates),
        "pools_without_candidates": [w.device for w in usability if w.scope == "pool"],
        "warnings": [*loaded.warnings, *(w.format() for w in usability)],
        "usability": [w.to_dict() for w in usability],
    }


def evaluate_report(loaded: LoadedSpec, *, sort: SortKey = SortKey.goodput,
                    devices: list[str] | None = None, top: int | None = None) -> dict[str, Any]:
    """Every candidate's metrics, and the warnings `validate` gives for these pools."""
    only = select_pools(loaded.spec, devices)
    problem = build_problem(loaded.spec, only=only, prune=False, apply_slo=False)
    field, desc = SORT_FIELDS[sort]
    rows: list[dict[str, Any]] = []
    provenance = {(p.device, p.draft, p.quant): {"provenance": p.provenance}
                  for p in loaded.spec.profiles if p.provenance}
    mixed = any(loaded.spec.mix_for(pc.device) for pc in problem.structural)
    for pc in problem.structural:
        slo = loaded.spec.slo_for(pc.device)
        pool_rows = []
        for c in pc.candidates:
            d = candidate_dict(c)
            prov = provenance.get((c.device, c.draft, c.quant))
            ci = None if prov is None or mixed else measured_ci(prov, c.target, c.k)
            if ci is not None:  # the profiler's 95 % interval of this alpha
                d["alpha_ci95"] = [ci[0], ci[1]]
            miss = slo_violations(c, slo)
            d["meets_slo"] = not miss
            d["slo"] = "ok" if not miss else "misses " + ",".join(miss)
            pool_rows.append(d)
        pool_rows.sort(key=lambda r: (r[field] is None,
                                      -(r[field] or 0) if desc else (r[field] or 0)))
        rows.extend(pool_rows[:top] if top else pool_rows)
    usability = analyse(loaded, problem.structural)
    return {"candidates": rows,
            "warnings": [*loaded.warnings, *(w.format() for w in usability)]}


def check_solver_options(*, time_limit: float | None = None, gap: float = 0.0,
                         points: int = 1) -> None:
    """Refuse solver options no solve can honour (the Python API; the CLI and the HTTP API
    refuse them as they read them): a time limit of 0 or less used to run no solve at all
    and end "no assignment was searched for", a NaN gap or limit to be no limit."""
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
        raise UsageError(f"time_limit must be a number of seconds above 0, got {time_limit!r}")
    if not (math.isfinite(gap) and 0 <= gap <= 1):
        raise UsageError(f"gap must be a relative MIP gap from 0 to 1, got {gap!r}")
    if points < 1:
        raise UsageError(f"points must be 1 or more, got {points!r}")


def solve_inputs(loaded: LoadedSpec, objective: str | None,
                 devices: list[str] | None) -> tuple[Objective | None, set[str] | None]:
    """The objective override and pool selection, checked against the spec."""
    obj = None
    if objective:
        t = parse_term(objective)
        obj = Objective.model_validate({t.sense: t.metric})
    only = select_pools(loaded.spec, devices)
    check_energy_available(loaded.spec, obj, only)
    return obj, only


def solve_report(
    loaded: LoadedSpec, *, objective: str | None = None, devices: list[str] | None = None,
    time_limit: float | None = None, gap: float = 1e-9, explain: bool | None = None,
    tie_break: bool = True, prune: bool = True, load_blind: bool = False,
    simulate: float | None = None, sensitivity: bool | None = False,
    robust: float | None = None,
) -> SolveJSON:
    """`configspec solve --json`: the assignment, fleet metrics, solver facts, diagnosis."""
    return solve_with_report(loaded, objective=objective, devices=devices,
                             time_limit=time_limit, gap=gap, explain=explain,
                             tie_break=tie_break, prune=prune, load_blind=load_blind,
                             simulate=simulate, sensitivity=sensitivity, robust=robust)[1]


def solve_with_report(
    loaded: LoadedSpec, *, objective: str | None = None, devices: list[str] | None = None,
    time_limit: float | None = None, gap: float = 1e-9, explain: bool | None = None,
    tie_break: bool = True, prune: bool = True, load_blind: bool = False,
    simulate: float | None = None, sensitivity: bool | None = False,
    robust: float | None = None,
) -> tuple[Solution, SolveJSON]:
    """The typed solver result and its `solve --json` report (the CLI and the Python API).

    Explanations swap one pool at a time with the rest fixed; under a batched
    verifier each swap is settled at its own load with the solution's replicas.
    `simulate` (a drafting jitter, e.g. 0.2) also plays every batched verifier of the
    answer forward step by step (`configspec_opt.verifier_check`).  `sensitivity` adds
    each parameter's breaking point and the objective's elasticity to it
    (`configspec_opt.what_if`, the plan fixed); None: for fleets small enough to explain.
    `robust`: a confidence level that overrides the spec's `robust.level` (`--robust`).
    """
    from configspec_opt.explain import explain as explain_pools
    from configspec_opt.report import solution_dict
    from configspec_opt.verifier_check import simulate_verifiers
    from solvers.adapter import SolverOptions, require_solver
    from solvers.deadline import limited
    from solvers.solve import solve

    check_solver_options(time_limit=time_limit, gap=gap)
    require_solver()
    if robust is not None:
        loaded = with_robust_level(loaded, robust)
    obj, only = solve_inputs(loaded, objective, devices)
    if simulate is not None:
        if load_blind:
            raise UsageError("the simulation plays batched verifiers' load forward and a "
                             "load-blind solve models none: ask for one of the two")
        if not 0.0 <= simulate < 1.0:
            raise UsageError(f"the simulation's drafting jitter must be in [0, 1), got "
                             f"{simulate:g}")
    options = SolverOptions(time_limit=time_limit, rel_gap=gap)
    with limited(time_limit):  # one deadline for every stage, round and diagnosis
        sol = solve(loaded.spec, objective=obj, only=only, options=options,
                    tie_break=tie_break, prune=prune, load_blind=load_blind)
        nominal = solve(loaded.spec.model_copy(update={"robust": None}), objective=obj,
                        only=only, options=options, tie_break=False, prune=prune,
                        load_blind=load_blind) if is_robust(loaded.spec) else None
    small = sum(len(pc.candidates) for pc in sol.problem.structural) <= EXPLAIN_MAX_CANDIDATES
    explain = small if explain is None else explain
    sensitivity = small if sensitivity is None else sensitivity
    explanations = explain_pools(sol.problem, sol.objective, sol.assignment,
                                 {v.target: v.replicas for v in sol.verifiers}) \
        if explain and sol.assignment else None
    simulated = simulate_verifiers(sol.assignment, sol.problem.verifiers, sol.verifiers,
                                   jitter=simulate) \
        if simulate is not None and sol.assignment and sol.verifiers else []
    data = solution_dict(sol, spec_sha256=loaded.sha256, explanations=explanations,
                         warnings=loaded.warnings, simulated=simulated)
    if nominal is not None and loaded.spec.robust is not None:
        data["robust"] = rob = robust_price(loaded.spec, data, solution_dict(nominal))
        if rob["level"] is not None and not rob["measured_intervals"]:
            data["warnings"] = [*data.get("warnings", []), (
                "robust.level: no profile carries a measured interval of alpha (the ci95 "
                "`configspec profile` keeps in provenance); only the margins apply")]
    if sensitivity and sol.assignment:
        from configspec_opt.what_if import Plan
        from configspec_opt.what_if import sensitivity as plan_sensitivity

        spec = loaded.spec.load_blind() if load_blind else loaded.spec
        data["sensitivity"] = plan_sensitivity(
            spec.model_copy(update={"objective": sol.objective}),
            Plan.of(sol.assignment, {v.target: v.replicas for v in sol.verifiers}))
    return sol, data


def with_robust_level(loaded: LoadedSpec, level: float) -> LoadedSpec:
    """The spec with `robust.level` set (its margins kept): `solve --robust LEVEL`."""
    if not 0.5 <= level <= 0.999:
        raise UsageError(f"--robust is a confidence level from 0.5 to 0.999, got {level:g}")
    box = (loaded.spec.robust or Robust()).model_copy(update={"level": level})
    return replace(loaded, spec=loaded.spec.model_copy(update={"robust": box}))


def robust_price(spec: Spec, robust: SolveJSON, nominal: SolveJSON) -> RobustJSON:
    """What the robust answer gives up against the nominal optimum (same objective)."""
    box = spec.robust
    assert box is not None
    value, best = robust["objective"].get("value"), nominal["objective"].get("value")
    price = None
    if value is not None and best is not None and best != 0.0:
        sign = -1.0 if robust["objective"].get("sense") == "minimize" else 1.0
        price = sign * (float(best) - float(value)) / abs(float(best))
    return {"margins": box.margins(), "level": box.level,
            "measured_intervals": 0 if box.level is None else measured_intervals(spec),
            "objective": None if value is None else float(value),
            "nominal_optimum": None if best is None else float(best),
            "nominal_status": nominal["status"], "price": price}


def pareto_report(
    loaded: LoadedSpec, *, x: str = "goodput", y: str = "energy",
    devices: list[str] | None = None, points: int = 50, time_limit: float | None = None,
) -> ParetoJSON:
    """The `pareto --json` answer of a loaded spec; the time limit bounds the whole front."""
    from configspec_opt.report import pareto_dict
    from solvers.adapter import SolverOptions, require_solver
    from solvers.deadline import limited
    from solvers.pareto import pareto

    check_solver_options(time_limit=time_limit, points=points)
    require_solver()
    tx, ty = parse_term(x), parse_term(y)
    if tx.metric is ty.metric:
        raise UsageError(f"--x and --y both name {tx.metric.value}: a front needs two "
                         "different metrics")
    only = select_pools(loaded.spec, devices)
    check_energy_available(loaded.spec, Objective.model_validate({"lexicographic": [tx, ty]}),
                           only)
    with limited(time_limit):  # the whole front, not each point
        front = pareto(loaded.spec, tx, ty, only=only, max_points=points,
                       options=SolverOptions(time_limit=time_limit))
    return pareto_dict(front)
