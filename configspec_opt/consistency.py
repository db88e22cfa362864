"""Checks that span several parts of a spec (separate from building any model).

Pydantic checks each value on its own; here we check that names refer to
things that exist, that pairings make sense, and that what the objective
and the constraints ask for can be computed from the data given.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from configspec_opt.errors import PathPart
from configspec_opt.metric_registry import POWER_METRICS, RATIO_METRICS
from configspec_opt.spec import PerTokenAcceptance, Spec

Inconsistency = tuple[tuple[PathPart, ...], str, str | None]
"""One problem found: where (a path into the spec), what, and a hint (or None)."""


def _did_you_mean(name: str, known: Iterable[str]) -> str | None:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"known: {', '.join(known)}" if known and len(known) <= 12 else None


def devices_without_power(spec: Spec, only: set[str] | None = None) -> list[str]:
    """Pools (of `only`, if given) with at least one profile that has no power figure."""
    declared = {d.name for d in spec.devices if d.power_w is not None}
    out: list[str] = []
    for p in spec.profiles:
        if only is not None and p.device not in only:
            continue
        if p.power_w is None and p.device not in declared and p.device not in out:
            out.append(p.device)
    return out


def check_consistency(spec: Spec) -> tuple[list[Inconsistency], list[str]]:
    """Return (errors, warnings); errors carry the path of the offending value."""
    problems: list[Inconsistency] = []
    warnings: list[str] = []

    for section in ("targets", "drafts", "devices"):
        seen: dict[str, int] = {}
        for i, item in enumerate(getattr(spec, section)):
            if item.name in seen:
                problems.append(((section, i, "name"),
                                 f"duplicate name '{item.name}' "
                                 f"(also {section}[{seen[item.name]}])",
                                 None))
            seen.setdefault(item.name, i)

    targets = {t.name: t for t in spec.targets}
    drafts = {d.name: d for d in spec.drafts}
    devices = {d.name: d for d in spec.devices}
    seen_profiles: dict[tuple[str, str, str], int] = {}
    krange = set(spec.search.k.values())

    for i, p in enumerate(spec.profiles):
        if p.device not in devices:
            problems.append((("profiles", i, "device"), f"unknown device '{p.device}'",
                             _did_you_mean(p.device, devices)))
        draft = drafts.get(p.draft)
        if draft is None:
            problems.append((("profiles", i, "draft"), f"unknown draft '{p.draft}'",
                             _did_you_mean(p.draft, drafts)))
        elif p.quant not in draft.quants:
            problems.append((("profiles", i, "quant"),
                             f"draft '{p.draft}' has no quant '{p.quant}'",
                             _did_you_mean(p.quant, draft.quants)))
        key = (p.device, p.draft, p.quant)
        if key in seen_profiles:
            problems.append((("profiles", i), f"second profile for {'/'.join(key)} "
                             f"(also profiles[{seen_profiles[key]}])", None))
        seen_profiles.setdefault(key, i)
        for tname, acc in p.acceptance.items():
            target = targets.get(tname)
            if target is None:
                problems.append((("profiles", i, "acceptance", tname),
                                 f"unknown target '{tname}'", _did_you_mean(tname, targets)))
                continue
            if draft is not None and draft.family != target.family:
                problems.append((("profiles", i, "acceptance", tname),
                                 f"draft '{draft.name}' (family {draft.family}) cannot pair "
                                 f"with target '{tname}' (family {target.family})", None))
            if not isinstance(acc, PerTokenAcceptance):
                missing = sorted(krange - set(acc))
                if missing:
                    warnings.append(
                        f"profiles[{i}] ({'/'.join(key)}) has no acceptance for {tname} at "
                        f"K={','.join(map(str, missing))}: those K are not candidates")

    problems.extend(_class_problems(spec, targets, warnings))

    for i, pin in enumerate(spec.constraints.pinned):
        where: tuple[PathPart, ...] = ("constraints", "pinned", i)
        if pin.device not in devices:
            problems.append(((*where, "device"), f"unknown device '{pin.device}'",
                             _did_you_mean(pin.device, devices)))
        if pin.target is not None and pin.target not in targets:
            problems.append(((*where, "target"), f"unknown target '{pin.target}'",
                             _did_you_mean(pin.target, targets)))
        if pin.draft is not None and pin.draft not in drafts:
            problems.append(((*where, "draft"), f"unknown draft '{pin.draft}'",
                             _did_you_mean(pin.draft, drafts)))
        elif pin.draft is not None and pin.quant is not None and \
                pin.quant not in drafts[pin.draft].quants:
            problems.append(((*where, "quant"), f"draft '{pin.draft}' has no quant "
                             f"'{pin.quant}'", _did_you_mean(pin.quant, drafts[pin.draft].quants)))
        if pin.k is not None and pin.k not in krange:
            problems.append(((*where, "k"), f"k={pin.k} is outside search.k "
                             f"({spec.search.k.min}..{spec.search.k.max})", None))

    problems.extend(_verifier_problems(spec, warnings))
    problems.extend(_objective_problems(spec))
    problems.extend(_power_problems(spec))
    return problems, warnings


def _class_problems(spec: Spec, targets: Mapping[str, object],
                    warnings: list[str]) -> list[Inconsistency]:
    """Per-class acceptance names known targets; a mix's class measured somewhere."""
    problems: list[Inconsistency] = []
    measured: set[str] = set()
    for i, p in enumerate(spec.profiles):
        for cls, per_target in p.acceptance_by_class.items():
            measured.add(cls)
            for tname in per_target:
                if tname not in targets:
                    problems.append((("profiles", i, "acceptance_by_class", cls, tname),
                                     f"unknown target '{tname}'",
                                     _did_you_mean(tname, targets)))
                elif tname not in p.acceptance:
                    problems.append((("profiles", i, "acceptance_by_class", cls, tname),
                                     f"acceptance_by_class names target '{tname}', which "
                                     "this profile's acceptance does not", None))
    mixes = [("workload.mix", spec.workload.mix)] + [
        (f"devices[{i}].mix", d.mix) for i, d in enumerate(spec.devices)]
    for where, mix in mixes:
        for cls in mix or {}:
            if cls not in measured:
                warnings.append(f"{where}: no profile measured class '{cls}' "
                                "(acceptance_by_class): its plain acceptance stands in")
    return problems


def _objective_problems(spec: Spec) -> list[Inconsistency]:
    out: list[Inconsistency] = []
    if spec.objective.weighted is not None:
        for i, term in enumerate(spec.objective.weighted):
            if term.metric in RATIO_METRICS:
                out.append((("objective", "weighted", i, term.sense),
                             f"{term.metric.value} is a ratio over the whole fleet and cannot be "
                             "summed with other terms",
                             "use a lexicographic objective, or bound it under "
                             "constraints.fleet"))
    return out


def _power_problems(spec: Spec) -> list[Inconsistency]:
    """Energy and power requirements over pools whose power is unknown.

    Counting an unknown power as 0 W would hold a cap against a sum that
    leaves devices out, so every objective, cap or SLO that reads power is an
    error naming the pools without it.
    """
    missing = devices_without_power(spec)
    if not missing:
        return []
    names = (f"device{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    why = {"energy": f"no power data for {names}: energy per token is not available there",
           "power": f"no power data for {names}: their edge power is unknown, so a power "
                    "requirement cannot be checked"}
    hint = "profile with a power source, set power_w in the profile or on the device, " \
           "or drop the requirement"
    out: list[Inconsistency] = []
    for i, term in enumerate(spec.objective.terms()):
        if term.metric in POWER_METRICS:
            loc: tuple[PathPart, ...] = ("objective", term.sense) if spec.objective.mode == \
                "single" else ("objective", spec.objective.mode, i, term.sense)
            out.append((loc, why[term.metric.value], hint))
    for field, kind in (("max_energy_j_per_tok", "energy"), ("max_power_w", "power")):
        if getattr(spec.constraints.fleet, field) is not None:
            out.append((("constraints", "fleet", field), why[kind], hint))
        if getattr(spec.constraints.per_device, field) is not None:
            out.append((("constraints", "per_device", field), why[kind], hint))
        for i, d in enumerate(spec.devices):
            if d.name in missing and d.slo is not None and getattr(d.slo, field) is not None:
                out.append((("devices", i, "slo", field),
                            f"no power data for device {d.name}", hint))
    return out


def _verifier_problems(spec: Spec, warnings: list[str]) -> list[Inconsistency]:
    """Batched verifiers: what per-device cost efficiency and the K range can mean there.

    A replica-priced target bills replicas, not tokens, so one device's
    tokens per dollar does not exist: an SLO on it is an error.  K values
    the latency table never measured are not candidates (a warning).
    """
    out: list[Inconsistency] = []
    batched = [t for t in spec.targets if t.verifier is not None]
    if not batched:
        return out
    names = ", ".join(t.name for t in batched)
    plural = "s" if len(batched) > 1 else ""
    why = (f"per-device cost efficiency is n/a on replica-priced target{plural} {names} "
           "(billed per replica-hour)")
    hint = "bound constraints.fleet.min_cost_efficiency_tok_per_usd instead"
    if spec.constraints.per_device.min_cost_efficiency_tok_per_usd is not None:
        out.append((("constraints", "per_device", "min_cost_efficiency_tok_per_usd"), why, hint))
    for i, d in enumerate(spec.devices):
        if d.slo is not None and d.slo.min_cost_efficiency_tok_per_usd is not None:
            out.append((("devices", i, "slo", "min_cost_efficiency_tok_per_usd"), why, hint))
    krange = set(spec.search.k.values())
    for t in batched:
        assert t.verifier is not None
        measured = set(next(iter(t.verifier.latency_s.values())))
        missing = sorted(krange - measured)
        if missing:
            warnings.append(f"targets[{t.name}].verifier.latency_s has no K="
                            f"{','.join(map(str, missing))}: those K are not candidates there")
    return out
