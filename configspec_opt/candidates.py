"""Candidates: every (target, draft, quant, K) a pool could run, with its metrics.

A configuration is a candidate for a pool only if it was profiled on that
device, the draft file fits the device's memory, the draft and target share a
family, alpha(K) is known, and any pin on the pool allows it.  Per-device
SLOs are kept apart (`constraint_families.DeviceSlos`) so that an infeasible
spec can say which SLO removed what.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from configspec_opt import metrics as m
from configspec_opt.errors import NumericError, SpecError, SpecIssue
from configspec_opt.spec import (
    Device,
    KRange,
    PerTokenAcceptance,
    Pin,
    Profile,
    Spec,
    Target,
    alpha_at,
)
from configspec_opt.tails import TailInputs, fleet_points, inputs_for


@dataclass(frozen=True, slots=True)
class Candidate:
    """One configuration a pool could run, with its per-device metrics precomputed.

    Figures are per device: the solver scales them by the number of devices
    assigned.  Units are in the field names (s, tok/s, USD/h, W, J/tok); a power
    or energy figure is None when the profile did not measure power.
    """

    pool: int
    device: str
    target: str
    draft: str
    quant: str
    k: int
    alpha: float
    draft_tok_s: float
    round_time_s: float
    goodput_tok_s: float
    verifier_load_tok_s: float
    cost_usd_per_hour: float
    cost_efficiency_tok_per_usd: float
    power_w: float | None
    drafting_power_w: float | None
    energy_j_per_tok: float | None
    verify_latency_s: float = 0.0
    # Load-dependent verifiers (targets[].verifier): billed per replica, not per
    # token, and `level` is the load level of the batched verifier the
    # latency was taken at (-1: a fixed latency).
    replica_priced: bool = False
    level: int = -1
    # What the tail-latency figures read beyond these numbers (`configspec_opt.tails`).
    tail: TailInputs | None = None

    @property
    def busy_s(self) -> float:
        """The part of a round that is not verification: drafting, catch-up, rtt, overhead."""
        return self.round_time_s - self.verify_latency_s

    @property
    def in_flight(self) -> float:
        """T_verify / R: the share of its time one device has a request at the verifier."""
        return self.verify_latency_s / self.round_time_s

    @property
    def variant(self) -> tuple[str, str]:
        """The file that must be shipped: (draft, quant)."""
        return (self.draft, self.quant)

    @property
    def config(self) -> tuple[str, str, str, int]:
        """The key that identifies the configuration across pools: (target, draft, quant, K)."""
        return (self.target, self.draft, self.quant, self.k)

    def label(self) -> str:
        """The configuration as messages and tables show it to a person."""
        return f"{self.draft} {self.quant} K={self.k} -> {self.target}"


def make_candidate(
    pool: int, device: Device, target_name: str, price: float, t_verify: float,
    draft: str, quant: str, k: int, alpha: float, v_d: float, power: float | None,
    full_accept: float = 0.0, replica_priced: bool = False, tail: TailInputs | None = None,
) -> Candidate:
    """A candidate's metrics (Eq. 1-3); a replica-priced target costs nothing per token.

    The figures are computed inline, in the same operations and order as the
    functions of `configspec_opt.metrics` (so the same floats), because a fleet of
    10,000 pools makes a million candidates; any input those functions would refuse
    (a zero or non-finite figure) goes through them, for their error.
    """
    fast = _fast_candidate(pool, device, target_name, price, t_verify, draft, quant, k,
                           alpha, v_d, power, full_accept, replica_priced, tail)
    if fast is not None:
        return fast
    r = m.round_time_s(k, v_d, t_verify, device.rtt_s, full_accept, device.round_overhead_s)
    return Candidate(
        pool=pool, device=device.name, target=target_name, draft=draft, quant=quant, k=k,
        alpha=alpha, draft_tok_s=v_d, round_time_s=r,
        goodput_tok_s=m.goodput_tok_s(k, alpha, r),
        verifier_load_tok_s=m.verifier_load_tok_s(k, r),
        cost_usd_per_hour=0.0 if replica_priced else m.cost_usd_per_hour(k, r, price),
        cost_efficiency_tok_per_usd=float("nan") if replica_priced
        else m.cost_efficiency_tok_per_usd(k, alpha, price),
        power_w=power,
        drafting_power_w=None if power is None else m.drafting_power_w(
            power, k, v_d, r, full_accept),
        energy_j_per_tok=None if power is None else m.energy_j_per_tok(
            power, k, v_d, alpha, full_accept),
        verify_latency_s=t_verify, replica_priced=replica_priced, tail=tail,
    )


def _fast_candidate(
    pool: int, device: Device, target_name: str, price: float, t_verify: float,
    draft: str, quant: str, k: int, alpha: float, v_d: float, power: float | None,
    full_accept: float, replica_priced: bool, tail: TailInputs | None = None,
) -> Candidate | None:
    """`make_candidate`'s figures without the per-figure checks; None where one would fail."""
    if not (v_d > 0.0 and (replica_priced or price > 0.0)):
        return None
    try:
        drafting = (k + full_accept) / v_d
        r = drafting + t_verify + device.rtt_s + device.round_overhead_s
        tokens = k * alpha + 1.0
        if not (r > 0.0 and tokens > 0.0):
            return None
        goodput = tokens / r
        load = k / r
        cost = 0.0 if replica_priced else price * 1e-6 * load * m.SECONDS_PER_HOUR
        efficiency = float("nan") if replica_priced else (alpha + 1.0 / k) / (price * 1e-6)
        drafting_power = None if power is None else power * drafting / r
        energy = None if power is None else power * drafting / tokens
    except (ZeroDivisionError, OverflowError):
        return None
    # one test for all: a sum is finite only if every term is (a sum that overflows
    # takes the checked path, which then succeeds)
    if not math.isfinite(drafting + r + goodput + load + cost
                         + (0.0 if replica_priced else efficiency)
                         + (0.0 if drafting_power is None else drafting_power)
                         + (0.0 if energy is None else energy)):
        return None
    return Candidate(pool, device.name, target_name, draft, quant, k, alpha, v_d, r, goodput,
                     load, cost, efficiency, power, drafting_power, energy, t_verify,
                     replica_priced, tail=tail)


def at_verify_latency(c: Candidate, t_verify: float, level: int = -1) -> Candidate:
    """The same configuration with another verification latency (a batched verifier's load)."""
    r = c.busy_s + t_verify
    return replace(
        c, round_time_s=r, verify_latency_s=t_verify, level=level,
        goodput_tok_s=m.goodput_tok_s(c.k, c.alpha, r),
        verifier_load_tok_s=m.verifier_load_tok_s(c.k, r),
        drafting_power_w=None if c.drafting_power_w is None
        else c.drafting_power_w * c.round_time_s / r)


ExclusionKind = Literal["no_profile", "memory", "family", "no_acceptance", "k_range", "pins"]


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Why a pool, or one profile of it, yields no candidate (plain data, no solver).

    `profile` is the index in `spec.profiles` (None: the pool as a whole).
    Kinds: no_profile (the pool has no profile), memory (the draft file does not
    fit memory_gb), family (no acceptance, and the draft's family matches no
    target's), no_acceptance (no acceptance for any target), k_range (no
    alpha(K) for any K of search.k), pins (the pool's pins exclude the profile).
    """

    kind: ExclusionKind
    message: str
    profile: int | None = None


@dataclass
class PoolCandidates:
    """All candidates of one pool, and why configurations were left out."""

    index: int
    device: Device
    candidates: list[Candidate] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    # The same decisions as data, one per profile that yields nothing (and one
    # for a pool without profiles): what `configspec validate` reports.
    exclusions: list[Exclusion] = field(default_factory=list)


def _pin_allows(pins: list[Pin], target: str, draft: str, quant: str, k: int) -> bool:
    return all(
        (p.target in (None, target)) and (p.draft in (None, draft))
        and (p.quant in (None, quant)) and (p.k in (None, k))
        for p in pins
    )


def _verify_latency(target: Target, k: int) -> float | None:
    """T_verify for K: a batched verifier's lightest measured load, else the fixed figure.

    None where a batched verifier never measured K: that K is not a candidate.
    """
    if target.verifier is None:
        return target.verify_latency(k)
    table = target.verifier.latency_s
    return table[min(table)].get(k)


def enumerate_candidates(spec: Spec, only: set[str] | None = None) -> list[PoolCandidates]:
    """Structural candidates per pool, in spec order (SLOs not applied)."""
    targets = {t.name: t for t in spec.targets}
    drafts = {d.name: d for d in spec.drafts}
    by_device: dict[str, list[int]] = {}
    for i, p in enumerate(spec.profiles):
        by_device.setdefault(p.device, []).append(i)
    ks = list(spec.search.k.values())
    families = {t.family for t in spec.targets}
    points = fleet_points(spec)

    pools: list[PoolCandidates] = []
    for device in spec.devices:
        if only is not None and device.name not in only:
            continue
        pc = PoolCandidates(len(pools), device)
        pins = [p for p in spec.constraints.pinned if p.device == device.name]
        profiled = by_device.get(device.name, [])
        if not profiled:
            pc.excluded.append("no profile for this device")
            pc.exclusions.append(Exclusion("no_profile", "no profile for this device"))
        for pi in profiled:
            prof = spec.profiles[pi]
            quant = drafts[prof.draft].quants[prof.quant]
            if quant.size_gb > device.memory_gb:
                pc.excluded.append(
                    f"{prof.draft} {prof.quant} needs {quant.size_gb:g} GB, "
                    f"device has {device.memory_gb:g} GB")
                pc.exclusions.append(Exclusion("memory", pc.excluded[-1] + " (memory_gb)", pi))
                continue
            power = prof.power_w if prof.power_w is not None else device.power_w
            if not prof.acceptance:
                pc.excluded.append(f"{prof.draft} {prof.quant}: no acceptance for any target")
                family = drafts[prof.draft].family
                pc.exclusions.append(Exclusion(
                    "no_acceptance", pc.excluded[-1], pi) if family in families else Exclusion(
                    "family", f"{prof.draft} (family {family}) matches the family of no "
                    f"target ({', '.join(sorted(families))})", pi))
            found, known = len(pc.candidates), False
            mix = spec.mix_for(device)
            for tname, acc in prof.acceptance.items():
                target = targets[tname]
                tail = inputs_for(spec, device, prof, target, points)
                for k in ks:
                    alpha = alpha_at(acc, k)
                    if alpha is None:
                        continue
                    if mix is not None:
                        alpha = _mixed(prof, tname, k, alpha, mix)
                    known = True
                    if pins and not _pin_allows(pins, tname, prof.draft, prof.quant, k):
                        continue
                    t_verify = _verify_latency(target, k)
                    if t_verify is None:
                        continue
                    try:
                        pc.candidates.append(make_candidate(
                            pc.index, device, tname, target.price_usd_per_mtok,
                            t_verify, prof.draft, prof.quant, k, alpha,
                            prof.draft_tok_s, power,
                            prof.full_accept.get(tname, {}).get(k, 0.0),
                            replica_priced=target.verifier is not None, tail=tail))
                    except NumericError as exc:
                        raise SpecError([SpecIssue(
                            f"{exc} for {tname} at K={k}: a number of this profile, its "
                            f"device or target {tname} is out of range",
                            path=("profiles", pi))]) from None
            if prof.acceptance and len(pc.candidates) == found:
                pc.exclusions.append(
                    Exclusion("pins", f"{prof.draft} {prof.quant}: excluded by the pins on "
                              f"this pool ({_pins_text(pins)})", pi) if known else
                    Exclusion("k_range", _k_range_text(prof, spec.search.k), pi))
        if pins and not pc.candidates and profiled:
            pc.excluded.append("the pins on this pool exclude every profiled configuration")
        pc.candidates.sort(key=lambda c: c.config)
        pools.append(pc)
    return pools


def _mixed(prof: Profile, target: str, k: int, alpha: float, mix: dict[str, float]) -> float:
    """alpha(K) over the pool's traffic mix; a class the profile did not measure (or
    measured without this K) takes the profile's plain alpha."""
    alphas = [prof.class_alpha(cls, target, k) for cls in mix]
    return m.mixed_alpha(k, [alpha if a is None else a for a in alphas], list(mix.values()))


def _pins_text(pins: list[Pin]) -> str:
    keys = ("target", "draft", "quant", "k")
    return "; ".join(", ".join(f"{key}={getattr(p, key)}" for key in keys
                               if getattr(p, key) is not None) or "device only" for p in pins)


def _k_range_text(prof: Profile, k: KRange) -> str:
    """Only tables can miss every K (a per-token acceptance has them all)."""
    given = "; ".join(f"{t} at K={','.join(map(str, sorted(acc))) or 'none'}"
                      for t, acc in prof.acceptance.items()
                      if not isinstance(acc, PerTokenAcceptance))
    return (f"{prof.draft} {prof.quant}: acceptance is given for {given}, none in search.k "
            f"({k.min}..{k.max})")
