"""What `solvers.solve` needs of a backend: the objective it hands over and two protocols.

Kept apart from both backends (`solvers.highs_model`, the default, and
`solvers.formulation` with `solvers.adapter.HighsSession`, the Pyomo one) so
that the default one never imports Pyomo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from configspec_opt.problem import Row
from solvers.status import RunResult

Sense = Literal["maximize", "minimize"]


@dataclass
class LinearObjective:
    """sum_i coef[i] * x_i + t_coef * t + sum over targets of replica_coef * replicas."""

    coef: Sequence[float]
    sense: Sense
    t_coef: float = 0.0
    replica_coef: dict[str, float] = field(default_factory=dict)


class FleetModel(Protocol):
    """The loaded model: its objective, extra rows, and the values of the last solution."""

    def set_objective(self, obj: LinearObjective) -> None:
        """Replace the objective; rows added before stay."""
        ...

    def add_row(self, row: Row) -> object:
        """Add a row that holds for every later run."""
        ...

    def counts(self) -> list[int]:
        """The last solution's devices per candidate, as integers."""
        ...

    def replica_counts(self) -> dict[str, int]:
        """The last solution's replicas per batched target, as integers."""
        ...


class Session(Protocol):
    """Runs HiGHS on the loaded model, the solution loaded into it afterwards."""

    def solve(self, **highs_options: float | int | bool) -> RunResult:
        """One HiGHS run; `highs_options` (e.g. mip_max_nodes) apply to this run only."""
        ...

    def warm_start(self) -> None:
        """Offer the loaded solution as the next run's start (a backend may ignore it)."""
        ...
