"""The Python API for notebooks and scripts: `from configspec_opt import load_spec, solve`.

`solve` runs exactly what `configspec solve` runs (the same objective
override, pool selection, solver options and explanations from
`configspec_opt.operations`, the same `report.solution_dict`), so
`solve(...).report` is, key for key, what `configspec solve --json` prints.
It also keeps the typed objects behind that dict: the solver's `Solution`
(assignment as `(Candidate, count)` pairs, `FleetMetrics`, status, gap) and the
`LoadedSpec`.  The solver is imported only when `solve` is called, so
`import configspec_opt` stays light (an edge install has no Pyomo).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from configspec_opt.loader import LoadedSpec, load_spec, parse_spec
from configspec_opt.results import SolveJSON
from configspec_opt.spec import Spec

if TYPE_CHECKING:
    from configspec_opt.fleet import FleetMetrics
    from solvers.solve import Solution

__all__ = ["SolveResult", "load_spec", "solve"]


@dataclass(frozen=True)
class SolveResult:
    """One solve: `report` is `configspec solve --json`; `solution` the typed solver result."""

    report: SolveJSON
    solution: Solution
    loaded: LoadedSpec

    @property
    def status(self) -> str:
        """The outcome as in `solve --json`: optimal, feasible, infeasible, time_limit, error."""
        return str(self.report["status"])

    @property
    def solved(self) -> bool:
        """Whether there is an assignment to use (optimal, or feasible within the time limit)."""
        return self.status in ("optimal", "feasible")

    @property
    def assignments(self) -> list[dict[str, Any]]:
        """One row per (pool, configuration), as `solve --json` lists them."""
        return list(self.report["assignments"])

    @property
    def fleet(self) -> FleetMetrics | None:
        """Typed fleet totals of the assignment; None when nothing was solved."""
        return self.solution.fleet

    @property
    def objective_value(self) -> float | None:
        """The objective's value (weighted: the weighted sum); None without an assignment."""
        value = self.report["objective"].get("value")
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        """A shallow copy of `report`, the `configspec solve --json` document."""
        return dict(self.report)

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the tables of `configspec report`, without the front."""
        from configspec_opt.report_html import CSS, solution_fragment

        return f"<div><style>{CSS}</style>{solution_fragment(self.report, self.loaded.spec)}</div>"


def _loaded(spec: LoadedSpec | Spec | str | Path) -> LoadedSpec:
    if isinstance(spec, LoadedSpec):
        return spec
    if isinstance(spec, Spec):
        # validated again as text, so a spec built in Python gets the loader's checks
        data = spec.model_copy(update={"profiles_from": []})
        return parse_spec(data.model_dump_json(exclude_none=True), name="<Spec object>")
    return load_spec(spec)


def solve(
    spec: LoadedSpec | Spec | str | Path, *, objective: str | None = None,
    devices: list[str] | None = None, time_limit: float | None = None, gap: float = 1e-9,
    explain: bool | None = None, tie_break: bool = True, prune: bool = True,
    load_blind: bool = False, simulate: float | None = None,
) -> SolveResult:
    """Solve a spec (a path, a `load_spec` result or a `Spec`) as `configspec solve` does.

    The keyword arguments are the CLI's options (`objective="min:energy"`,
    `devices=["rpi5"]`, `simulate=0.2` for `--simulate --jitter 0.2`, ...).  Invalid
    specs and options raise the CLI's errors (`SpecError`, `UsageError`; a missing
    solver `SolverUnavailableError`); an infeasible spec returns a result whose
    `status` says so, with its diagnosis in `report["diagnosis"]`.
    """
    from configspec_opt.operations import solve_with_report

    loaded = _loaded(spec)
    sol, report = solve_with_report(
        loaded, objective=objective, devices=devices, time_limit=time_limit, gap=gap,
        explain=explain, tie_break=tie_break, prune=prune, load_blind=load_blind,
        simulate=simulate)
    return SolveResult(report, sol, loaded)
