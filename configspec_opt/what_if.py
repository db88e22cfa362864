"""What-if: a fixed plan re-evaluated under changed parameters, without solving again.

A plan (a lock's assignments and replicas, or a fresh solve's) stays as it is; the
spec's measured numbers change (`acceptance*0.9`, `rtt_s*1.5`, `verify_latency+0.02`)
and the plan's figures, per-device SLOs and fleet constraints are computed again by
the code that reports a solve (`fleet.evaluate_settled`, `slo_violations`): batched
verifiers settle at the load the changed fleet creates, with the plan's replicas.

Two summaries follow from the same evaluation:

- **breaking points**: per parameter, how far it may move in its adverse direction
  (acceptance and draft speed down; rtt, verifier latency, power and price up) before
  the plan breaks a constraint, and which one breaks.  Found on a scan in steps of 5 %
  (up to x10, down to x0.05) and bisected to 0.1 % within the first step that
  breaks; a constraint that breaks and holds again further on would hide behind the
  first step that breaks it, never the other way round.
- **sensitivity**: the objective's elasticity to each parameter, (f(1+d) - f(1-d)) /
  (2 d f(1)) with d = 5 %: +1 means 1 % more of the parameter gives 1 % more objective.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from configspec_opt.candidates import Candidate, PoolCandidates, enumerate_candidates
from configspec_opt.constraint_families import slo_violations
from configspec_opt.errors import UsageError
from configspec_opt.fleet import FleetMetrics, evaluate_settled
from configspec_opt.problem import build_problem
from configspec_opt.results import BreakingPointJSON, ElasticityJSON, SensitivityJSON
from configspec_opt.spec import Spec
from configspec_opt.spec_changes import PARAMETERS, Change, Direction, changed_spec
from configspec_opt.verifiers import plans_for

SENSITIVITY_STEP = 0.05
BISECT_TO = 1e-3
_SCAN_UP = [1.0 + 0.05 * i for i in range(1, 21)] + [2.5, 3.0, 4.0, 5.0, 7.0, 10.0]
_SCAN_DOWN = [1.0 - 0.05 * i for i in range(1, 20)]


@dataclass(frozen=True)
class PlanRow:
    """One (pool, configuration) of a plan: how many of the pool's devices run it."""

    device: str
    count: int
    target: str
    draft: str
    quant: str
    k: int

    @property
    def config(self) -> tuple[str, str, str, int]:
        """(target, draft, quant, K), as `Candidate.config`."""
        return (self.target, self.draft, self.quant, self.k)


@dataclass(frozen=True)
class Plan:
    """A decision to re-evaluate: rows and each batched verifier's replicas."""

    rows: tuple[PlanRow, ...]
    replicas: Mapping[str, int] = field(default_factory=dict)
    source: str = "solve"

    @classmethod
    def of(cls, assignment: Sequence[tuple[Candidate, int]], replicas: Mapping[str, int],
           source: str = "solve") -> Plan:
        """From a solver's assignment and replicas."""
        return cls(tuple(PlanRow(c.device, n, *c.config) for c, n in assignment if n > 0),
                   dict(replicas), source)

    @classmethod
    def from_result(cls, data: Mapping[str, Any], source: str) -> Plan:
        """From a lock or a `solve --json` document (the same keys)."""
        rows = tuple(PlanRow(str(a["device"]), int(a["count"]), str(a["target"]),
                             str(a["draft"]), str(a["quant"]), int(a["k"]))
                     for a in data.get("assignments") or [])
        if not rows:
            raise UsageError(f"{source} has no assignments to re-evaluate "
                             f"(status {data.get('status', 'unknown')})")
        fleet = data.get("fleet") or {}
        replicas = {str(v["target"]): int(v["replicas"]) for v in fleet.get("verifiers") or []}
        return cls(rows, replicas, source)


@dataclass
class PoolFigures:
    """One row of the plan under one set of parameters."""

    row: PlanRow
    goodput_tok_s: float
    round_time_s: float
    broken: list[str]


@dataclass
class Outcome:
    """The plan under one set of parameters: figures, and what it breaks."""

    objective: float | None
    fleet: FleetMetrics | None
    pools: list[PoolFigures]
    broken: list[str]

    @property
    def holds(self) -> bool:
        """Whether every constraint holds."""
        return not self.broken


def _candidates(spec: Spec, plan: Plan) -> tuple[list[PoolCandidates],
                                                 list[tuple[Candidate, int]]]:
    devices = {r.device for r in plan.rows}
    known = {d.name for d in spec.devices}
    unknown = sorted(devices - known)
    if unknown:
        raise UsageError(f"the plan names devices the spec does not: {', '.join(unknown)}")
    structural = enumerate_candidates(spec, devices)
    by_device = {pc.device.name: pc for pc in structural}
    assignment: list[tuple[Candidate, int]] = []
    for row in plan.rows:
        pc = by_device[row.device]
        found = [c for c in pc.candidates if c.config == row.config]
        if not found:
            raise UsageError(f"{row.device}: {row.draft} {row.quant} K={row.k} -> "
                             f"{row.target} is not a configuration of this spec (no profile "
                             "or no alpha for that K)")
        assignment.append((found[0], row.count))
    used = {c.config for c, _ in assignment}
    kept = [PoolCandidates(pc.index, pc.device, [c for c in pc.candidates
                                                 if c.config in used])
            for pc in structural]
    return kept, assignment


def evaluate(spec: Spec, plan: Plan) -> Outcome:
    """The plan's figures and broken constraints under `spec`'s numbers, as they are (a
    robust spec's box is dropped: the numbers given are the ones that happen)."""
    spec = spec.model_copy(update={"robust": None})
    structural, assignment = _candidates(spec, plan)
    # the plans give the fleet rows their replica terms; one level of copies is enough,
    # as the plan is settled at its true load below
    plans = [replace(p, only_level=len(p.levels)) for p in plans_for(spec)]
    problem = build_problem(spec, structural=structural, apply_slo=False, prune=False,
                            plans=plans)
    settled = evaluate_settled(problem, spec.objective, assignment, plan.replicas)
    if settled is None:
        overloaded = sorted({c.target for c, _ in assignment
                             if any(p.target == c.target for p in problem.verifiers)})
        return Outcome(None, None, [], [f"verifier.{t}.overloaded" for t in overloaded]
                       or ["objective.not_available"])
    devices = {pc.device.name: pc.device for pc in structural}
    by_pool = {(c.device, c.config): c for c, _ in settled.assignment}
    pools: list[PoolFigures] = []
    broken: list[str] = []
    for row, (c0, _) in zip(plan.rows, assignment, strict=True):
        c = by_pool.get((row.device, row.config), c0)
        slo = [f"slo.{k}@{row.device}" for k in
               slo_violations(c, spec.slo_for(devices[row.device]), amounts=False)]
        pools.append(PoolFigures(row, c.goodput_tok_s, c.round_time_s, slo))
        broken.extend(s for s in slo if s not in broken)
    broken.extend(settled.broken)
    terms = spec.objective.terms()
    value = settled.key[0] if spec.objective.mode == "weighted" else \
        settled.key[0] * (1.0 if terms[0].sense == "maximize" else -1.0)
    return Outcome(value, settled.fleet, pools, broken)


@dataclass(frozen=True)
class BreakingPoint:
    """How far one parameter may move against the plan before a constraint breaks."""

    parameter: str
    direction: Direction
    factor: float | None  # the last factor that holds; None: holds over the whole scan
    broken: list[str]  # what breaks just past it
    scanned_to: float

    def to_dict(self) -> BreakingPointJSON:
        """The JSON answer's entry."""
        return {"parameter": self.parameter, "direction": self.direction,
                "holds_to_factor": self.factor, "breaks": list(self.broken),
                "scanned_to_factor": self.scanned_to}


def breaking_point(spec: Spec, plan: Plan, name: str) -> BreakingPoint:
    """The last factor (in the adverse direction) at which every constraint holds."""
    p = PARAMETERS[name]
    scan = _SCAN_UP if p.adverse == "up" else _SCAN_DOWN

    def at(f: float) -> Outcome:
        return evaluate(changed_spec(spec, [Change(name, "*", f)]), plan)

    nominal = evaluate(spec, plan)
    if not nominal.holds:
        return BreakingPoint(name, p.adverse, 1.0, nominal.broken, scan[-1])
    good = 1.0
    for f in scan:
        try:
            out = at(f)
        except UsageError:  # the factor takes a number out of its range: the scan ends
            return BreakingPoint(name, p.adverse, None, [], good)
        if out.holds:
            good = f
            continue
        bad, broken = f, out.broken
        while abs(bad - good) > BISECT_TO * good:
            mid = 0.5 * (good + bad)
            out = at(mid)
            if out.holds:
                good = mid
            else:
                bad, broken = mid, out.broken
        return BreakingPoint(name, p.adverse, good, broken, scan[-1])
    return BreakingPoint(name, p.adverse, None, [], scan[-1])


def sensitivity(spec: Spec, plan: Plan) -> SensitivityJSON:
    """Every parameter's breaking point, and the objective's elasticities, largest first."""
    el: list[ElasticityJSON] = [{"parameter": p, "elasticity": elasticity(spec, plan, p)}
                                for p in PARAMETERS]
    return {"breaking_points": [breaking_point(spec, plan, p).to_dict() for p in PARAMETERS],
            "elasticities": sorted(el, key=lambda e: -abs(e["elasticity"] or 0.0))}


def elasticity(spec: Spec, plan: Plan, name: str,
               step: float = SENSITIVITY_STEP) -> float | None:
    """d ln(objective) / d ln(parameter), by a central difference of `step`; None where the
    objective is zero or not available on either side."""
    mid = evaluate(spec, plan).objective
    lo = evaluate(changed_spec(spec, [Change(name, "*", 1.0 - step)]), plan).objective
    hi = evaluate(changed_spec(spec, [Change(name, "*", 1.0 + step)]), plan).objective
    if mid is None or lo is None or hi is None or mid == 0.0:
        return None
    return (hi - lo) / (2.0 * step * mid)


__all__ = ["PARAMETERS", "BreakingPoint", "Change", "Outcome", "Plan",
           "PlanRow", "PoolFigures", "breaking_point", "changed_spec", "elasticity",
           "evaluate", "sensitivity"]
