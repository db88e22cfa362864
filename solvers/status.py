"""Solver outcomes as small enums, mapped from the solvers' own codes by tables.

Termination (why the solver stopped) and whether a solution exists are kept
apart: a time limit can still leave a feasible assignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Status(str, Enum):
    """The outcome of a solve as reported to users: whether there is an assignment to use.

    `feasible` has an assignment not proven optimal; `time_limit` means the
    solver stopped before it found any.
    """

    optimal = "optimal"
    feasible = "feasible"  # a solution, not proven optimal (time limit, gap)
    infeasible = "infeasible"
    time_limit = "time_limit"  # stopped without any solution
    error = "error"


class Termination(str, Enum):
    """Why one solver run stopped, whichever backend ran it (see the tables below).

    Independent of whether a solution exists: `RunResult.has_solution` says that.
    """

    optimal = "optimal"
    time_limit = "time_limit"
    iteration_limit = "iteration_limit"
    infeasible = "infeasible"
    unbounded = "unbounded"
    interrupted = "interrupted"
    error = "error"
    unknown = "unknown"


# Pyomo contrib.solver TerminationCondition names -> ours.
TERMINATION_FROM_PYOMO: dict[str, Termination] = {
    "convergenceCriteriaSatisfied": Termination.optimal,
    "maxTimeLimit": Termination.time_limit,
    "iterationLimit": Termination.iteration_limit,
    "objectiveLimit": Termination.iteration_limit,
    "minStepLength": Termination.error,
    "unbounded": Termination.unbounded,
    "provenInfeasible": Termination.infeasible,
    "locallyInfeasible": Termination.infeasible,
    "infeasibleOrUnbounded": Termination.infeasible,
    "error": Termination.error,
    "interrupted": Termination.interrupted,
    "licensingProblems": Termination.error,
    "emptyModel": Termination.optimal,
    "unknown": Termination.unknown,
}

# highspy HighsModelStatus names -> ours (names, so that this module needs no highspy).
TERMINATION_FROM_HIGHS: dict[str, Termination] = {
    "kNotset": Termination.unknown,
    "kLoadError": Termination.error,
    "kModelError": Termination.error,
    "kPresolveError": Termination.error,
    "kSolveError": Termination.error,
    "kPostsolveError": Termination.error,
    "kModelEmpty": Termination.optimal,
    "kOptimal": Termination.optimal,
    "kInfeasible": Termination.infeasible,
    "kUnboundedOrInfeasible": Termination.infeasible,
    "kUnbounded": Termination.unbounded,
    "kObjectiveBound": Termination.iteration_limit,
    "kObjectiveTarget": Termination.iteration_limit,
    "kTimeLimit": Termination.time_limit,
    "kIterationLimit": Termination.iteration_limit,
    "kSolutionLimit": Termination.iteration_limit,  # mip_max_nodes and other MIP limits
    "kInterrupt": Termination.interrupted,
    "kHighsInterrupt": Termination.interrupted,
    "kMemoryLimit": Termination.error,
    "kUnknown": Termination.unknown,
}


@dataclass
class RunResult:
    """One call of the solver."""

    termination: Termination
    has_solution: bool
    proven_optimal: bool
    objective: float | None
    bound: float | None
    time_s: float
    log: str = ""

    @property
    def gap(self) -> float | None:
        """Relative distance between the objective and the bound; None when either is unknown.

        Relative to |objective| (at least 1e-10), as HiGHS reports its MIP gap.
        """
        if self.objective is None or self.bound is None:
            return None
        return abs(self.bound - self.objective) / max(1e-10, abs(self.objective))


def rel_gap(value: float, bound: float | None, sense: str) -> float | None:
    """max(0, how far the bound lies beyond the value) relative to the value's size."""
    if bound is None or bound != bound:
        return None
    if bound in (float("inf"), float("-inf")):
        return float("inf")
    diff = bound - value if sense == "maximize" else value - bound
    if diff <= 0.0:
        return 0.0
    size = max(abs(value), abs(bound))
    return diff / size if size > 0.0 else 0.0


@dataclass
class StageInfo:
    """One MILP run of a solve, as `solve --json` lists it under `solver.stages`.

    `termination` is a `Termination` value; `gap` is the run's relative gap
    between objective and bound (`RunResult.gap`), None when either is unknown.
    """

    what: str
    termination: str
    time_s: float
    gap: float | None
