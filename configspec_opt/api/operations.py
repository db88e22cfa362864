"""What validate / evaluate / solve / pareto compute, as the dicts `--json` prints.

These mirror the bodies of the CLI commands in `configspec_opt.cli.core`
line for line and reuse its helpers, so the HTTP API and the CLI cannot
disagree (tests/api compares both outputs).  The clean end state is for the
CLI to call these functions too; see docs/http.md, "Shared with the CLI".
Pure functions: no I/O, no FastAPI; they run in solver worker processes.
"""

from __future__ import annotations

from typing import Any

from configspec_opt.api.params import EvaluateParams, ParetoParams, SolveParams
from configspec_opt.candidates import slo_violations
from configspec_opt.cli.core import SORT_FIELDS, _check_energy, _only, parse_term
from configspec_opt.loader import LoadedSpec
from configspec_opt.problem import build_problem
from configspec_opt.report import candidate_dict
from configspec_opt.spec import Objective

EXPLAIN_MAX_CANDIDATES = 5000


def validate(loaded: LoadedSpec) -> dict[str, Any]:
    problem = build_problem(loaded.spec, prune=False)
    return {
        "status": "valid", "name": loaded.spec.name, "spec_sha256": loaded.sha256,
        "pools": len(problem.pools), "devices": sum(p.count for p in problem.pools),
        "candidates": sum(len(pc.candidates) for pc in problem.structural),
        "candidates_meeting_slo": len(problem.candidates),
        "warnings": loaded.warnings,
    }


def evaluate(loaded: LoadedSpec, params: EvaluateParams) -> dict[str, Any]:
    only = _only(loaded.spec, params.device)
    problem = build_problem(loaded.spec, only=only, prune=False, apply_slo=False)
    field, desc = SORT_FIELDS[params.sort]
    rows: list[dict[str, Any]] = []
    for pc in problem.structural:
        slo = loaded.spec.slo_for(pc.device)
        pool_rows = []
        for c in pc.candidates:
            d = candidate_dict(c)
            miss = slo_violations(c, slo)
            d["meets_slo"] = not miss
            d["slo"] = "ok" if not miss else "misses " + ",".join(miss)
            pool_rows.append(d)
        pool_rows.sort(key=lambda r: (r[field] is None,
                                      -(r[field] or 0) if desc else (r[field] or 0)))
        rows.extend(pool_rows[:params.top] if params.top else pool_rows)
    return {"candidates": rows}


def check_solve(
    loaded: LoadedSpec, params: SolveParams
) -> tuple[Objective | None, set[str] | None]:
    """The options of a solve, checked against the spec (UsageError when they cannot apply)."""
    obj = None
    if params.objective:
        t = parse_term(params.objective)
        obj = Objective.model_validate({t.sense: t.metric})
    only = _only(loaded.spec, params.device)
    _check_energy(loaded.spec, obj, only)
    return obj, only


def solve(loaded: LoadedSpec, params: SolveParams, time_limit: float | None) -> dict[str, Any]:
    from configspec_opt.explain import explain as explain_pools
    from configspec_opt.report import solution_dict
    from solvers.adapter import SolverOptions, require_solver
    from solvers.solve import solve as run_solve

    require_solver()
    obj, only = check_solve(loaded, params)
    options = SolverOptions(time_limit=time_limit, rel_gap=params.gap)
    sol = run_solve(loaded.spec, objective=obj, only=only, options=options,
                    tie_break=params.tie_break, prune=params.prune)
    explain = params.explain
    if explain is None:
        explain = sum(len(pc.candidates) for pc in sol.problem.structural) \
            <= EXPLAIN_MAX_CANDIDATES
    explanations = explain_pools(sol.problem, sol.objective, sol.assignment) \
        if explain and sol.assignment else None
    return solution_dict(sol, spec_sha256=loaded.sha256, explanations=explanations,
                         warnings=loaded.warnings)


def pareto(loaded: LoadedSpec, params: ParetoParams, time_limit: float | None) -> dict[str, Any]:
    from configspec_opt.report import pareto_dict
    from solvers.adapter import SolverOptions, require_solver
    from solvers.pareto import pareto as run_pareto

    require_solver()
    tx, ty = parse_term(params.x), parse_term(params.y)
    only = _only(loaded.spec, params.device)
    _check_energy(loaded.spec, Objective.model_validate({"lexicographic": [tx, ty]}), only)
    front = run_pareto(loaded.spec, tx, ty, only=only, max_points=params.points,
                       options=SolverOptions(time_limit=time_limit))
    return pareto_dict(front)
