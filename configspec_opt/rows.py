"""Linear rows over the candidates, and metrics as per-candidate coefficients.

Plain data every layer above shares: a constraint family states itself as
`Row`s, the solvers turn rows into the MILP, the fleet check and the report
evaluate them on an assignment.  A metric's `MetricForm` is derived from its
declaration in `metric_registry`, never written by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Literal

from configspec_opt.candidates import Candidate
from configspec_opt.metric_registry import REGISTRY, MetricDef
from configspec_opt.spec import Metric
from configspec_opt.verifiers import VerifierPlan

Sense = Literal["<=", ">="]
Coef = Callable[[Candidate], float]


@dataclass(frozen=True)
class MetricForm:
    """How a fleet metric is computed from per-candidate coefficients."""

    kind: Literal["sum", "ratio", "min"]
    num: Coef
    den: Coef | None = None
    unit: str = ""
    # What one replica of a batched verifier adds to num (or den): $/h, $/s.
    num_per_replica: Callable[[VerifierPlan], float] | None = None
    den_per_replica: Callable[[VerifierPlan], float] | None = None


@dataclass
class Row:
    """sum_i coef[i] * x_i (+ t_coef * t)  sense  rhs, over the problem's candidates."""

    key: str  # where it comes from in the spec, e.g. constraints.fleet.max_power_w
    label: str  # what a person reads
    coef: Coef
    sense: Sense
    rhs: float
    t_coef: float = 0.0
    unit: str = ""
    ratio: MetricForm | None = None  # set when the row linearises a bound on a ratio
    limit: float | None = None  # the bound as the user wrote it (ratio rows: the ratio)
    replica_coef: dict[str, float] = field(default_factory=dict)  # per replica of a target
    internal: bool = False  # a modelling row (verifier load levels), not a user's constraint


def candidate_value(attr: str, needs_power: bool, divisor: float = 1.0) -> Coef:
    """A candidate attribute as a coefficient; an unknown power is an error, never 0 W."""
    get = attrgetter(attr)
    if needs_power:
        def known(c: Candidate) -> float:
            value: float | None = get(c)
            if value is None:
                raise ValueError(f"no power data for {c.device}")
            return value
        return known
    if divisor != 1.0:
        return lambda c: float(get(c)) / divisor
    return get


def metric_form(d: MetricDef) -> MetricForm:
    """The declaration of a metric as coefficients of the MILP."""
    den = None if d.den is None else candidate_value(d.den, d.needs_power, d.den_divisor)
    if d.aggregation == "mean":
        den = _one_device
    num_r: Callable[[VerifierPlan], float] | None = None
    den_r: Callable[[VerifierPlan], float] | None = None
    if d.replica_price == "num":
        num_r = _replica_price(1.0)
    elif d.replica_price == "den":
        den_r = _replica_price(d.den_divisor)
    kind: Literal["sum", "ratio", "min"] = "ratio" if d.aggregation == "mean" else d.aggregation
    return MetricForm(kind, candidate_value(d.num, d.needs_power), den, d.unit, num_r, den_r)


def _one_device(c: Candidate) -> float:
    return 1.0


def _replica_price(divisor: float) -> Callable[[VerifierPlan], float]:
    if divisor == 1.0:
        return lambda p: p.price_usd_per_hour
    return lambda p: p.price_usd_per_hour / divisor


METRICS: dict[Metric, MetricForm] = {d.metric: metric_form(d) for d in REGISTRY}


def ratio_row(num: Coef, den: Coef, bound: float) -> Coef:
    """N/D vs bound, linearised as N - bound*D (D > 0)."""
    return lambda c: num(c) - bound * den(c)
