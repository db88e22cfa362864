"""What the figures show: every candidate of the spec, and what the solver picked.

Candidates come from `build_problem(..., prune=False, apply_slo=False)`, so a
figure shows the whole configuration space as the paper does, not only what
the constraints allow; the solver's choices (one per objective asked for)
are the points the figures mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from configspec_opt.candidates import Candidate
from configspec_opt.consistency import devices_without_power
from configspec_opt.errors import ConfigspecError, UsageError
from configspec_opt.problem import build_problem
from configspec_opt.spec import Metric, Objective, Spec

Variant = tuple[str, str, str]  # (target, draft, quant)


class Kind(str, Enum):
    """Figure kinds, named after what they plot (paper figure in the help)."""

    goodput_k = "goodput-k"  # Fig. 2
    goodput = "goodput"  # Fig. 3
    cost = "cost"  # Fig. 4
    energy = "energy"  # Fig. 5
    pareto = "pareto"  # Fig. 6
    front = "front"  # the fleet front of `configspec pareto`


PAPER_FIGURE = {Kind.goodput_k: 2, Kind.goodput: 3, Kind.cost: 4, Kind.energy: 5,
                Kind.pareto: 6}


@dataclass(frozen=True)
class Axis:
    """A per-candidate metric as a figure axis."""

    attr: str
    label: str
    unit: str
    better: Literal["max", "min"]
    scale: float = 1.0  # plotted value = metric * scale

    @property
    def title(self) -> str:
        """The axis label with its unit, e.g. "goodput (tok/s)"."""
        return f"{self.label} ({self.unit})"

    def value(self, c: Candidate) -> float | None:
        """The plotted value (metric times `scale`); None where the candidate lacks the metric."""
        v = getattr(c, self.attr)
        return None if v is None else float(v) * self.scale


GOODPUT = Axis("goodput_tok_s", "goodput", "tok/s", "max")
COST = Axis("cost_efficiency_tok_per_usd", "cost efficiency", "10³ tok/$", "max", 1e-3)
ENERGY = Axis("energy_j_per_tok", "energy per accepted token", "J/tok", "min")
BAR_AXIS = {Kind.goodput: GOODPUT, Kind.cost: COST, Kind.energy: ENERGY}


@dataclass(frozen=True)
class Choice:
    """The solver's assignment for one objective; `note` says what was left out."""

    label: str
    candidates: list[Candidate]
    note: str = ""


@dataclass
class PlotData:
    """Everything a figure shows, computed once from the spec so drawing needs no solver.

    `no_power` lists devices without power data: left out of energy axes and
    of energy objectives' choices rather than drawn as zero.
    """

    name: str
    devices: list[str]
    candidates: list[Candidate]
    no_power: list[str]
    k_values: list[int]
    variants: list[Variant] = field(default_factory=list)  # with a candidate, in spec order
    choices: list[Choice] = field(default_factory=list)

    @property
    def multi_target(self) -> bool:
        """Whether variants point at more than one target, so labels must name it."""
        return len({v[0] for v in self.variants}) > 1

    def variant_label(self, v: Variant, sep: str = " ") -> str:
        """"draft quant", plus "→ target" when several targets are plotted."""
        text = f"{v[1]}{sep}{v[2]}"
        return f"{text}{sep}→ {v[0]}" if self.multi_target else text

    def line(self, device: str, v: Variant) -> list[Candidate]:
        """One (device, variant) over K, in K order."""
        return sorted((c for c in self.candidates
                       if c.device == device and (c.target, c.draft, c.quant) == v),
                      key=lambda c: c.k)

    def bar(self, device: str, v: Variant, axis: Axis, k: int | None) -> Candidate | None:
        """The candidate a bar shows: at K=k, or the best K for `axis` when k is None."""
        line = [c for c in self.line(device, v) if axis.value(c) is not None]
        if k is not None:
            return next((c for c in line if c.k == k), None)
        if not line:
            return None
        sign = 1.0 if axis.better == "max" else -1.0
        return max(line, key=lambda c: (sign * (axis.value(c) or 0.0), -c.k))


def collect(
    spec: Spec, objectives: list[Objective | None], *, only: set[str] | None = None,
) -> PlotData:
    """Every candidate of the (selected) pools and the solver's choice per objective."""
    structural = build_problem(spec, only=only, prune=False, apply_slo=False).structural
    data = PlotData(
        name=spec.name,
        devices=[pc.device.name for pc in structural],
        candidates=[c for pc in structural for c in pc.candidates],
        no_power=devices_without_power(spec, only),
        k_values=list(spec.search.k.values()),
    )
    present = {(c.target, c.draft, c.quant) for c in data.candidates}
    data.variants = [(t.name, d.name, q) for t in spec.targets for d in spec.drafts
                     for q in d.quants if (t.name, d.name, q) in present]
    data.choices = [choose(spec, obj, only, data.no_power) for obj in objectives]
    return data


def choose(spec: Spec, objective: Objective | None, only: set[str] | None,
           no_power: list[str]) -> Choice:
    """Solve for `objective`; pools without power data sit out an energy objective."""
    objective = objective or spec.objective
    label = objective.describe()
    pools = set(only) if only is not None else {d.name for d in spec.devices}
    note = ""
    if any(t.metric is Metric.energy for t in objective.terms()) and no_power:
        pools -= set(no_power)
        note = f"without {', '.join(no_power)}: no power data"
    if not pools:
        return Choice(label, [], note or "no pool selected")
    try:
        from solvers.solve import solve  # lazy: start-up

        sol = solve(spec, objective=objective, only=pools if note or only else None,
                    diagnose=False)
    except ConfigspecError as exc:  # no solver installed, or an objective it cannot take
        return Choice(label, [], str(exc).splitlines()[0])
    if not sol.assignment:
        return Choice(label, [], f"{sol.status.value}: nothing to mark")
    return Choice(label, [c for c, _ in sol.assignment], note)


def check_k(data: PlotData, k: int | None) -> None:
    """Refuse (UsageError) a K the spec does not search, which would plot an empty figure."""
    if k is not None and k not in data.k_values:
        raise UsageError(f"K={k} is outside the spec's search range "
                         f"{data.k_values[0]}..{data.k_values[-1]}")
