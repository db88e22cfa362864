"""What a profiling run will measure: the device's variants and the targets to pair them with.

Only (draft, quant) files that fit the device's memory and have a `gguf`
path are candidates, as in the optimiser; targets must share the draft's
family (the spec's pairing rule) and name a `gguf` or an `endpoint`.
Everything left out is listed with the reason, so a run never silently
measures less than the user expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from configspec_opt.errors import UsageError
from configspec_opt.spec import Device, Profile, Spec, Target
from profiler.paths import resolve_model_path


@dataclass(frozen=True)
class Variant:
    """A (draft, quant) file to profile on this device: its spec reference and resolved path."""

    draft: str
    family: str
    quant: str
    gguf_ref: str
    path: Path
    size_gb: float

    @property
    def label(self) -> str:
        """"draft quant", as messages and the summary name it."""
        return f"{self.draft} {self.quant}"


@dataclass(frozen=True)
class TargetRef:
    """A target to pair drafts with: run locally from `path`, or at its endpoint when None."""

    target: Target
    path: Path | None  # local GGUF, else endpoint


def find_device(spec: Spec, name: str) -> Device:
    """The spec's device called `name`; UsageError listing the devices otherwise."""
    for d in spec.devices:
        if d.name == name:
            return d
    raise UsageError(f"unknown device '{name}' (devices in the spec: "
                     f"{', '.join(d.name for d in spec.devices)})")


def parse_draft_filter(items: list[str] | None) -> set[tuple[str, str | None]] | None:
    """`--drafts name` or `name:quant`, repeatable or comma-separated."""
    if not items:
        return None
    out: set[tuple[str, str | None]] = set()
    for item in items:
        for part in item.split(","):
            name, _, quant = part.strip().partition(":")
            if name:
                out.add((name, quant or None))
    return out


def plan_variants(spec: Spec, device: Device, base_dir: Path,
                  only: set[tuple[str, str | None]] | None) -> tuple[list[Variant], list[str]]:
    """The (draft, quant) variants to profile on `device`, and why each other one is left out.

    `only` comes from `parse_draft_filter`; an unknown draft name in it is a
    UsageError.  Variants too large for the device's memory or without a
    `gguf` path are skipped with a reason, not silently.
    """
    variants: list[Variant] = []
    skipped: list[str] = []
    known = {d.name for d in spec.drafts}
    for name, _ in only or ():
        if name not in known:
            raise UsageError(f"--drafts: unknown draft '{name}' "
                             f"(known: {', '.join(sorted(known))})")
    for draft in spec.drafts:
        for qname, quant in draft.quants.items():
            wanted = {(draft.name, None), (draft.name, qname)}
            if only is not None and not wanted & only:
                continue
            label = f"{draft.name} {qname}"
            if quant.size_gb > device.memory_gb:
                skipped.append(f"{label}: needs {quant.size_gb:g} GB, {device.name} has "
                               f"{device.memory_gb:g} GB")
                continue
            if not quant.gguf:
                skipped.append(f"{label}: no gguf path in the spec")
                continue
            variants.append(Variant(draft.name, draft.family, qname, quant.gguf,
                                    resolve_model_path(quant.gguf, base_dir), quant.size_gb))
    return variants, skipped


def plan_targets(spec: Spec, base_dir: Path, names: list[str] | None) -> list[TargetRef]:
    """The targets to profile against (all, or those `names` picks), each runnable.

    Raises UsageError for an unknown name, for a named target with neither
    `gguf` nor `endpoint`, or when no target can be run at all; unnamed
    targets that cannot be run are left out.
    """
    targets = spec.targets
    if names:
        known = {t.name: t for t in spec.targets}
        missing = [n for n in names if n not in known]
        if missing:
            raise UsageError(f"--target: unknown target {', '.join(missing)} "
                             f"(known: {', '.join(known)})")
        targets = [known[n] for n in names]
    refs = []
    for t in targets:
        if t.gguf:
            refs.append(TargetRef(t, resolve_model_path(t.gguf, base_dir)))
        elif t.endpoint:
            refs.append(TargetRef(t, None))
        elif names:
            raise UsageError(f"target '{t.name}' has neither gguf nor endpoint: the profiler "
                             "cannot run it")
    if not refs:
        raise UsageError("no target with a gguf or an endpoint to profile against")
    return refs


def already_measured(spec: Spec, device: str, v: Variant, targets: list[TargetRef],
                     ks: list[int], temperature: float = 0.0) -> Profile | None:
    """The existing profile if it covers every target at every K (so it can be skipped).

    A profile measured at another temperature (greedy vs sampled acceptance)
    does not count; a hand-written one (no provenance) does, so it is only
    replaced with --force.
    """
    for p in spec.profiles:
        if (p.device, p.draft, p.quant) != (device, v.draft, v.quant):
            continue
        settings = (p.provenance or {}).get("settings") or {}
        if p.provenance and float(settings.get("temperature", 0.0)) != temperature:
            return None
        for ref in targets:
            if ref.target.family != v.family:
                continue
            acc = p.acceptance.get(ref.target.name)
            if acc is None or (isinstance(acc, dict) and not set(ks) <= set(acc)):
                return None
        return p
    return None


def parse_k(text: str | None, default: range) -> list[int]:
    """`2..10`, `2-10`, `2,4,8` or `5`; the spec's search range when not given."""
    if not text:
        return list(default)
    try:
        for sep in ("..", "-"):
            if sep in text:
                lo, hi = (int(x) for x in text.split(sep, 1))
                ks = list(range(lo, hi + 1))
                break
        else:
            ks = sorted({int(x) for x in text.split(",")})
    except ValueError:
        raise UsageError(f"--k {text!r}: write a range like 2..10, a list like 2,4,8, "
                         "or one K") from None
    if not ks or min(ks) < 1 or max(ks) > 64:
        raise UsageError(f"--k {text!r}: K must be between 1 and 64")
    return ks
