"""Changes to a spec's measured numbers: `acceptance*0.9`, `rtt_s*1.5`, `verify_latency+0.02`.

One definition of each parameter (what it changes in the spec, and which way hurts a
plan) for the what-if re-evaluation (`configspec_opt.what_if`) and for the robust
problem's corners of the uncertainty box (`configspec_opt.robust`).  A change edits
the spec's data and validates it again, so a changed spec is checked like any other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from configspec_opt.errors import UsageError
from configspec_opt.spec import PerTokenAcceptance, Spec

Op = Literal["*", "+"]
Direction = Literal["up", "down"]


def _each(items: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return list(items or [])


def _set(d: dict[str, Any], key: str, fn: Callable[[float], float]) -> None:
    if d.get(key) is not None:
        d[key] = fn(float(d[key]))


AlphaEdit = Callable[[dict[str, Any], str, int, float], float]
"""(profile data, target, K, alpha) -> the new alpha: an edit that may read the profile."""


def edit_acceptance(data: dict[str, Any], edit: AlphaEdit) -> None:
    """Every alpha(K) of every profile through `edit`, capped to [0, 1]; a per-token rate
    is first written as its table over search.k."""
    ks = range(data["search"]["k"]["min"], data["search"]["k"]["max"] + 1) \
        if data.get("search") else range(1, 17)
    for prof in _each(data.get("profiles")):
        for target, acc in list((prof.get("acceptance") or {}).items()):
            if isinstance(acc, dict) and "per_token" in acc:
                rate = PerTokenAcceptance(per_token=acc["per_token"])
                table = {k: rate.alpha(k) for k in ks}
            elif isinstance(acc, PerTokenAcceptance):
                table = {k: acc.alpha(k) for k in ks}
            else:
                table = dict(acc)
            prof["acceptance"][target] = {
                k: min(1.0, max(0.0, edit(prof, target, int(k), float(a))))
                for k, a in table.items() if a is not None}


def _acceptance(data: dict[str, Any], fn: Callable[[float], float]) -> None:
    edit_acceptance(data, lambda prof, target, k, a: fn(a))


def _draft_speed(data: dict[str, Any], fn: Callable[[float], float]) -> None:
    for prof in _each(data.get("profiles")):
        _set(prof, "draft_tok_s", fn)


def _rtt(data: dict[str, Any], fn: Callable[[float], float]) -> None:
    for dev in _each(data.get("devices")):
        dev["rtt_s"] = fn(float(dev.get("rtt_s") or 0.0))


def _verify_latency(data: dict[str, Any], fn: Callable[[float], float], op: Op) -> None:
    for t in _each(data.get("targets")):
        _set(t, "verify_latency_s", fn)
        if op == "*":  # a shift moves the latency once, not its growth with K
            _set(t, "verify_latency_per_token_s", fn)
        if t.get("verifier"):
            table = t["verifier"]["latency_s"]
            t["verifier"]["latency_s"] = {b: {k: fn(float(v)) for k, v in row.items()}
                                          for b, row in table.items()}


def _power(data: dict[str, Any], fn: Callable[[float], float]) -> None:
    for prof in _each(data.get("profiles")):
        _set(prof, "power_w", fn)
        _set(prof, "idle_power_w", fn)
    for dev in _each(data.get("devices")):
        _set(dev, "power_w", fn)


def _price(data: dict[str, Any], fn: Callable[[float], float]) -> None:
    for t in _each(data.get("targets")):
        _set(t, "price_usd_per_mtok", fn)
        if t.get("verifier"):
            _set(t["verifier"], "price_usd_per_replica_hour", fn)


@dataclass(frozen=True)
class Parameter:
    """One measured quantity a what-if may change, and which way hurts a plan."""

    name: str
    what: str
    adverse: Direction
    edit: Callable[[dict[str, Any], Callable[[float], float], Op], None]


PARAMETERS: dict[str, Parameter] = {p.name: p for p in (
    Parameter("acceptance", "alpha(K) of every profile (a per-token rate becomes its "
              "table over search.k first; capped at 1)", "down",
              lambda d, fn, op: _acceptance(d, fn)),
    Parameter("draft_tok_s", "drafting speed v_d of every profile", "down",
              lambda d, fn, op: _draft_speed(d, fn)),
    Parameter("rtt_s", "network round trip of every device", "up",
              lambda d, fn, op: _rtt(d, fn)),
    Parameter("verify_latency", "the target's verification latency (fixed latency, its "
              "growth with K, and every cell of a batched verifier's table)", "up",
              _verify_latency),
    Parameter("power_w", "drafting and idle power of every profile and device", "up",
              lambda d, fn, op: _power(d, fn)),
    Parameter("price", "per-token price and replica-hour price of every target", "up",
              lambda d, fn, op: _price(d, fn)),
)}
_CHANGE = re.compile(r"^\s*([a-z_]+)\s*([*+])\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Change:
    """`rtt_s*1.5`: a parameter, multiplied (`*`) or shifted (`+`) by a number."""

    parameter: str
    op: Op
    value: float

    @classmethod
    def parse(cls, text: str) -> Change:
        """A change as the command line writes it; a UsageError naming what is allowed."""
        m = _CHANGE.match(text)
        names = ", ".join(PARAMETERS)
        if m is None:
            raise UsageError(f"cannot read the change {text!r}: write PARAMETER*FACTOR or "
                             f"PARAMETER+AMOUNT, e.g. rtt_s*1.5 (parameters: {names})")
        name, op, raw = m.groups()
        if name not in PARAMETERS:
            raise UsageError(f"unknown parameter '{name}' in {text!r} (one of: {names})")
        value = float(raw)
        if not math.isfinite(value) or (op == "*" and value < 0.0):
            raise UsageError(f"{text!r}: a factor must be a finite number of at least 0")
        return cls(name, "*" if op == "*" else "+", value)

    def __str__(self) -> str:
        return f"{self.parameter}{self.op}{self.value:g}"

    def fn(self) -> Callable[[float], float]:
        """The change as a function of one number."""
        v = self.value
        return (lambda x: x * v) if self.op == "*" else (lambda x: x + v)


def changed_spec(spec: Spec, changes: Sequence[Change]) -> Spec:
    """The spec with its numbers changed, validated again (a UsageError where the change
    makes a number invalid, e.g. a negative rtt)."""
    if not changes:
        return spec

    return edited_spec(spec, lambda data: apply_changes(data, changes),
                       ", ".join(map(str, changes)))


def apply_changes(data: dict[str, Any], changes: Sequence[Change]) -> None:
    """Each change's edit of the spec's data, in order."""
    for ch in changes:
        PARAMETERS[ch.parameter].edit(data, ch.fn(), ch.op)


def edited_spec(spec: Spec, edit: Callable[[dict[str, Any]], None], what: str) -> Spec:
    """The spec's data through `edit`, validated again; `what` names the edit in errors."""
    data = spec.model_dump(mode="python", exclude_none=False)
    data["profiles_from"] = []
    edit(data)
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{what} makes the spec invalid: {where}: {first['msg']}") from None


__all__ = ["PARAMETERS", "AlphaEdit", "Change", "Direction", "Op", "Parameter",
           "apply_changes", "changed_spec", "edit_acceptance", "edited_spec"]
