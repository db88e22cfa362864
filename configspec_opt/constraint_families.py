"""Constraint families: each kind of constraint a spec can state, as one object.

A family knows, for its instances in one spec:

* how it enters the MILP (`rows`: linear rows over the candidates, or for
  the variant limit `variant_limit`, which the solvers model with one
  binary per variant);
* its elastic form for the diagnosis (`elastic`: what can be relaxed, by
  how much at most, and how a slack becomes the relaxed limit);
* how it is checked on an assignment (`broken`) and reported (`usage`:
  limit, value, binding; `tight`: at its limit within the solver's
  tolerance, what a diagnosis says a relaxation conflicts with).

`families_for` lists them in the spec's order; the formulation, the fleet
check, the report and the diagnosis all iterate that one list.  Adding a
fleet constraint is one class here (see `DevicesPerTarget`) plus its field in
`spec.FleetConstraints`.  Per-device SLOs are a family too (`DeviceSlos`):
they remove candidates instead of adding rows.  Pins and memory limits are
not relaxable by a number and stay structural (`candidates`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from configspec_opt import tails
from configspec_opt.candidates import Candidate
from configspec_opt.metric_registry import BY_FLEET_BOUND, BY_SLO, BY_TAIL_SLO, MetricDef, TailDef
from configspec_opt.results import ConstraintJSON
from configspec_opt.robust import corner_candidates, is_robust
from configspec_opt.rows import (
    METRICS,
    REL_TOL,
    Assignment,
    Coef,
    Row,
    ratio_row,
    row_activity,
    row_size,
    row_violation,
)
from configspec_opt.spec import DeviceSLO, FleetConstraints, Spec
from configspec_opt.verifiers import VerifierPlan

if TYPE_CHECKING:
    from configspec_opt.problem import Problem

VARIANT_LIMIT_KEY = "constraints.fleet.max_distinct_variants"


# --- what a report and a diagnosis read ----------------------------------


@dataclass(frozen=True)
class Usage:
    """A constraint on an assignment: its limit, the value reached, whether it binds."""

    constraint: str
    limit: float
    value: float
    unit: str
    binding: bool

    def to_dict(self) -> ConstraintJSON:
        """The report's `constraints` entry."""
        return {"constraint": self.constraint, "limit": self.limit, "value": self.value,
                "unit": self.unit, "binding": self.binding}


@dataclass
class Relaxable:
    """One limit the diagnosis may relax, with one slack for all its parts.

    `kind` says how the solver layer makes it elastic: ``rows`` adds the
    slack to each row's right-hand side, ``slo`` lets candidates that miss the
    SLO by at most the slack be used, ``variants`` adds it to the variant limit.
    `direction` is +1 where relaxing raises the limit, -1 where it lowers it;
    slacks are in units of `scale`, bounded by `big_m`.
    """

    key: str
    label: str
    unit: str
    limit: float
    direction: int
    big_m: float
    scale: float
    kind: Literal["rows", "slo", "variants"]
    rows: list[Row] = field(default_factory=list)
    misses: list[tuple[int, float]] = field(default_factory=list)  # (candidate, miss)
    integer: bool = False

    def relax_to(self, slack: float, assignment: Assignment,
                 replicas: Mapping[str, int] | None = None,
                 plans: Mapping[str, VerifierPlan] | None = None) -> float:
        """The limit that admits `assignment` (and its replicas), whose slack is `slack`."""
        row = self.rows[0] if len(self.rows) == 1 else None
        if row is not None and row.ratio is not None:
            # a ratio bound: the relaxed limit is the ratio the relaxed assignment reaches
            value = _ratio_value(row, assignment, replicas or {}, plans or {})
            return value * (1 + self.direction * 1e-6)
        if self.integer:
            return self.limit + float(round(slack * self.scale + 0.49))
        # a margin above the solver's feasibility tolerance
        return self.limit + self.direction * (slack * self.scale * (1 + 1e-6)
                                              + 1e-7 * self.scale)


# --- the families ---------------------------------------------------------


class Family:
    """One constraint of the spec; subclasses say how it enters, relaxes and reports."""

    key: str

    def rows(self) -> list[Row]:
        """Linear rows it adds to the MILP."""
        return []

    def broken(self, problem: Problem, assignment: Assignment,
               replicas: Mapping[str, int] | None, rel_tol: float = REL_TOL) -> list[str]:
        """Its keys that `assignment` breaks."""
        return []

    def usage(self, problem: Problem, assignment: Assignment,
              replicas: Mapping[str, int]) -> list[Usage]:
        """Limit, value and binding on a solution (the report's `constraints`)."""
        return []

    def elastic(self, problem: Problem) -> list[Relaxable]:
        """What the diagnosis may relax (on a problem built without SLO filtering)."""
        return []

    def tight(self, problem: Problem, assignment: Assignment,
              replicas: Mapping[str, int] | None = None) -> list[str]:
        """Its keys at their limit on `assignment` (within the solver's tolerance)."""
        return []


@dataclass
class RowFamily(Family):
    """A constraint stated as linear rows sharing one limit (one slack when relaxed)."""

    key: str
    label: str
    unit: str
    limit: float
    own_rows: list[Row]

    def rows(self) -> list[Row]:
        """The family's own rows, in the order they enter the MILP."""
        return self.own_rows

    def broken(self, problem: Problem, assignment: Assignment,
               replicas: Mapping[str, int] | None, rel_tol: float = REL_TOL) -> list[str]:
        """Its key when any of its rows is missed beyond the solver's tolerance."""
        for r in self.own_rows:
            if row_violation(r, row_activity(r, assignment, replicas), rel_tol,
                             row_size(r, problem.candidates)) > 0:
                return [self.key]
        return []

    def usage(self, problem: Problem, assignment: Assignment,
              replicas: Mapping[str, int]) -> list[Usage]:
        """Per row: the value reached (a ratio for a ratio bound) against the limit."""
        plans = {p.target: p for p in problem.verifiers}
        out = []
        for row in self.own_rows:
            if row.ratio is not None:
                value, limit = _ratio_value(row, assignment, replicas, plans), \
                    row.limit if row.limit is not None else row.rhs
            else:
                value, limit = row_activity(row, assignment, replicas), row.rhs
            binding = abs(value - limit) <= 1e3 * REL_TOL * max(1.0, abs(limit))
            out.append(Usage(row.key, limit, value, row.unit, binding))
        return out

    def elastic(self, problem: Problem) -> list[Relaxable]:
        """One slack for all rows, bounded by the worst any assignment could need."""
        cands = problem.candidates
        bounds = {p.target: (p.verifier.replicas.min, p.verifier.replicas.max)
                  for p in problem.verifiers}
        need, scale = 0.0, 0.0
        for row in self.own_rows:
            coefs = [row.coef(c) for c in cands]
            worst = 0.0
            for d, idx in enumerate(problem.by_pool):
                if not idx:
                    continue
                vals = [coefs[i] for i in idx]
                worst += problem.pools[d].count * (
                    max(vals) if row.sense == "<=" else -min(vals))
            for t, a in row.replica_coef.items():  # replicas at their worst for this row
                lo, hi = bounds.get(t, (0, 0))
                worst += max(a * lo, a * hi) if row.sense == "<=" else -min(a * lo, a * hi)
            coefs += list(row.replica_coef.values())
            need = max(need, worst - row.rhs if row.sense == "<=" else worst + row.rhs)
            scale = max(scale, max([abs(row.rhs)] + [abs(a) for a in coefs]))
        scale = scale or 1.0
        sense = self.own_rows[0].sense
        return [Relaxable(self.key, self.label, self.unit, self.limit,
                          1 if sense == "<=" else -1, max(need, 0.0) + scale, scale, "rows",
                          list(self.own_rows), integer=self.integer)]

    @property
    def integer(self) -> bool:
        """Whether the limit is a count (a relaxed limit is rounded up to a whole number)."""
        return False

    def tight(self, problem: Problem, assignment: Assignment,
              replicas: Mapping[str, int] | None = None) -> list[str]:
        """Rows whose activity equals the right-hand side (1e-6 relative)."""
        return [row.key for row in self.own_rows
                if abs(row_activity(row, assignment, replicas) - row.rhs)
                <= 1e-6 * max(1.0, abs(row.rhs))]


def _ratio_value(row: Row, assignment: Assignment, replicas: Mapping[str, int],
                 plans: Mapping[str, VerifierPlan]) -> float:
    form = row.ratio
    assert form is not None and form.den is not None
    num = sum(n * form.num(c) for c, n in assignment)
    den = sum(n * form.den(c) for c, n in assignment)
    for t, r in replicas.items():
        num += r * (form.num_per_replica(plans[t]) if form.num_per_replica else 0.0)
        den += r * (form.den_per_replica(plans[t]) if form.den_per_replica else 0.0)
    return num / den


class TargetCapacity(RowFamily):
    """`targets[].capacity_tok_s`: the tokens per second a fixed-latency verifier can take."""

    @classmethod
    def from_spec(cls, spec: Spec, plans: Sequence[VerifierPlan]) -> list[Family]:
        """One row per target that states a capacity."""
        out: list[Family] = []
        for t in spec.targets:
            if t.capacity_tok_s is not None:
                key = f"targets[{t.name}].capacity_tok_s"
                label = f"verifier capacity of {t.name}"
                row = Row(key, label, _target_load(t.name), "<=", t.capacity_tok_s,
                          unit="tok/s")
                out.append(cls(key, label, "tok/s", t.capacity_tok_s, [row]))
        return out


def _target_load(target: str) -> Coef:
    return lambda c: c.verifier_load_tok_s if c.target == target else 0.0


class FleetBound(RowFamily):
    """A `constraints.fleet` bound on a registered metric (sum or ratio over the fleet)."""

    @classmethod
    def make(cls, d: MetricDef, limit: float, plans: Sequence[VerifierPlan]) -> FleetBound:
        """The bound `d.fleet_bound` = `limit`, as one row (a ratio linearised: N - v*D)."""
        key = f"constraints.fleet.{d.fleet_bound}"
        label = f"fleet {d.label}"
        form = METRICS[d.metric]
        if form.kind == "ratio":
            assert form.den is not None
            replica = {p.target: -limit * form.den_per_replica(p) for p in plans} \
                if form.den_per_replica is not None else {}
            row = Row(key, label, ratio_row(form.num, form.den, limit), d.bound_sense, 0.0,
                      unit=d.unit, ratio=form, limit=limit, replica_coef=replica)
        else:
            replica = {p.target: form.num_per_replica(p) for p in plans} \
                if form.num_per_replica is not None else {}
            row = Row(key, label, form.num, d.bound_sense, limit, unit=d.unit,
                      replica_coef=replica)
        return cls(key, label, d.unit, limit, [row])


class DevicesPerTarget(RowFamily):
    """`constraints.fleet.max_devices_per_target`: devices one target's endpoint may serve.

    Serving endpoints cap concurrent sessions (connection pools, per-key
    quotas); the limit applies to every target alike, so relaxing it relaxes
    all of its rows by one slack.
    """

    @property
    def integer(self) -> bool:
        """A device count: a relaxed limit is a whole number."""
        return True

    @classmethod
    def from_spec(cls, spec: Spec, plans: Sequence[VerifierPlan]) -> list[Family]:
        """One family with a row per target, when the spec sets the limit."""
        limit = spec.constraints.fleet.max_devices_per_target
        if limit is None:
            return []
        key = "constraints.fleet.max_devices_per_target"
        rows = [Row(f"{key}[{t.name}]", f"devices served by {t.name}", _on_target(t.name),
                    "<=", float(limit), unit="devices") for t in spec.targets]
        return [cls(key, "devices per target", "devices", float(limit), rows)]


def _on_target(target: str) -> Coef:
    return lambda c: 1.0 if c.target == target else 0.0


@dataclass
class VariantLimit(Family):
    """`constraints.fleet.max_distinct_variants`: (draft, quant) files the fleet ships.

    Not a linear row over x: the solvers give each variant a binary z[v]
    (a pool's devices on v <= its count * z[v]) and bound the sum of z.
    """

    limit: int
    key: str = VARIANT_LIMIT_KEY

    def broken(self, problem: Problem, assignment: Assignment,
               replicas: Mapping[str, int] | None, rel_tol: float = REL_TOL) -> list[str]:
        """Its key when the assignment ships more variants than the limit."""
        return [self.key] if self.used(assignment) > self.limit else []

    def usage(self, problem: Problem, assignment: Assignment,
              replicas: Mapping[str, int]) -> list[Usage]:
        """Variants shipped against the limit; binding when at it."""
        used = self.used(assignment)
        return [Usage(self.key, self.limit, used, "", used >= self.limit)]

    def elastic(self, problem: Problem) -> list[Relaxable]:
        """The limit may rise by whole variants, at most to all of them."""
        variants = len({c.variant for c in problem.candidates})
        return [Relaxable(self.key, "distinct (draft, quant) variants", "", self.limit, 1,
                          float(variants), float(self.limit), "variants", integer=True)]

    def tight(self, problem: Problem, assignment: Assignment,
              replicas: Mapping[str, int] | None = None) -> list[str]:
        """Its key when the assignment ships as many variants as allowed."""
        return [self.key] if self.used(assignment) >= self.limit else []

    @staticmethod
    def used(assignment: Assignment) -> int:
        """Distinct (draft, quant) files the assignment ships."""
        return len({c.variant for c, n in assignment if n > 0})


@dataclass
class DeviceSlos(Family):
    """Per-device SLOs (`constraints.per_device`, `devices[].slo`): every device meets them.

    They enter the MILP by removing the candidates that miss them; relaxed,
    a candidate that misses an SLO by at most the slack may be used.
    """

    spec: Spec
    key: str = "constraints.per_device"

    def elastic(self, problem: Problem) -> list[Relaxable]:
        """One relaxable per stated SLO (a pool's own or `per_device`).

        Each lists the candidates that miss it and by how much.
        """
        misses: dict[str, list[tuple[int, float]]] = {}
        limits: dict[str, float] = {}
        # robust: a candidate misses an SLO by its worst over the box's corners
        corners = corner_candidates(self.spec, {pc.device.name for pc in problem.structural}) \
            if is_robust(self.spec) else {}
        if any(tails.has_tail_slo(self.spec.slo_for(d)) for d in self.spec.devices):
            tails.warm(problem.candidates)
            tails.warm(c for alts in corners.values() for c in alts)
        for i, c in enumerate(problem.candidates):
            device = problem.structural[c.pool].device
            worst: dict[str, float] = {}
            for x in (c, *corners.get((c.device, c.config), ())):
                for fld, miss in slo_violations(x, self.spec.slo_for(device)).items():
                    worst[fld] = max(worst.get(fld, 0.0), miss)
            for fld, miss in worst.items():
                src = self.source(device.name, fld)
                if src is not None:
                    misses.setdefault(src[0], []).append((i, miss))
                    limits[src[0]] = src[1]
        out = []
        for key, viol in misses.items():
            name = key.rsplit(".", 1)[1]
            d: MetricDef | TailDef = BY_SLO[name] if name in BY_SLO else BY_TAIL_SLO[name]
            limit = limits[key]
            out.append(Relaxable(key, f"per-device {d.slo}", d.unit, limit,
                                 1 if d.bound_sense == "<=" else -1,
                                 max(v for _, v in viol), max(abs(limit), 1e-9), "slo",
                                 misses=viol))
        return out

    def source(self, device_name: str, fld: str) -> tuple[str, float] | None:
        """Where the SLO `fld` of a pool is stated: its own `slo`, else `per_device`."""
        spec = self.spec
        for i, d in enumerate(spec.devices):
            if d.name == device_name and d.slo is not None and getattr(d.slo, fld) is not None:
                return f"devices[{i}].slo.{fld}", float(getattr(d.slo, fld))
        v = getattr(spec.constraints.per_device, fld)
        return (f"constraints.per_device.{fld}", float(v)) if v is not None else None


_SLOS = tuple((name, BY_SLO[name], str(BY_SLO[name].per_device))
              for name in DeviceSLO.model_fields if name in BY_SLO)
# (SLO field, its metric, the candidate attribute it bounds) for every mean SLO
MEAN_SLOS = _SLOS


def slo_violations(c: Candidate, slo: DeviceSLO, amounts: bool = True) -> dict[str, float]:
    """How far a candidate misses each SLO it misses (0 < amount, in the SLO's unit).

    A tail SLO (`max_tpot_p95_s`, ...) is missed where the candidate's CDF at the bound
    is below the percentile's level (`tails.misses`; `tails.warm` computes many at
    once); without `amounts` its miss is inf instead of percentile - bound, which a
    filter does not need and which costs a search per candidate.
    """
    out: dict[str, float] = {}
    for name, d, attr in _SLOS:
        bound = getattr(slo, name)
        value = getattr(c, attr)
        if bound is None or value is None:
            continue
        miss = bound - value if d.bound_sense == ">=" else value - bound
        if miss > 1e-12 * max(1.0, abs(bound)):
            out[name] = miss
    bounds = [(t, float(getattr(slo, name))) for name, t in BY_TAIL_SLO.items()
              if getattr(slo, name) is not None]
    if bounds:
        out.update(tails.misses(c, bounds, amounts))
    return out


@dataclass
class FleetTail(RowFamily):
    """A `constraints.fleet` tail bound: the percentile over every request of the fleet.

    The fleet's TPOT (or TTFT) distribution mixes the devices' by their request rates
    r (requests per second): F(t) = sum n_c r_c F_c(t) / sum n_c r_c.  Its q-quantile is
    at most L exactly when F(L) >= q, that is sum n_c r_c (q - F_c(L)) <= 0: one linear
    row in the device counts, no approximation (docs/tails.md).
    """

    tail: TailDef | None = None

    @classmethod
    def from_spec(cls, spec: Spec) -> list[Family]:
        """One family per tail bound in `constraints.fleet`."""
        out: list[Family] = []
        for name, t in BY_TAIL_SLO.items():
            limit = getattr(spec.constraints.fleet, name)
            if limit is None:
                continue
            key = f"constraints.fleet.{name}"
            row = Row(key, f"fleet {t.label}", _tail_coef(t, float(limit)), "<=", 0.0,
                      unit="requests/s")
            out.append(cls(key, f"fleet {t.label}", t.unit, float(limit), [row], t))
        return out

    def value(self, assignment: Assignment) -> float | None:
        """The fleet percentile this family bounds, on `assignment`."""
        assert self.tail is not None
        return tails.fleet_quantile(assignment, self.tail)

    def usage(self, problem: Problem, assignment: Assignment,
              replicas: Mapping[str, int]) -> list[Usage]:
        """The fleet percentile reached against the limit."""
        value = self.value(assignment)
        if value is None:
            return []
        binding = abs(value - self.limit) <= 1e-3 * self.limit
        return [Usage(self.key, self.limit, value, self.unit, binding)]

    def elastic(self, problem: Problem) -> list[Relaxable]:
        """The row's slack, read back as the percentile the relaxed assignment reaches."""
        return [_TailRelaxable(**{**{f: getattr(r, f) for f in r.__dataclass_fields__},
                                  "unit": self.unit}, family=self)
                for r in super().elastic(problem)]


@dataclass
class _TailRelaxable(Relaxable):
    family: FleetTail | None = None

    def relax_to(self, slack: float, assignment: Assignment,
                 replicas: Mapping[str, int] | None = None,
                 plans: Mapping[str, VerifierPlan] | None = None) -> float:
        """The fleet percentile of the relaxed assignment, a hair above it."""
        assert self.family is not None
        value = self.family.value(assignment)
        return max(self.limit, (value or self.limit) * (1 + 1e-6))


def _tail_coef(t: TailDef, limit: float) -> Coef:
    def coef(c: Candidate) -> float:
        return tails.figures(c).requests_per_s * (t.quantile - tails.cdf_at(c, t.kind, limit))
    return coef


def families_for(spec: Spec, plans: Sequence[VerifierPlan] = ()) -> list[Family]:
    """Every fleet constraint of `spec`, in the order rows enter the MILP."""
    out: list[Family] = [*TargetCapacity.from_spec(spec, plans)]
    f = spec.constraints.fleet
    for name in FleetConstraints.model_fields:
        value = getattr(f, name)
        if value is not None and name in BY_FLEET_BOUND:
            out.append(FleetBound.make(BY_FLEET_BOUND[name], float(value), plans))
    if f.max_distinct_variants is not None:
        out.append(VariantLimit(f.max_distinct_variants))
    out.extend(DevicesPerTarget.from_spec(spec, plans))
    out.extend(FleetTail.from_spec(spec))
    return out


@dataclass(frozen=True)
class Declared:
    """A limit as the spec states it, at the path a diagnosis names (no assignment needed)."""

    constraint: str
    label: str
    limit: float
    unit: str
    sense: Literal["<=", ">="]


def declared_constraints(spec: Spec) -> list[Declared]:
    """Every numeric limit the spec declares: `constraints.per_device`, each pool's own
    `slo`, and the fleet constraints in MILP order.  What a report lists when no
    assignment exists whose values it could show against them."""
    slos: dict[str, MetricDef | TailDef] = {**BY_SLO, **BY_TAIL_SLO}
    out = [Declared(f"constraints.per_device.{name}", f"per-device {d.label}",
                    float(getattr(spec.constraints.per_device, name)), d.unit, d.bound_sense)
           for name, d in slos.items()
           if getattr(spec.constraints.per_device, name) is not None]
    for i, device in enumerate(spec.devices):
        for name, d in slos.items():
            value = getattr(device.slo, name) if device.slo is not None else None
            if value is not None:
                out.append(Declared(f"devices[{i}].slo.{name}",
                                    f"{d.label} of pool {device.name}", float(value), d.unit,
                                    d.bound_sense))
    for fam in families_for(spec):
        if isinstance(fam, RowFamily):
            out.append(Declared(fam.key, fam.label, fam.limit, fam.unit,
                                "<=" if isinstance(fam, FleetTail) else fam.own_rows[0].sense))
        elif isinstance(fam, VariantLimit):
            out.append(Declared(fam.key, "distinct (draft, quant) variants", float(fam.limit),
                                "", "<="))
    return out


def spec_with_limit(data: dict[str, object], key: str, value: float, integer: bool) -> None:
    """Write a relaxed limit back at its spec path (`targets[name].f`, `devices[i].slo.f`,
    `constraints.section.f`) in a `Spec.model_dump` dict."""
    new: float | int = round(value) if integer else value
    if key.startswith("targets["):
        name = key[len("targets["):key.index("]")]
        targets = data["targets"]
        assert isinstance(targets, list)
        target = next(t for t in targets if t["name"] == name)
        target[key.rsplit(".", 1)[1]] = new
    elif key.startswith("devices["):
        i = int(key[len("devices["):key.index("]")])
        devices = data["devices"]
        assert isinstance(devices, list)
        devices[i]["slo"][key.rsplit(".", 1)[1]] = new
    else:
        _, section, fld = key.split(".")
        constraints = data["constraints"]
        assert isinstance(constraints, dict)
        constraints[section][fld] = new


__all__ = ["MEAN_SLOS", "REL_TOL", "VARIANT_LIMIT_KEY", "DeviceSlos", "DevicesPerTarget", "Family",
           "FleetBound", "FleetTail", "Relaxable", "RowFamily", "TargetCapacity", "Usage",
           "VariantLimit", "families_for", "row_activity", "row_size", "row_violation",
           "slo_violations", "spec_with_limit"]
