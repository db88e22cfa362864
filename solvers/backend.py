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

    def set_objective(self, obj: LinearObjective) -> None: ...

    def add_row(self, row: Row) -> object: ...

    def counts(self) -> list[int]: ...

    def replica_counts(self) -> dict[str, int]: ...


class Session(Protocol):
    """Runs HiGHS on the loaded model, the solution loaded into it afterwards."""

    def solve(self, **highs_options: float | int | bool) -> RunResult: ...

    def warm_start(self) -> None: ...
