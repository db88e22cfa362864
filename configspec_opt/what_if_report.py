"""`configspec what-if`: the dict `--json` prints and its tables, from `what_if`.

The plan is a lock (`SPEC.lock` beside the spec, or `--lock`), else the spec's own
solve; it is never solved again under the changed numbers: that is the point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from configspec_opt.metric_registry import REGISTRY
from configspec_opt.results import SensitivityJSON
from configspec_opt.spec import Spec
from configspec_opt.what_if import Change, Outcome, Plan, changed_spec, evaluate, sensitivity


def _rel(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or a == 0.0 else (b - a) / abs(a)


def _fleet(nominal: Outcome, changed: Outcome) -> list[dict[str, Any]]:
    out = []
    for d in REGISTRY:
        a = nominal.fleet.values.get(d.metric) if nominal.fleet else None
        b = changed.fleet.values.get(d.metric) if changed.fleet else None
        if a is None and b is None:
            continue
        out.append({"metric": d.key, "nominal": a, "changed": b, "change": _rel(a, b)})
    return out


def what_if_report(spec: Spec, plan: Plan, changes: Sequence[Change], *,
                   breaking: bool = True) -> dict[str, Any]:
    """The plan under the spec's numbers and under the changed ones, side by side; with
    `breaking`, each parameter's breaking point and the objective's elasticities."""
    nominal = evaluate(spec, plan)
    changed = evaluate(changed_spec(spec, changes), plan) if changes else nominal
    pools = []
    for a, b in zip(nominal.pools, changed.pools or nominal.pools, strict=True):
        r = a.row
        pools.append({"device": r.device, "count": r.count, "target": r.target,
                      "draft": r.draft, "quant": r.quant, "k": r.k,
                      "goodput_tok_s": {"nominal": a.goodput_tok_s,
                                        "changed": b.goodput_tok_s if changed.pools else None},
                      "round_time_s": {"nominal": a.round_time_s,
                                       "changed": b.round_time_s if changed.pools else None},
                      "broken": b.broken if changed.pools else []})
    terms = spec.objective.terms()
    data: dict[str, Any] = {
        "spec": spec.name, "plan": plan.source, "changes": [str(c) for c in changes],
        "objective": {"mode": spec.objective.mode,
                      "terms": [{"sense": t.sense, "metric": t.metric.value} for t in terms],
                      "nominal": nominal.objective, "changed": changed.objective,
                      "change": _rel(nominal.objective, changed.objective)},
        "holds": changed.holds, "broken": changed.broken,
        "nominal_broken": nominal.broken,
        "fleet": _fleet(nominal, changed), "pools": pools,
    }
    if breaking:
        data["sensitivity"] = sensitivity(spec, plan)
    return data


def _num(x: float | None, fmt: str = ".4g") -> str:
    return "n/a" if x is None else format(x, fmt)


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:+.1%}"


def print_what_if(console: Console, data: dict[str, Any]) -> None:
    """The comparison, the constraints broken, breaking points and sensitivity."""
    obj = data["objective"]
    head = " then ".join(f"{t['sense']} {t['metric']}" for t in obj["terms"])
    changes = ", ".join(data["changes"]) or "no change"
    console.print(f"{data['spec']}: plan from {data['plan']} under {changes}", markup=False)
    console.print(f"objective ({head}): {_num(obj['nominal'])} -> {_num(obj['changed'])} "
                  f"{_pct(obj['change'])}", markup=False)
    if data["nominal_broken"]:
        console.print("already broken with the spec's own numbers: "
                      + ", ".join(data["nominal_broken"]), markup=False)
    console.print("every constraint holds" if data["holds"] else
                  "BROKEN: " + ", ".join(data["broken"]), markup=False)
    t = Table(title="fleet", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for name in ("metric", "nominal", "changed", "change"):
        t.add_column(name, justify="left" if name == "metric" else "right")
    for row in data["fleet"]:
        t.add_row(row["metric"], _num(row["nominal"]), _num(row["changed"]),
                  _pct(row["change"]))
    console.print(t)
    t = Table(title="pools", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for name in ("device", "n", "config", "goodput", "changed", "broken"):
        t.add_column(name, justify="right" if name in ("n", "goodput", "changed") else "left",
                     overflow="fold")
    for p in data["pools"]:
        t.add_row(p["device"], str(p["count"]),
                  f"{p['draft']} {p['quant']} K={p['k']} -> {p['target']}",
                  _num(p["goodput_tok_s"]["nominal"]), _num(p["goodput_tok_s"]["changed"]),
                  ", ".join(p["broken"]))
    console.print(t)
    if "sensitivity" in data:
        print_sensitivity(console, data["sensitivity"])


def print_sensitivity(console: Console, sens: SensitivityJSON) -> None:
    """Breaking points and elasticities as one table."""
    t = Table(title="breaking points (each parameter alone, against the plan)",
              box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for name in ("parameter", "holds to", "then breaks", "elasticity"):
        t.add_column(name, justify="right" if name in ("holds to", "elasticity")
                     else "left", overflow="fold")
    el = {s["parameter"]: s["elasticity"] for s in sens["elasticities"]}
    for b in sens["breaking_points"]:
        held = f"x{b['holds_to_factor']:.3g}" if b["holds_to_factor"] is not None \
            else f"beyond x{b['scanned_to_factor']:.3g}"
        t.add_row(b["parameter"], held, ", ".join(b["breaks"]) or "nothing on the scan",
                  _num(el.get(b["parameter"]), "+.2f"))
    console.print(t)
    console.print("elasticity: % change of the objective per % change of the parameter",
                  markup=False)


__all__ = ["print_sensitivity", "print_what_if", "what_if_report"]
