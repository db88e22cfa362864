"""Pools from devices: a fleet whose every device pushed its own profile, grouped into
pools with a stated spread, and the bound on what the grouping can cost.

Why.  The solver works on pools of identical devices; 100,000 devices that measured
themselves are 100,000 slightly different profiles.  Keeping only the newest profile
per pool (what the HTTP store's `profiles=stored` does) throws the others away and
says nothing about how far the survivor is from the rest.  Here devices are grouped
so that every pool's members are close, the pool runs on its members' *worst*
numbers, and the spread is kept, so the answer is safe for every real device and its
possible loss is known.

**Which devices share a pool.**  Only devices with the same `Layout` (kind, memory,
the same (draft, quant) pairs, targets and K measured): they have the same
candidates.  Within a pool, for every measured quantity, hi/lo <= 1 + tolerance:
draft_tok_s, power_w and alpha(K) (alpha as alpha + ALPHA_FLOOR, so that 0 is a
value like any other).  The round trip is added to a round, not multiplied, so its
rule is what it does to a round: rtt_hi - rtt_lo <= tolerance * R0, R0 the shortest
round any member could run without its rtt (K/v_d at the block's fastest speed plus
T_verify(K) plus the round overhead, over every candidate).  The grouping is a
top-down split: a set whose spread in some column exceeds its width is cut along the
worst column (relative to its width) by the 1-D greedy cut (sorted values, a new
part wherever a value lies beyond the part's first one plus the width; the fewest
parts in that column).  A part never needs that column cut again, so every device
goes through at most one cut per column: O(columns x n log n), deterministic (rows
ordered by device id).

**The pool's profile is conservative.**  Slowest draft speed, lowest alpha(K),
highest power, longest rtt of its members.  Every per-device metric is monotone in
them (goodput (K alpha + 1)/R, round time R, energy P (K/v_d)/(K alpha + 1), power P
and cost efficiency (alpha + 1/K)/p), so each real device is at least as good as its
pool says, on every candidate: a plan solved on the pools meets every per-device SLO
on every device, and the fleet goodput floor, power cap, variant cap and devices per
target.  Two kinds of rows grow with a device's speed instead: verifier load and
$/hour (K/R per device) and the fleet ratios (energy per token is a mean of the
devices' energies weighted by goodput, cost efficiency one weighted by cost).  With
rho_R = max R_conservative / R_optimistic and rho_G = max G_optimistic /
G_conservative over every pool and candidate, a real device's load is at most rho_R
times its pool's, and the ratios move by at most those factors; `adjusted` tightens
those limits by the factors in the conservative fleet (max_cost_usd_per_hour and
capacity_tok_s / rho_R, max_energy_j_per_tok / rho_G, min_cost_efficiency x rho_R)
and loosens them in the optimistic one.

**The bound.**  The optimistic fleet (fastest, highest alpha, lowest power, shortest
rtt, limits loosened as above) admits every plan of the real devices, each valued at
least as well as on the real devices (for the objectives `certified` accepts).  So
real optimum <= optimistic optimum, and the conservative optimum is reached by a plan
that is feasible on the real devices and valued there at least as well: the loss from
grouping is at most (optimistic - conservative) / optimistic of the optimum
(`configspec_opt.group_bound` solves both).  Cheaper and weaker, `Factors.goodput`
bounds how far any one plan's fleet goodput on the real devices can lie above its
value on the pools.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from configspec_opt.device_profiles import Devices, Layout, VariantLayout
from configspec_opt.spec import Device, Metric, Spec, Target

ALPHA_FLOOR = 1e-3
"""alpha is compared as alpha + this: a spread of 0 against 0.0005 is not infinite."""

Side = Literal["conservative", "optimistic"]
Array = NDArray[np.float64]

CERTIFIED_OBJECTIVES: dict[Metric, Literal["maximize", "minimize"]] = {
    Metric.goodput: "maximize", Metric.min_goodput: "maximize",
    Metric.power: "minimize", Metric.round_time: "minimize"}
"""Objectives no real device can do worse on than its conservative pool, nor better than
its optimistic one (a sum, minimum or mean of per-device monotone figures)."""


@dataclass(frozen=True)
class Group:
    """One pool: devices of one layout, the lowest and highest value of each column
    (raw numbers, in `Layout.columns` order), and the rtt width its block used."""

    name: str
    layout: Layout
    members: tuple[str, ...]
    lo: Array
    hi: Array
    round_s: float  # R0: the shortest round without rtt, the rtt rule's unit
    rows: NDArray[np.intp] | None = None  # the members' rows in Grouping.values[layout]

    @property
    def count(self) -> int:
        """Devices in the pool."""
        return len(self.members)

    def spread(self) -> float:
        """The largest stated spread over its columns (the tolerance bounds it)."""
        return float(max(_spreads(self.layout, self.lo, self.hi, self.round_s)))


@dataclass
class Grouping:
    """Devices grouped into pools at a tolerance."""

    tolerance: float
    groups: list[Group]
    devices: Devices
    values: dict[Layout, Array] = field(default_factory=dict)  # each block, rows by device id

    def spread(self) -> float:
        """The largest stated spread of any pool."""
        return max((g.spread() for g in self.groups), default=0.0)


def _spreads(layout: Layout, lo: Array, hi: Array, round_s: float) -> list[float]:
    out = []
    for kind, a, b in zip(layout.columns(), lo, hi):
        if kind == "rtt":
            out.append((b - a) / round_s if round_s > 0 else 0.0)
        elif kind == "alpha":
            out.append((b + ALPHA_FLOOR) / (a + ALPHA_FLOOR) - 1.0)
        else:
            out.append(b / a - 1.0)
    return out


# --- the verifier latency and round time a candidate has -----------------


def verify_latency(target: Target, k: int) -> float | None:
    """T_verify(K) as the candidates take it (a batched verifier: its lightest load)."""
    if target.verifier is None:
        return target.verify_latency(k)
    table = target.verifier.latency_s
    return table[min(table)].get(k)


def _ks(spec: Spec, ks: tuple[int, ...] | None) -> list[int]:
    return list(spec.search.k.values()) if ks is None else list(ks)


def _base_device(spec: Spec, kind: str) -> Device | None:
    return next((d for d in spec.devices if d.name == kind), None)


def shortest_round(spec: Spec, layout: Layout, fastest: list[float]) -> float:
    """R0: the shortest round any candidate of `layout` has without its rtt, at the
    `fastest` draft speed of each variant: min over (variant, target, K) of
    K/v_max + T_verify(K) + the kind's round overhead."""
    targets = {t.name: t for t in spec.targets}
    base = _base_device(spec, layout.kind)
    overhead = base.round_overhead_s if base is not None else 0.0
    best = math.inf
    for v, speed in zip(layout.variants, fastest):
        for target, ks in v.acceptance:
            for k in _ks(spec, ks):
                t = verify_latency(targets[target], k)
                if t is not None:
                    best = min(best, k / speed + t + overhead)
    return best if math.isfinite(best) else 0.0


# --- grouping ---------------------------------------------------------------


def _split(scaled: Array, widths: Array) -> list[NDArray[np.intp]]:
    """Row sets whose every column spans at most its width (see the module's docstring)."""
    out: list[NDArray[np.intp]] = []
    stack = [np.arange(scaled.shape[0])]
    while stack:
        rows = stack.pop()
        sub = scaled[rows]
        span = sub.max(axis=0) - sub.min(axis=0)
        excess = span - widths
        if rows.size <= 1 or not (excess > 0).any():
            out.append(rows)
            continue
        ratio = np.where(excess > 0, span / np.maximum(widths, 1e-300), 0.0)
        j = int(np.argmax(ratio))
        order = np.argsort(sub[:, j], kind="stable")
        values = sub[order, j]
        cuts = []
        start = 0
        while True:
            nxt = int(np.searchsorted(values, values[start] + widths[j], side="right"))
            if nxt >= values.size:
                break
            cuts.append(nxt)
            start = nxt
        parts = np.split(order, cuts)
        stack.extend(rows[p] for p in reversed(parts))
    return out


def _merge(scaled: Array, widths: Array, parts: list[NDArray[np.intp]]
           ) -> list[NDArray[np.intp]]:
    """Parts joined where their union still spans at most the widths: the split cuts
    each column where its own branch needed it, so neighbours from two branches (a
    tail's few devices, most often) may fit together.  Smallest parts first, each
    into the largest part it fits.

    Only parts whose lowest value in the most spread column lies within a width of
    the part's own are compared (sorted once: a part's lowest value only falls and
    its highest only rises as it grows, so the window never misses one that fits),
    which keeps 10,000 parts of one layout to seconds."""
    if len(parts) < 2:
        return parts
    lo = np.stack([scaled[p].min(axis=0) for p in parts])
    hi = np.stack([scaled[p].max(axis=0) for p in parts])
    spread = (hi.max(axis=0) - lo.min(axis=0)) / np.maximum(widths, 1e-300)
    key = int(np.argmax(spread))
    first = np.argsort(-spread, kind="stable")[:8]  # checked first: most parts fail there
    order = np.argsort(lo[:, key], kind="stable")
    keys = lo[order, key]
    size = np.array([p.size for p in parts])
    alive = np.ones(len(parts), dtype=bool)
    members = [[p] for p in parts]
    w = widths[key]
    for i in np.argsort(size, kind="stable"):
        a = np.searchsorted(keys, hi[i, key] - w, side="left")
        b = np.searchsorted(keys, lo[i, key] + w, side="right")
        near = order[a:b]
        near = near[alive[near] & (near != i)]
        if near.size > 16:
            near = near[((np.maximum(hi[near][:, first], hi[i, first])
                          - np.minimum(lo[near][:, first], lo[i, first])) <= widths[first]
                         ).all(axis=1)]
        if near.size == 0:
            continue
        fits = ((np.maximum(hi[near], hi[i]) - np.minimum(lo[near], lo[i])) <= widths
                ).all(axis=1)
        if not fits.any():
            continue
        j = int(near[fits][np.argmax(size[near[fits]])])
        lo[j], hi[j] = np.minimum(lo[j], lo[i]), np.maximum(hi[j], hi[i])
        size[j] += size[i]
        members[j] += members[i]
        alive[i] = False
    return [np.sort(np.concatenate(members[i])) for i in np.flatnonzero(alive)]


def group_devices(devices: Devices, spec: Spec, tolerance: float) -> Grouping:
    """Pools of devices whose every quantity lies within `tolerance` (module docstring).

    Pools are named KIND-NNNN, numbered per kind, larger pools first; the result
    does not depend on the order of the devices in the file."""
    if not (math.isfinite(tolerance) and tolerance >= 0.0):
        raise ValueError(f"tolerance must be a finite number >= 0, not {tolerance!r}")
    log_width = max(0.0, math.log1p(tolerance) - 1e-12)
    made: list[tuple[Layout, tuple[str, ...], Array, Array, float, NDArray[np.intp]]] = []
    matrices: dict[Layout, Array] = {}
    for layout in sorted(devices.blocks, key=lambda lay: (lay.kind, repr(lay))):
        block = devices.blocks[layout]
        width = layout.width
        values = np.frombuffer(block.values, dtype=np.float64).reshape(-1, width)
        order = np.argsort(np.array(block.ids, dtype=object), kind="stable")
        values = matrices[layout] = values[order]
        ids = [block.ids[i] for i in order]
        columns = layout.columns()
        speeds = [j for j, c in enumerate(columns) if c == "speed"]
        r0 = shortest_round(spec, layout, [float(values[:, j].max()) for j in speeds])
        scaled = np.empty_like(values)
        widths = np.empty(width)
        for j, kind in enumerate(columns):
            if kind == "rtt":
                scaled[:, j] = values[:, j]
                widths[j] = tolerance * r0
            else:
                scaled[:, j] = np.log(values[:, j] + (ALPHA_FLOOR if kind == "alpha" else 0.0))
                widths[j] = log_width
        for rows in _merge(scaled, widths, _split(scaled, widths)):
            sub = values[rows]
            made.append((layout, tuple(ids[i] for i in rows), sub.min(axis=0),
                         sub.max(axis=0), r0, rows))
    made.sort(key=lambda m: (m[0].kind, -len(m[1]), m[1][0]))
    groups: list[Group] = []
    number: dict[str, int] = {}
    for layout, members, lo, hi, r0, rows in made:
        number[layout.kind] = number.get(layout.kind, 0) + 1
        groups.append(Group(f"{layout.kind}-{number[layout.kind]:04d}", layout, members,
                            lo, hi, r0, rows))
    return Grouping(tolerance, groups, devices, matrices)


# --- the pools as a spec ----------------------------------------------------


def _variant_values(v: VariantLayout, lo: Array, hi: Array, at: int, side: Side
                    ) -> tuple[dict[str, Any], int]:
    """One profile's numbers from columns `at`...: the side's end of each spread."""
    worse = side == "conservative"
    entry: dict[str, Any] = {"draft_tok_s": float(lo[at] if worse else hi[at])}
    at += 1
    if v.power:
        entry["power_w"] = float(hi[at] if worse else lo[at])
        at += 1
    acceptance: dict[str, Any] = {}
    for target, ks in v.acceptance:
        if ks is None:
            acceptance[target] = {"per_token": float(lo[at] if worse else hi[at])}
            at += 1
        else:
            acceptance[target] = {k: float(lo[at + i] if worse else hi[at + i])
                                  for i, k in enumerate(ks)}
            at += len(ks)
    entry["acceptance"] = acceptance
    return entry, at


def pool_data(base: Spec, grouping: Grouping, side: Side, *, spread: bool = True
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The pools as spec data: devices, profiles and pins, at `side`'s end of every spread.

    A pool takes the platform, SLO, declared power and round overhead of the base
    spec's device named like its kind, and that device's pins.  With `spread`, each
    profile's provenance keeps the pool's size, the tolerance, the rtt range and the
    other side's numbers."""
    devices: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    pins: list[dict[str, Any]] = []
    other: Side = "optimistic" if side == "conservative" else "conservative"
    for g in grouping.groups:
        kind = _base_device(base, g.layout.kind)
        d: dict[str, Any] = {"name": g.name, "count": g.count, "memory_gb": g.layout.memory_gb,
                             "rtt_s": float(g.hi[0] if side == "conservative" else g.lo[0])}
        if kind is not None:
            extra = kind.model_dump(mode="json", exclude_none=True, exclude_defaults=True,
                                    include={"platform", "power_w", "round_overhead_s", "slo"})
            d.update(extra)
        devices.append(d)
        at = 1
        for v in g.layout.variants:
            start = at
            entry, at = _variant_values(v, g.lo, g.hi, at, side)
            profile = {"device": g.name, "draft": v.draft, "quant": v.quant, **entry}
            if spread:
                theirs, _ = _variant_values(v, g.lo, g.hi, start, other)
                profile["provenance"] = {"grouped": {
                    "devices": g.count, "tolerance": grouping.tolerance,
                    "rtt_s": [float(g.lo[0]), float(g.hi[0])], other: theirs}}
            profiles.append(profile)
        pins.extend({**p.model_dump(mode="json", exclude_none=True), "device": g.name}
                    for p in base.constraints.pinned if p.device == g.layout.kind)
    return devices, profiles, pins


def pooled_spec(base: Spec, grouping: Grouping, side: Side, factors: Factors | None = None,
                *, spread: bool = True) -> dict[str, Any]:
    """The whole spec as data: the base spec's targets, drafts, search, objective and
    constraints, the pools for its devices and profiles, limits `adjusted` by `factors`."""
    devices, profiles, pins = pool_data(base, grouping, side, spread=spread)
    data = base.model_dump(mode="json", exclude_none=True, exclude={"profiles_from"})
    data.update(devices=devices, profiles=profiles)
    data["constraints"]["pinned"] = pins
    if factors is not None:
        adjusted(data, factors, side)
    return data


def dropped_pins(base: Spec, grouping: Grouping) -> list[str]:
    """Pins of the base spec that name no kind of the grouped fleet: they pin nothing now."""
    kinds = {g.layout.kind for g in grouping.groups}
    return sorted({p.device for p in base.constraints.pinned if p.device not in kinds})


def device_spec(base: Spec, devices: Devices) -> dict[str, Any]:
    """Every device as its own pool of one (tolerance 0, no spread): the fleet the
    grouping stands for, for tests and benchmarks on small fleets."""
    solo = Grouping(0.0, [], devices)
    for layout, block in devices.blocks.items():
        values = np.frombuffer(block.values, dtype=np.float64).reshape(-1, layout.width)
        solo.values[layout] = values
        for i, (device, row) in enumerate(zip(block.ids, values)):
            solo.groups.append(Group(device, layout, (device,), row, row, 0.0,
                                     np.array([i], dtype=np.intp)))
    return pooled_spec(base, solo, "conservative", spread=False)


# --- what grouping changes in the rows, and the bound ------------------------


@dataclass(frozen=True)
class Factors:
    """How far a real device can be from its pool's conservative candidate, at worst
    over every pool and candidate: round time (conservative / optimistic), goodput
    (optimistic / conservative) and energy per token (conservative / optimistic; 1
    where no power was measured).  All at least 1."""

    round_time: float
    goodput: float
    energy: float


def factors(base: Spec, grouping: Grouping) -> Factors:
    """`Factors` of a grouping, candidate by candidate, as `candidates.make_candidate`
    computes the metrics (tests/core/test_grouping.py checks the two agree)."""
    targets = {t.name: t for t in base.targets}
    rho_r = rho_g = rho_e = 1.0
    by_layout: dict[Layout, list[Group]] = {}
    for g in grouping.groups:
        by_layout.setdefault(g.layout, []).append(g)
    for layout, groups in by_layout.items():
        lo = np.stack([g.lo for g in groups])
        hi = np.stack([g.hi for g in groups])
        base_dev = _base_device(base, layout.kind)
        overhead = base_dev.round_overhead_s if base_dev is not None else 0.0
        at = 1
        for v in layout.variants:
            v_lo, v_hi = lo[:, at], hi[:, at]
            at += 1
            p_lo = p_hi = None
            if v.power:
                p_lo, p_hi = lo[:, at], hi[:, at]
                at += 1
            elif base_dev is not None and base_dev.power_w is not None:
                p_lo = p_hi = np.full(len(groups), base_dev.power_w)  # the kind's declared
            for target, ks in v.acceptance:
                kk = _ks(base, ks)
                for i, k in enumerate(kk):
                    col = at if ks is None else at + i
                    a_lo, a_hi = lo[:, col], hi[:, col]
                    if ks is None:
                        a_lo = _per_token_alpha(a_lo, k)
                        a_hi = _per_token_alpha(a_hi, k)
                    t = verify_latency(targets[target], k)
                    if t is None:
                        continue
                    r_c = k / v_lo + t + hi[:, 0] + overhead
                    r_o = k / v_hi + t + lo[:, 0] + overhead
                    g_c = (k * a_lo + 1.0) / r_c
                    g_o = (k * a_hi + 1.0) / r_o
                    rho_r = max(rho_r, float((r_c / r_o).max()))
                    rho_g = max(rho_g, float((g_o / g_c).max()))
                    if p_lo is not None and p_hi is not None:
                        e_c = p_hi * (k / v_lo) / (k * a_lo + 1.0)
                        e_o = p_lo * (k / v_hi) / (k * a_hi + 1.0)
                        rho_e = max(rho_e, float((e_c / e_o).max()))
                at += 1 if ks is None else len(ks)
    return Factors(rho_r, rho_g, rho_e)


Config = tuple[str, str, str, int]  # (target, draft, quant, K), as Candidate.config


def member_plan(grouping: Grouping, plan: Iterable[tuple[str, Config, int]]
                ) -> dict[str, Config]:
    """Each device's configuration under a plan of the pools ((pool, config, count)
    rows): a pool's members, in the members file's order, take its configurations in
    the plan's order.  Any order is a plan every device meets (they all are at least
    as good as the pool); this one is the one `real_value` values."""
    by_name = {g.name: g for g in grouping.groups}
    taken: dict[str, int] = {}
    out: dict[str, Config] = {}
    for pool, config, count in plan:
        g = by_name[pool]
        start = taken.get(pool, 0)
        for device in g.members[start:start + count]:
            out[device] = config
        taken[pool] = start + count
    return out


def device_metrics(base: Spec, grouping: Grouping, group: Group, config: Config,
                   index: NDArray[np.intp]) -> tuple[Array, Array, Array | None]:
    """Round time, goodput and power of the members `index` (positions in
    `group.rows`) on `config`, from their own measurements (candidates.make_candidate's
    formulas; power None where the layout has none and the kind declares none)."""
    target_name, draft, quant, k = config
    target = next(t for t in base.targets if t.name == target_name)
    rows = grouping.values[group.layout][np.asarray(group.rows)[index]]
    at = 1
    for v in group.layout.variants:
        if (v.draft, v.quant) != (draft, quant):
            at += v.width
            continue
        speed = rows[:, at]
        power = rows[:, at + 1] if v.power else None
        at += 1 + v.power
        for t, ks in v.acceptance:
            if t != target_name:
                at += 1 if ks is None else len(ks)
                continue
            alpha = (_per_token_alpha(rows[:, at], k) if ks is None
                     else rows[:, at + ks.index(k)])
            base_dev = _base_device(base, group.layout.kind)
            overhead = base_dev.round_overhead_s if base_dev is not None else 0.0
            t_verify = verify_latency(target, k)
            if t_verify is None:
                break
            r = k / speed + t_verify + rows[:, 0] + overhead
            if power is None and base_dev is not None and base_dev.power_w is not None:
                power = np.full(len(rows), base_dev.power_w)
            return r, (k * alpha + 1.0) / r, power
        break
    raise KeyError(f"{group.name} measured no {config}")


def real_value(base: Spec, grouping: Grouping, plan: Iterable[tuple[str, Config, int]],
               metric: Metric) -> float:
    """A certified objective of a plan of the pools, valued on every device's own
    measurements (the members in `member_plan`'s order): goodput (sum), min_goodput,
    power (sum) or round_time (mean)."""
    by_name = {g.name: g for g in grouping.groups}
    taken: dict[str, int] = {}
    total, count, least = 0.0, 0, math.inf
    for pool, config, n in plan:
        if n <= 0:
            continue
        g = by_name[pool]
        start = taken.get(pool, 0)
        taken[pool] = start + n
        r, goodput, power = device_metrics(base, grouping, g, config,
                                           np.arange(start, start + n))
        count += n
        if metric is Metric.goodput:
            total += float(goodput.sum())
        elif metric is Metric.min_goodput:
            least = min(least, float(goodput.min()))
        elif metric is Metric.power:
            if power is None:
                raise ValueError(f"{pool} has no power for {config}")
            total += float(power.sum())
        elif metric is Metric.round_time:
            total += float(r.sum())
        else:
            raise ValueError(f"{metric.value} is not a certified objective")
    if metric is Metric.min_goodput:
        return least
    return total / count if metric is Metric.round_time else total


def _per_token_alpha(a: Array, k: int) -> Array:
    """`PerTokenAcceptance.alpha` over an array: a(1 - a^K) / (K(1 - a)), 1 at a = 1."""
    below = np.where(a >= 1.0, 0.5, a)  # any value below 1: its result is not used
    return np.where(a >= 1.0, 1.0, below * (1.0 - below**k) / (k * (1.0 - below)))


def _scaled(value: float, by: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, value * by))


def adjusted(data: dict[str, Any], f: Factors, side: Side) -> list[str]:
    """Tighten (conservative) or loosen (optimistic) the limits of rows that grow with a
    device's speed, in spec data; returns what changed, for a comment."""
    tighten = side == "conservative"
    changed: list[str] = []
    fleet = data.get("constraints", {}).get("fleet", {})

    def scale(holder: dict[str, Any], key: str, by: float, where: str,
              lo: float, hi: float) -> None:
        if holder.get(key) is None or by == 1.0:
            return
        old = holder[key]
        holder[key] = _scaled(old, by, lo, hi)
        changed.append(f"{where}: {old:g} -> {holder[key]:.6g}")

    r, g = f.round_time, f.goodput
    scale(fleet, "max_cost_usd_per_hour", 1 / r if tighten else r,
          "constraints.fleet.max_cost_usd_per_hour", 1e-9, 1e18)
    scale(fleet, "max_energy_j_per_tok", 1 / g if tighten else g,
          "constraints.fleet.max_energy_j_per_tok", 1e-12, 1e12)
    scale(fleet, "min_cost_efficiency_tok_per_usd", r if tighten else 1 / r,
          "constraints.fleet.min_cost_efficiency_tok_per_usd", 1e-6, 1e15)
    for t in data.get("targets", []):
        scale(t, "capacity_tok_s", 1 / r if tighten else r,
              f"targets[{t['name']}].capacity_tok_s", 1e-3, 1e12)
    return changed


def uncertified(spec: Spec) -> list[str]:
    """Why the grouping's bound does not hold for `spec` (empty: it holds)."""
    why = []
    obj = spec.objective
    if obj.mode != "single":
        why.append(f"the objective is {obj.mode}: the bound is proven for a single metric "
                   f"({', '.join(m.value for m in CERTIFIED_OBJECTIVES)})")
    else:
        term = obj.terms()[0]
        if CERTIFIED_OBJECTIVES.get(term.metric) != term.sense:
            why.append(f"the objective {term.sense} {term.metric.value}: a real device can "
                       "be better or worse on it than its pool (only "
                       + ", ".join(f"{s} {m.value}" for m, s in CERTIFIED_OBJECTIVES.items())
                       + " are certified)")
    batched = [t.name for t in spec.targets if t.verifier is not None]
    if batched:
        why.append(f"batched verifiers ({', '.join(batched)}): a faster device adds load "
                   "that slows the others, which no pool profile bounds")
    return why


def describe(names: Iterable[str]) -> str:
    """`a, b and 3 more` for messages."""
    items = list(names)
    return ", ".join(items[:5]) + (f" and {len(items) - 5:,} more" if len(items) > 5 else "")


# --- the grouped fleet as a file ----------------------------------------------

_ORDER = ("version", "name", "description", "targets", "drafts", "devices", "profiles",
          "search", "objective", "constraints")


def fleet_text(data: dict[str, Any], comments: list[str]) -> str:
    """Spec data as YAML: `comments` first, then one line per top-level key or list item,
    each a JSON flow mapping (YAML reads JSON), numbers as Python writes them (every
    float read back is the one written).  Fast at 100,000 profiles, where a YAML
    emitter takes minutes."""
    dumps = json.JSONEncoder(ensure_ascii=True, allow_nan=False,
                             separators=(", ", ": ")).encode
    lines = [f"# {c}" if c else "#" for c in comments]
    for key in [*(k for k in _ORDER if k in data), *(k for k in data if k not in _ORDER)]:
        value = data[key]
        if isinstance(value, list) and value:
            lines.append(f"{key}:")
            lines.extend(f"  - {dumps(item)}" for item in value)
        else:
            lines.append(f"{key}: {dumps(value)}")
    return "\n".join(lines) + "\n"


def members_csv(grouping: Grouping) -> str:
    """device,pool: which pool each device was put in (the pools' plans apply to them)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["device", "pool"])
    for g in grouping.groups:
        w.writerows((m, g.name) for m in g.members)
    return buf.getvalue()
