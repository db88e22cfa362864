"""Hypothesis strategies: small random fleets whose fleet constraints may bind."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from configspec_opt.candidates import enumerate_candidates
from configspec_opt.spec import Spec

OBJECTIVES: list[dict[str, Any]] = [
    {"maximize": "goodput"},
    {"maximize": "cost_efficiency"},
    {"minimize": "energy"},
    {"maximize": "min_goodput"},
    {"minimize": "cost"},
    {"weighted": [{"maximize": "goodput", "weight": 1.0}, {"minimize": "cost", "weight": 20.0}]},
    {"weighted": [{"maximize": "min_goodput", "weight": 3.0},
                  {"maximize": "goodput", "weight": 1.0}]},
    {"lexicographic": [{"maximize": "min_goodput"}, {"minimize": "energy"}]},
    {"lexicographic": [{"maximize": "cost_efficiency", "tolerance": 0.05},
                       {"maximize": "goodput"}]},
]


def _r(x: float, digits: int = 3) -> float:
    return round(x, digits)


@st.composite
def fleet_specs(draw: st.DrawFn, objective: dict[str, Any] | None = None) -> Spec:
    n_targets = draw(st.integers(1, 2))
    targets: list[dict[str, Any]] = [{"name": f"t{i}", "family": "f",
                "price_usd_per_mtok": _r(draw(st.floats(0.2, 2.0))),
                "verify_latency_s": _r(draw(st.floats(0.05, 0.8))),
                "verify_latency_per_token_s": draw(st.sampled_from([0.0, 0.01]))}
               for i in range(n_targets)]
    drafts: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 3))):
        quants = {f"q{j}": {"size_gb": _r(draw(st.floats(0.3, 6.0)), 2)}
                  for j in range(draw(st.integers(1, 2)))}
        drafts.append({"name": f"d{i}", "family": "f", "quants": quants})
    devices: list[dict[str, Any]] = [{"name": f"dev{i}", "count": draw(st.integers(1, 2)),
                "memory_gb": draw(st.sampled_from([4.0, 8.0])),
                "rtt_s": draw(st.sampled_from([0.0, 0.03]))}
               for i in range(draw(st.integers(1, 3)))]
    k_max = draw(st.integers(2, 4))
    profiles: list[dict[str, Any]] = []
    for dev in devices:
        for d in drafts:
            for q in d["quants"]:
                if not draw(st.booleans()) and profiles:
                    continue
                acc: dict[str, Any] = {}
                for t in targets:
                    if draw(st.booleans()):
                        acc[t["name"]] = {"per_token": _r(draw(st.floats(0.3, 0.95)))}
                    else:
                        acc[t["name"]] = {k: _r(draw(st.floats(0.2, 0.95)))
                                          for k in range(2, k_max + 1)}
                profiles.append({"device": dev["name"], "draft": d["name"], "quant": q,
                                 "draft_tok_s": _r(draw(st.floats(1.0, 120.0)), 2),
                                 "power_w": _r(draw(st.floats(3.0, 60.0)), 2),
                                 "acceptance": acc})
    base = Spec.model_validate({
        "version": 1, "name": "random", "targets": targets, "drafts": drafts,
        "devices": devices, "profiles": profiles, "search": {"k": {"min": 2, "max": k_max}}})
    pools = [pc for pc in enumerate_candidates(base) if pc.candidates]

    def level(attr: str, u_lo: float = 0.2, u_hi: float = 1.0) -> float:
        """A fleet total between its smallest and largest possible value."""
        u = draw(st.floats(u_lo, u_hi))
        lo = sum(pc.device.count * min(getattr(c, attr) for c in pc.candidates) for pc in pools)
        hi = sum(pc.device.count * max(getattr(c, attr) for c in pc.candidates) for pc in pools)
        return float(lo + u * (hi - lo))

    def spread(attr: str, u_lo: float = 0.2, u_hi: float = 1.0) -> float:
        u = draw(st.floats(u_lo, u_hi))
        vals = [getattr(c, attr) for pc in pools for c in pc.candidates]
        return float(min(vals) + u * (max(vals) - min(vals)))

    fleet: dict[str, Any] = {}
    if pools:
        if draw(st.integers(0, 2)) == 0:
            fleet["max_distinct_variants"] = draw(st.integers(1, 2))
        if draw(st.integers(0, 2)) == 0:
            fleet["max_cost_usd_per_hour"] = _r(level("cost_usd_per_hour"), 5) or 1e-5
        if draw(st.integers(0, 2)) == 0:
            fleet["max_power_w"] = _r(level("power_w"), 2) or 0.01
        if draw(st.integers(0, 2)) == 0:
            fleet["min_goodput_tok_s"] = _r(level("goodput_tok_s", 0.0, 0.8), 3)
        if draw(st.integers(0, 3)) == 0:
            fleet["max_energy_j_per_tok"] = _r(spread("energy_j_per_tok"), 4) or 1e-4
        if draw(st.integers(0, 3)) == 0:
            fleet["min_cost_efficiency_tok_per_usd"] = _r(
                spread("cost_efficiency_tok_per_usd", 0.0, 0.8), -2) or 1.0
        if n_targets > 1 and draw(st.integers(0, 3)) == 0:
            fleet["max_devices_per_target"] = draw(st.integers(
                1, sum(d["count"] for d in devices)))
        if draw(st.integers(0, 2)) == 0:
            targets[0]["capacity_tok_s"] = _r(level("verifier_load_tok_s"), 3) or 1e-3
    per_device: dict[str, Any] = {}
    if pools and draw(st.integers(0, 3)) == 0:
        per_device["min_goodput_tok_s"] = _r(draw(st.floats(0.0, 1.0)) * min(
            max(c.goodput_tok_s for c in pc.candidates) for pc in pools), 3)
    obj = objective if objective is not None else draw(st.sampled_from(OBJECTIVES))
    return Spec.model_validate({
        "version": 1, "name": "random", "targets": targets, "drafts": drafts,
        "devices": devices, "profiles": profiles, "search": {"k": {"min": 2, "max": k_max}},
        "objective": obj, "constraints": {"per_device": per_device, "fleet": fleet}})
