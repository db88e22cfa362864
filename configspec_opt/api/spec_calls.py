"""The spec endpoints' work, mapped from query models onto configspec_opt.operations.

Run in solver worker processes; the CLI calls the same functions, so the HTTP
API and `--json` cannot disagree.
"""

from __future__ import annotations

from typing import Any

from configspec_opt import operations as ops
from configspec_opt.api.params import EvaluateParams, ParetoParams, SolveParams
from configspec_opt.loader import LoadedSpec
from configspec_opt.results import ParetoJSON, SolveJSON
from configspec_opt.spec import Objective


def validate(loaded: LoadedSpec) -> dict[str, Any]:
    """The report of `configspec validate --json`, for a spec the worker already loaded."""
    return ops.validate_report(loaded)


def evaluate(loaded: LoadedSpec, params: EvaluateParams) -> dict[str, Any]:
    """The per-candidate table of `configspec evaluate --json`; no solver is involved."""
    return ops.evaluate_report(loaded, sort=params.sort, devices=params.device, top=params.top)


def check_solve(
    loaded: LoadedSpec, params: SolveParams
) -> tuple[Objective | None, set[str] | None]:
    """The options of a solve, checked against the spec (UsageError when they cannot apply)."""
    return ops.solve_inputs(loaded, params.objective, params.device)


def solve(loaded: LoadedSpec, params: SolveParams, time_limit: float | None) -> SolveJSON:
    """The result of `configspec solve --json`; `time_limit` bounds every stage (None: no limit)."""
    return ops.solve_report(loaded, objective=params.objective, devices=params.device,
                            time_limit=time_limit, gap=params.gap, explain=params.explain,
                            tie_break=params.tie_break, prune=params.prune,
                            load_blind=params.load_blind, simulate=params.simulate,
                            sensitivity=params.sensitivity, robust=params.robust)


def pareto(loaded: LoadedSpec, params: ParetoParams, time_limit: float | None) -> ParetoJSON:
    """The front of `configspec pareto --json`; `time_limit` bounds the run, not each point."""
    return ops.pareto_report(loaded, x=params.x, y=params.y, devices=params.device,
                             points=params.points, time_limit=time_limit)
