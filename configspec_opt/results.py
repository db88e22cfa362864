"""The documented JSON answers as types: what `solve --json`, `pareto --json` and HTTP return.

`report.py` builds these from a `solvers.solve.Solution` (one builder for
every front end), the CLI prints them, the HTTP response models
(`api/schemas.py`) declare them, and mypy checks producers and readers
against the same declaration.  Keys whose set follows the metric registry
(the fleet figures, a candidate's metrics) are typed as mappings from the
registered key to its value: `metric_registry` is their one declaration.
Key order in the JSON is the order the builders write, which
`tools/compare_solve_outputs.py` holds byte-for-byte.
"""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import NotRequired, TypedDict

MetricValues = dict[str, Any]
"""Registered metric keys (`metric_registry`) to numbers (None: not available)."""


class TermJSON(TypedDict):
    """One term of a weighted (`weight`) or lexicographic (`tolerance`) objective."""

    sense: Literal["maximize", "minimize"]
    metric: str
    weight: NotRequired[float]
    tolerance: NotRequired[float]


class ObjectiveJSON(TypedDict):
    """What was optimised and the value reached (None: no assignment); `terms` when several."""

    sense: Literal["maximize", "minimize"]
    metric: str
    value: float | None
    mode: NotRequired[Literal["weighted", "lexicographic"]]
    terms: NotRequired[list[TermJSON]]


class StageJSON(TypedDict):
    """One HiGHS run: what it optimised, how it ended, seconds, its certified relative gap."""

    what: str
    termination: str
    time_s: float
    gap: float | None


class SolverJSON(TypedDict):
    """How the answer was found and what is proven: `gap` bounds the distance to the optimum."""

    name: Literal["highs"]
    time_s: float
    build_s: float
    gap: float | None
    proven_optimal: bool
    proven_within: float  # proven_optimal means gap <= this (1e-6; 0.01 under batched verifiers)
    tie_break: str
    candidates: int
    pruned_dominated: int
    stages: list[StageJSON]
    load_levels: NotRequired[dict[str, int]]


class ConstraintJSON(TypedDict):
    """A fleet constraint on the answer: its limit, the value reached, whether it binds."""

    constraint: str
    limit: float
    value: float
    unit: str
    binding: bool


class RelaxationJSON(TypedDict):
    """One limit to change to make an infeasible spec feasible: from `limit` to `relax_to`."""

    constraint: str
    label: str
    limit: float
    relax_to: float
    unit: str


class StructuralJSON(TypedDict):
    """A pool no number can fix (no profile, nothing fits memory, pins exclude all)."""

    device: str
    reasons: list[str]


class DiagnosisJSON(TypedDict):
    """Why a spec is infeasible: the fewest, smallest relaxations and what they conflict with."""

    message: str
    relaxations: list[RelaxationJSON]
    conflicts_with: list[str]
    structural: list[StructuralJSON]


class AlternativeJSON(TypedDict):
    """Another configuration for a pool: its loss (runner-up) or gain and broken constraints."""

    config: str
    target: str
    draft: str
    quant: str
    k: int
    loss: NotRequired[float]
    gain: NotRequired[float]
    constraints: NotRequired[list[str]]


class ExplanationJSON(TypedDict):
    """Why a pool got its configuration: the runner-up, and better moves a constraint blocks."""

    device: str
    split: bool
    runner_up: AlternativeJSON | None
    blocked_by: list[AlternativeJSON]


class SimulatedJSON(TypedDict):
    """A batched verifier's devices played forward step by step (`solve --simulate`).

    Goodput is the sum over the verifier's devices (tok/s); `model_error` is (model -
    simulated) / simulated; `jitter`, `seeds` and `rounds` are what the simulation assumed.
    """

    devices: int
    goodput_tok_s: float
    goodput_range_tok_s: list[float]
    model_goodput_tok_s: float
    model_error: float
    mean_step: float
    jitter: float
    seeds: int
    rounds: int


class VerifierJSON(TypedDict):
    """A batched verifier as the fleet settles it: replicas, requests in flight, T per K."""

    target: str
    replicas: int
    in_flight_per_replica: float
    latency_s_by_k: dict[str, float]
    cost_usd_per_hour: float
    simulated: NotRequired[SimulatedJSON]


class RobustJSON(TypedDict):
    """A robust solve's price: its objective against the nominal optimum of the same spec.

    `constraints` of a robust answer hold their worst value over the box (`margins`)."""

    margins: dict[str, float]
    level: float | None  # measured intervals of alpha used at this confidence level
    measured_intervals: int  # (profile, target, K) whose measured interval of alpha was read
    objective: float | None
    nominal_optimum: float | None
    nominal_status: str
    price: float | None  # relative loss of the objective, (nominal - robust) / |nominal|


class BreakingPointJSON(TypedDict):
    """How far one parameter may move against the plan before a constraint breaks."""

    parameter: str
    direction: Literal["up", "down"]
    holds_to_factor: float | None  # None: holds over the whole scan
    breaks: list[str]
    scanned_to_factor: float


class ElasticityJSON(TypedDict):
    """d ln(objective) / d ln(parameter) at the plan (None: not defined there)."""

    parameter: str
    elasticity: float | None


class SensitivityJSON(TypedDict):
    """Which measured numbers the plan depends on most (`configspec_opt.what_if`)."""

    breaking_points: list[BreakingPointJSON]
    elasticities: list[ElasticityJSON]  # largest |elasticity| first


class SolveJSON(TypedDict):
    """`configspec solve --json`: one row per (pool, configuration) in `assignments`."""

    status: str
    objective: ObjectiveJSON
    assignments: list[MetricValues]
    fleet: MetricValues | None
    solver: SolverJSON
    constraints: NotRequired[list[ConstraintJSON]]
    split_pools: NotRequired[list[str]]
    message: NotRequired[str]
    diagnosis: NotRequired[DiagnosisJSON]
    explain: NotRequired[list[ExplanationJSON]]
    spec_sha256: NotRequired[str]
    warnings: NotRequired[list[str]]
    robust: NotRequired[RobustJSON]
    sensitivity: NotRequired[SensitivityJSON]


class AxisJSON(TypedDict):
    """One axis of a Pareto front: the metric and which way is better."""

    sense: Literal["maximize", "minimize"]
    metric: str


class PointAssignmentJSON(TypedDict):
    """A pool's share of one Pareto point: devices on one configuration."""

    device: str
    count: int
    target: str
    draft: str
    quant: str
    k: int


class ParetoPointJSON(TypedDict):
    """One non-dominated fleet assignment: both metrics and the full fleet figures."""

    x: float
    y: float
    fleet: MetricValues | None
    assignments: list[PointAssignmentJSON]


class ParetoJSON(TypedDict):
    """`configspec pareto --json`: `complete` false when cut short or sampled."""

    x: AxisJSON
    y: AxisJSON
    complete: bool
    time_s: float
    points: list[ParetoPointJSON]
    message: NotRequired[str]


def explanation_summary(e: ExplanationJSON) -> str:
    """One line a person reads: the runner-up, and the best move a constraint blocks."""
    parts = []
    runner = e["runner_up"]
    if runner:
        loss = runner.get("loss", 0.0)
        parts.append(f"runner-up {runner['config']} " + (
            f"(-{loss:.4g})" if loss >= 0 else
            f"(+{-loss:.4g}: better than this assignment, which is not proven optimal)"))
    if e["blocked_by"]:
        b = e["blocked_by"][0]
        parts.append(f"{b['config']} would gain {b.get('gain', 0.0):.4g} but breaks "
                     + ", ".join(b.get("constraints", [])))
    return "; ".join(parts) or "no alternative"
