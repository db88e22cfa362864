"""Every metric, declared once: name, unit, better direction, formula, aggregation, keys.

The spec's vocabulary (`spec.Metric`, the SLO and fleet-constraint fields)
names metrics; everything that computes, bounds, prints or compares one —
candidate filtering by SLO, the fleet figures, the MILP's objective and
rows, the diagnosis, the report, the diff, Pareto axes and plots — reads
its row here.  Adding a metric is a `MetricDef` in `REGISTRY` plus its name
in `spec.Metric` (and, if it can be bounded, the SLO or fleet field in
`spec`); `tests/core/test_metric_registry.py` checks that the two agree.

The per-device value of a metric is an attribute of `candidates.Candidate`
(computed there by the paper's formulas in `metrics`); this module only
says which attribute, so it sits below the candidates and the spec's
consistency checks can read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from configspec_opt.metrics import SECONDS_PER_HOUR
from configspec_opt.spec import Metric

Better = Literal["maximize", "minimize"]
Aggregation = Literal["sum", "ratio", "mean", "min"]


@dataclass(frozen=True)
class MetricDef:
    """One metric of a device and of the fleet.

    Attributes
    ----------
    num, den:
        Candidate attributes.  A ``sum`` adds ``count * num`` over the fleet, a
        ``min`` takes the smallest ``num`` of any configuration in use, a
        ``ratio`` is ``sum(num) / (sum(den) / den_divisor)``, a ``mean`` is the
        ratio with one per device as ``den`` (the average device).
    replica_price:
        Batched verifiers bill per replica: each replica adds its price ($/h,
        the unit of the candidates' cost) to ``num`` or ``den``.
    zero_den:
        The ratio's value where its denominator is zero (a free fleet has
        infinitely many tokens per dollar); None: not available.
    per_device, slo:
        The candidate attribute a per-device SLO field bounds, and that field
        (a ``min_`` field for a metric to maximise, ``max_`` otherwise).
    fleet_bound:
        The `constraints.fleet` field that bounds the fleet value.
    candidate_key:
        The metric's key in a per-device row of the JSON answer (and locks).
    diff_tolerance:
        Relative change below which `configspec diff` calls two values equal.
    """

    metric: Metric
    key: str
    label: str
    unit: str
    better: Better
    aggregation: Aggregation
    num: str
    den: str | None = None
    den_divisor: float = 1.0
    replica_price: Literal["num", "den"] | None = None
    zero_den: float | None = None
    needs_power: bool = False
    per_device: str | None = None
    slo: str | None = None
    fleet_bound: str | None = None
    candidate_key: str | None = None
    column: str = ""
    diff_tolerance: float = 1e-9

    @property
    def bound_sense(self) -> Literal["<=", ">="]:
        """How a bound on this metric reads: a floor for a metric to maximise, else a cap."""
        return ">=" if self.better == "maximize" else "<="


REGISTRY: tuple[MetricDef, ...] = (
    MetricDef(Metric.goodput, "goodput_tok_s", "goodput", "tok/s", "maximize", "sum",
              "goodput_tok_s", per_device="goodput_tok_s", slo="min_goodput_tok_s",
              fleet_bound="min_goodput_tok_s", candidate_key="goodput_tok_s", column="tok/s"),
    MetricDef(Metric.cost, "cost_usd_per_hour", "verifier cost", "$/h", "minimize", "sum",
              "cost_usd_per_hour", replica_price="num",
              fleet_bound="max_cost_usd_per_hour", candidate_key="cost_usd_per_hour",
              column="$/h"),
    MetricDef(Metric.verifier_load, "verifier_load_tok_s", "verifier load", "tok/s",
              "minimize", "sum", "verifier_load_tok_s", candidate_key="verifier_load_tok_s"),
    MetricDef(Metric.power, "power_w", "edge power", "W", "minimize", "sum", "power_w",
              needs_power=True, per_device="power_w", slo="max_power_w",
              fleet_bound="max_power_w", candidate_key="power_w", column="W"),
    MetricDef(Metric.cost_efficiency, "cost_efficiency_tok_per_usd", "cost efficiency",
              "tok/$", "maximize", "ratio", "goodput_tok_s", "cost_usd_per_hour",
              den_divisor=SECONDS_PER_HOUR, replica_price="den",
              zero_den=float("inf"), per_device="cost_efficiency_tok_per_usd",
              slo="min_cost_efficiency_tok_per_usd",
              fleet_bound="min_cost_efficiency_tok_per_usd", candidate_key="cost_tok_per_usd",
              column="tok/$"),
    MetricDef(Metric.energy, "energy_j_per_tok", "energy per token", "J/tok", "minimize",
              "ratio", "drafting_power_w", "goodput_tok_s", needs_power=True,
              per_device="energy_j_per_tok", slo="max_energy_j_per_tok",
              fleet_bound="max_energy_j_per_tok", candidate_key="energy_j_per_tok",
              column="J/tok"),
    MetricDef(Metric.min_goodput, "min_goodput_tok_s", "min goodput per device", "tok/s",
              "maximize", "min", "goodput_tok_s"),
    MetricDef(Metric.round_time, "mean_round_time_s", "mean round time", "s", "minimize",
              "mean", "round_time_s", per_device="round_time_s", slo="max_round_time_s",
              candidate_key="round_time_s", column="R s"),
)

BY_METRIC: dict[Metric, MetricDef] = {d.metric: d for d in REGISTRY}
BY_KEY: dict[str, MetricDef] = {d.key: d for d in REGISTRY}
BY_SLO: dict[str, MetricDef] = {d.slo: d for d in REGISTRY if d.slo is not None}
BY_FLEET_BOUND: dict[str, MetricDef] = {
    d.fleet_bound: d for d in REGISTRY if d.fleet_bound is not None}
POOL_COLUMNS: tuple[MetricDef, ...] = tuple(
    BY_METRIC[m] for m in (Metric.goodput, Metric.cost_efficiency, Metric.energy))
"""The per-pool figures a person compares first: the solve table and `configspec diff`."""
RATIO_METRICS = frozenset(d.metric for d in REGISTRY if d.aggregation in ("ratio", "mean"))
POWER_METRICS = frozenset(d.metric for d in REGISTRY if d.needs_power)


@dataclass(frozen=True)
class TailDef:
    """A percentile over requests of time per output token or time to first token.

    Not a `spec.Metric` (no objective or Pareto axis reads a percentile); a per-device
    SLO field and a fleet bound of the same name cap it (`slo`), the JSON answer's
    assignment rows and fleet carry it under `key` (docs/tails.md).
    """

    kind: Literal["tpot", "ttft"]
    percentile: int
    label: str
    unit: str = "s"
    better: Better = "minimize"

    @property
    def key(self) -> str:
        """JSON key: `tpot_p95_s`."""
        return f"{self.kind}_p{self.percentile}_s"

    @property
    def candidate_key(self) -> str:
        """The key of a per-device row (the same as the fleet's)."""
        return self.key

    @property
    def slo(self) -> str:
        """The per-device SLO field, and the fleet bound: `max_tpot_p95_s`."""
        return f"max_{self.key}"

    @property
    def quantile(self) -> float:
        """The percentile as a probability (0.95)."""
        return self.percentile / 100.0

    @property
    def bound_sense(self) -> Literal["<="]:
        """A cap: lower is better."""
        return "<="


TAIL_PERCENTILES = (50, 95, 99)
_TAIL_KINDS: tuple[tuple[Literal["tpot", "ttft"], str], ...] = (
    ("tpot", "time per output token"), ("ttft", "time to first token"))
TAILS: tuple[TailDef, ...] = tuple(
    TailDef(kind, pct, f"p{pct} {what}") for kind, what in _TAIL_KINDS
    for pct in TAIL_PERCENTILES)
BY_TAIL_SLO: dict[str, TailDef] = {d.slo: d for d in TAILS}


def metric_def(metric: Metric) -> MetricDef:
    """The declaration of `metric` (every `spec.Metric` has one)."""
    return BY_METRIC[metric]
