"""Our doors to HiGHS, and the options a user may set for them.

Two backends solve the fleet MILP, both keeping the model loaded between
calls so that Dinkelbach iterations, lexicographic stages and the tie-break
only change an objective or add a row instead of rebuilding:

* ``highs`` (default): `solvers.highs_model`, the model built directly with
  highspy's public array API;
* ``pyomo``: `solvers.formulation` through Pyomo's contrib.solver persistent
  HiGHS (`HighsSession` below), also the door of the diagnosis.  Pyomo's
  interface has no public MIP start for HiGHS, so this backend runs the
  tie-break without one.

Pyomo is imported only when a Pyomo model is solved: the default path never
pays for it.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from typing import Any, Literal

from configspec_opt.errors import SolverUnavailableError
from solvers import deadline
from solvers.status import TERMINATION_FROM_PYOMO, RunResult, Termination

DEFAULT_REL_GAP = 1e-9
DEFAULT_ABS_GAP = 1e-9
# Options passed on every run (the persistent instance keeps options between runs).
BASE_HIGHS_OPTIONS: dict[str, float | int | bool] = {"random_seed": 0, "mip_max_nodes": 2**31 - 1}


@dataclass
class SolverOptions:
    """What a user may set; defaults prove optimality (HiGHS's own 1e-4 gap does not)."""

    time_limit: float | None = None
    rel_gap: float = DEFAULT_REL_GAP
    abs_gap: float = DEFAULT_ABS_GAP
    threads: int | None = 1
    tee: bool = False
    backend: Literal["highs", "pyomo"] = "highs"
    # "auto": the decomposition (`solvers.decompose`) for large plain fleets where it
    # applies, else the monolithic MILP; "milp" / "decompose" force one where it applies.
    method: Literal["auto", "milp", "decompose"] = "auto"


def time_limit_left(options: SolverOptions, started: float) -> float | None:
    """The limit of the next HiGHS run: what is left of `options.time_limit` since
    `started` (at least 10 ms), shortened to the request's deadline; None: no limit."""
    own = None if options.time_limit is None else \
        max(0.01, options.time_limit - (time.perf_counter() - started))
    return deadline.clamp(own)


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def require_solver() -> None:
    """Raise SolverUnavailableError (exit 3) unless Pyomo and a working HiGHS are installed.

    Both are checked although the default backend needs only highspy: the
    diagnosis of an infeasible spec uses Pyomo, and the extra installs both.
    Pyomo is found, not imported (its import alone costs most of a second).
    """
    try:
        import highspy  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as exc:
        raise SolverUnavailableError(
            f"the optimiser is not installed ({exc.name or exc} is missing)") from None
    if _missing("pyomo"):
        raise SolverUnavailableError("the optimiser is not installed (pyomo is missing)")


def _pyomo_highs() -> Any:
    """Pyomo's persistent HiGHS interface, imported on first use."""
    try:
        from pyomo.contrib.solver.solvers.highs import Highs
    except ImportError as exc:
        raise SolverUnavailableError(
            f"the optimiser is not installed ({exc.name or exc} is missing)") from None
    solver = Highs()
    if not solver.available():
        raise SolverUnavailableError("HiGHS (highspy) is not available")
    return solver


class HighsSession:
    """A Pyomo model bound to one persistent HiGHS instance (the `pyomo` backend)."""

    def __init__(self, model: Any, options: SolverOptions) -> None:
        require_solver()
        self.model = model
        self.options = options
        self.solver = _pyomo_highs()
        self.started = time.perf_counter()

    def remaining(self) -> float | None:
        """Seconds left of the time limit, counted from this session's start; None: no limit."""
        return time_limit_left(self.options, self.started)

    def warm_start(self) -> None:
        """Nothing: Pyomo's HiGHS interface offers no public MIP start (the tie-break,
        capped by nodes, then searches without one)."""

    def solve(self, **highs_options: float | int | bool) -> RunResult:
        """One HiGHS run; `highs_options` apply to this run only."""
        t0 = time.perf_counter()
        options = {**BASE_HIGHS_OPTIONS, "output_flag": self.options.tee, **highs_options}
        res = self.solver.solve(
            self.model,
            time_limit=self.remaining(),
            rel_gap=self.options.rel_gap,
            abs_gap=self.options.abs_gap,
            threads=self.options.threads,
            tee=self.options.tee,
            load_solutions=False,
            raise_exception_on_nonoptimal_result=False,
            solver_options=options,
        )
        elapsed = time.perf_counter() - t0
        term = TERMINATION_FROM_PYOMO.get(res.termination_condition.name, Termination.unknown)
        status = res.solution_status.name
        has_solution = status in ("optimal", "feasible")
        if has_solution:
            res.solution_loader.load_vars()
        return RunResult(
            termination=term,
            has_solution=has_solution,
            proven_optimal=status == "optimal" and term is Termination.optimal,
            objective=res.incumbent_objective,
            bound=res.objective_bound,
            time_s=elapsed,
            log=res.solver_log or "",
        )
