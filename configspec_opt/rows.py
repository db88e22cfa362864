"""Linear rows over the candidates, and metrics as per-candidate coefficients.

Plain data every layer above shares: a constraint family states itself as
`Row`s, the solvers turn rows into the MILP, the fleet check and the report
evaluate them on an assignment.  A metric's `MetricForm` is derived from its
declaration in `metric_registry`, never written by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


# --- rows on an assignment ----------------------------------------------

Assignment = Sequence[tuple[Candidate, int]]

# Constraints hold to HiGHS's MIP feasibility tolerance (1e-6) on rows that
# the solvers scale to unit size when their numbers are small; checks here
# allow a little more so that no solver answer is rejected.
REL_TOL = 1.5e-6


def row_size(row: Row, candidates: Sequence[Candidate]) -> float:
    """The size of a row's numbers: what its feasibility tolerance is relative to.

    For a linearised ratio N - v*D it is the size of the terms, not of their
    cancelling difference.
    """
    if row.ratio is not None and row.ratio.den is not None and row.limit is not None:
        num, den, v = row.ratio.num, row.ratio.den, row.limit
        return max((max(abs(num(c)), abs(v * den(c))) for c in candidates), default=0.0)
    return max([abs(row.rhs), abs(row.t_coef), *map(abs, row.replica_coef.values())]
               + [abs(row.coef(c)) for c in candidates])


def row_activity(row: Row, assignment: Assignment,
                 replicas: Mapping[str, int] | None = None) -> float:
    """The row's left-hand side on an assignment (and replica counts)."""
    act = sum(n * row.coef(c) for c, n in assignment if n > 0)
    if row.replica_coef:
        act += sum(a * (replicas or {}).get(t, 0) for t, a in row.replica_coef.items())
    if row.t_coef:
        act += row.t_coef * min((c.goodput_tok_s for c, n in assignment if n > 0), default=0.0)
    return act


def row_violation(row: Row, activity: float, rel_tol: float = REL_TOL,
                  size: float | None = None) -> float:
    """How far `activity` is on the wrong side of the row (0 when satisfied).

    Mirrors the solver: rows whose numbers are below 1 are scaled to unit size
    (so the tolerance is relative to their size), larger rows keep an absolute
    tolerance.  A ratio bound is checked on its linear form N - v*D, like HiGHS.
    """
    size = abs(row.rhs) if size is None else size
    tol = rel_tol * (size if 0.0 < size < 1.0 else 1.0)
    miss = activity - row.rhs if row.sense == "<=" else row.rhs - activity
    return miss if miss > tol else 0.0
