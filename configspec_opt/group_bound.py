"""What grouping devices into pools can cost: the conservative and the optimistic fleet
solved, and the distance between their optima (configspec_opt.grouping explains why
that distance bounds the loss)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from configspec_opt.grouping import CERTIFIED_OBJECTIVES, Config, uncertified
from configspec_opt.spec import Spec

Plan = list[tuple[str, Config, int]]


@dataclass(frozen=True)
class Bound:
    """The two solves and the bound they give.

    `conservative` is the objective of a plan feasible for every real device, as the
    pools value it; `devices` the same plan valued on each device's own measurements
    (at least as good); `optimistic` a bound on the optimistic fleet's optimum (its
    solver gap included), which no plan of the real devices beats.  `loss` bounds
    (real optimum - the plan's real value) / real optimum for a metric to maximise,
    (the plan's real value - real optimum) / real optimum for one to minimise; None
    where a solve gave no number, with `message` saying why.  `plan` is the
    conservative plan: (pool, (target, draft, quant, K), devices)."""

    metric: str
    sense: str
    conservative: float | None
    devices: float | None
    optimistic: float | None
    loss: float | None
    status: dict[str, str]
    time_s: float
    message: str
    plan: Plan | None = None

    def to_dict(self) -> dict[str, Any]:
        """For `configspec group --json` (without the plan)."""
        d = asdict(self)
        del d["plan"]
        return d


def _bound_of(value: float, gap: float | None, sense: str) -> float | None:
    """The solver's bound from its value and relative gap (`solvers.solve._rel_gap`:
    the difference over the larger of the two, both positive here)."""
    if gap is None:
        return None
    if sense == "maximize":
        return value / (1.0 - gap) if gap < 1.0 else None
    return value * (1.0 - gap)


def grouping_bound(conservative: Spec, optimistic: Spec, *, time_limit: float | None = None,
                   real: Callable[[Plan], float] | None = None) -> Bound:
    """Solve both fleets (no tie-break, no diagnosis: only the values are wanted);
    `real` values the conservative plan on the devices (`grouping.real_value`).

    Raises ValueError for a spec `uncertified` refuses: the numbers would bound
    nothing."""
    from solvers.adapter import SolverOptions
    from solvers.solve import solve

    why = uncertified(conservative)
    if why:
        raise ValueError("; ".join(why))
    term = conservative.objective.terms()[0]
    sense = CERTIFIED_OBJECTIVES[term.metric]
    options = SolverOptions(time_limit=time_limit)
    t0 = time.perf_counter()
    sc = solve(conservative, options=options, tie_break=False, diagnose=False)
    so = solve(optimistic, options=options, tie_break=False, diagnose=False)
    elapsed = time.perf_counter() - t0
    status = {"conservative": sc.status.value, "optimistic": so.status.value}
    vc, vo = sc.objective_value, so.objective_value
    top = None if vo is None else _bound_of(vo, so.gap, sense)
    metric = term.metric.value
    plan = [(c.device, c.config, n) for c, n in sc.assignment if n > 0] if vc is not None \
        else None
    vd = real(plan) if real is not None and plan is not None else vc
    if so.status.value == "infeasible":
        return Bound(metric, sense, vc, vd, None, None, status, elapsed,
                     "the optimistic fleet is infeasible, so no plan exists for the real "
                     "devices either", plan)
    if vc is None or vd is None:
        return Bound(metric, sense, None, None, top, None, status, elapsed,
                     "the conservative fleet has no plan"
                     + (" (infeasible): the pools' worst numbers miss a constraint that the "
                        "real devices may meet; a smaller --tolerance narrows the pools"
                        if sc.status.value == "infeasible" else f" ({sc.status.value})"))
    if top is None or top <= 0.0 or vd < 0.0:
        return Bound(metric, sense, vc, vd, top, None, status, elapsed,
                     f"the optimistic solve proved no bound ({so.status.value})", plan)
    loss = max(0.0, 1.0 - vd / top) if sense == "maximize" else max(0.0, vd / top - 1.0)
    return Bound(metric, sense, vc, vd, top, loss, status, elapsed,
                 f"the plan of the pools is within {loss:.3%} of the devices' optimal "
                 f"{metric}", plan)
