"""Our one door to HiGHS: Pyomo's contrib.solver persistent interface.

The model stays loaded between calls so that Dinkelbach iterations,
lexicographic stages and the tie-break only change an objective or add a
row instead of rebuilding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from configspec_opt.errors import SolverUnavailableError
from solvers.status import TERMINATION_FROM_PYOMO, RunResult, Termination

try:  # the edge-only install has no Pyomo
    import numpy as np
    import pyomo.environ as pyo
    from pyomo.contrib.solver.common.factory import SolverFactory
    from pyomo.contrib.solver.common.results import SolutionStatus
    from pyomo.contrib.solver.solvers.highs import Highs
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    pyo = None
    _IMPORT_ERROR: ImportError | None = _exc
else:
    _IMPORT_ERROR = None

    class _HighsWithStart(Highs):  # type: ignore[misc]
        """Pyomo's persistent HiGHS, plus a MIP start handed to highspy before each run.

        Pyomo's interface has no warm start for HiGHS; a feasible start turns
        the tie-break stage from a search for any feasible point into an
        improvement of a known one.
        """

        start: list[tuple[Any, float]] | None = None

        def _solve(self) -> Any:
            if self.start:
                cols = self._pyomo_var_to_solver_var_map
                pairs = [(cols[id(v)], x) for v, x in self.start if id(v) in cols]
                self._solver_model.setSolution(
                    len(pairs), np.array([c for c, _ in pairs], dtype=np.int32),
                    np.array([x for _, x in pairs], dtype=np.float64))
                self.start = None
            return super()._solve()

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


def require_solver() -> None:
    """Raise SolverUnavailableError (exit 3) unless Pyomo and a working HiGHS are installed."""
    if _IMPORT_ERROR is not None:
        raise SolverUnavailableError(
            "the optimiser is not installed: pip install 'configspec-opt[solver]' "
            f"({_IMPORT_ERROR})")
    registered = SolverFactory("highs")
    if registered is None or not registered.available():
        raise SolverUnavailableError(
            "HiGHS (highspy) is not available: pip install 'configspec-opt[solver]'")


class HighsSession:
    """A Pyomo model bound to one persistent HiGHS instance."""

    def __init__(self, model: Any, options: SolverOptions) -> None:
        require_solver()
        self.model = model
        self.options = options
        registered = SolverFactory("highs")
        if registered is None or not registered.available():
            raise SolverUnavailableError("HiGHS (highspy) is not available")
        self.solver = _HighsWithStart()
        self.started = time.perf_counter()

    def remaining(self) -> float | None:
        if self.options.time_limit is None:
            return None
        return max(0.01, self.options.time_limit - (time.perf_counter() - self.started))

    def warm_start(self) -> None:
        """Offer the values now loaded in the model as the next run's MIP start."""
        self.solver.start = [(v, float(v.value))
                             for v in self.model.component_data_objects(pyo.Var)
                             if v.value is not None]

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
        has_solution = res.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
        if has_solution:
            res.solution_loader.load_vars()
        return RunResult(
            termination=term,
            has_solution=has_solution,
            proven_optimal=res.solution_status == SolutionStatus.optimal
            and term is Termination.optimal,
            objective=res.incumbent_objective,
            bound=res.objective_bound,
            time_s=elapsed,
            log=res.solver_log or "",
        )
