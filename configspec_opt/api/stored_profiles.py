"""Solving with the profiles edge devices pushed instead of the spec's inline ones.

Rule (`?profiles=stored`): for every (device, draft, quant) that the spec can
use, the newest stored entry replaces the inline entry with the same key or,
where the spec has none, is added.  Inline entries without a stored
counterpart stay, and a warning names them, so a half-profiled fleet still
solves and the operator sees which numbers are still typed in by hand.
Stored entries for pools, drafts or quants the spec does not declare are
ignored, as are acceptance figures for targets it does not declare (one
server serves many specs).  Pure: runs in the solver workers.
"""

from __future__ import annotations

import re
from typing import Any

from configspec_opt.consistency import Inconsistency, check_consistency
from configspec_opt.loader import LoadedSpec, ProfileOrigin, check_merged
from configspec_opt.spec import Profile, Spec

Key = tuple[str, str, str]


def apply_stored(
    loaded: LoadedSpec, stored: list[dict[str, Any]]
) -> tuple[LoadedSpec, list[dict[str, Any]]]:
    """The spec with stored profiles merged in, and which stored entries were used.

    `stored` holds `{"id": int, "profile": dict}` oldest first.  The merged
    spec is checked by the loader's own `check_merged`, so a problem in an
    inline entry points into the request body and one in a stored entry names
    it (`stored profile 12`).
    """
    spec = loaded.spec
    drafts = {d.name: d for d in spec.drafts}
    targets = {t.name: t for t in spec.targets}
    devices = {d.name for d in spec.devices}
    chosen: dict[Key, tuple[int, Profile]] = {}
    for entry in stored:
        p = Profile.model_validate(entry["profile"])
        draft = drafts.get(p.draft)
        if p.device not in devices or draft is None or p.quant not in draft.quants:
            continue
        acceptance = {t: a for t, a in p.acceptance.items()
                      if t in targets and targets[t].family == draft.family}
        chosen[(p.device, p.draft, p.quant)] = (
            int(entry["id"]), p.model_copy(update={"acceptance": acceptance}))

    main = loaded.sources[0]
    profiles: list[Profile] = []
    origins: list[ProfileOrigin] = []
    used: list[tuple[int, Profile]] = []
    kept: list[str] = []
    for i, p in enumerate(spec.profiles):
        key = (p.device, p.draft, p.quant)
        if key in chosen:
            used.append(chosen.pop(key))
            profiles.append(used[-1][1])
            origins.append(f"stored profile {used[-1][0]}")
        else:
            profiles.append(p)
            # a spec read from one source has its inline entries in order there
            origins.append((main, i) if len(loaded.sources) == 1 else main.name)
            kept.append("/".join(key))
    for pid, sp in chosen.values():
        used.append((pid, sp))
        profiles.append(sp)
        origins.append(f"stored profile {pid}")

    merged = check_merged(
        spec.model_copy(update={"profiles": profiles}), loaded.sources, origins,
        blame=lambda problems: _culprits(spec, profiles, origins, problems))
    if not used:
        merged.warnings.insert(0, "profiles=stored: no stored profile matches this spec's "
                               "devices, drafts and quants; the inline profiles were used")
    elif kept:
        merged.warnings.insert(0, f"profiles=stored: no stored profile for {', '.join(kept)}; "
                               "the spec's inline entries were used")
    return merged, [{"id": pid, "device": sp.device, "draft": sp.draft, "quant": sp.quant}
                    for pid, sp in sorted(used, key=lambda t: t[0])]


MAX_BLAME_CHECKS = 200  # consistency checks spent finding the stored entries behind a problem


def _culprits(spec: Spec, profiles: list[Profile], origins: list[ProfileOrigin],
              problems: list[Inconsistency]) -> dict[Inconsistency, str]:
    """For problems located outside `profiles` (an energy cap, say), the stored entries
    without which the problem goes away, found by taking each back out in turn.

    The spec alone was consistent (loading checked it), so every problem comes
    from some stored entry.  A problem no single entry explains (two entries
    lacking power for one pool) is blamed on every stored entry of the pools
    its message names, or, failing that, on all of them.
    """
    inline = {(p.device, p.draft, p.quant): p for p in spec.profiles}
    stored = [i for i, o in enumerate(origins) if isinstance(o, str)
              and o.startswith("stored profile")]
    wanted = [p for p in problems if not _in_profiles(p[0])]
    blame: dict[Inconsistency, list[str]] = {p: [] for p in wanted}
    if not wanted or not stored:
        return {}
    for i in stored[:MAX_BLAME_CHECKS]:
        p = profiles[i]
        back = inline.get((p.device, p.draft, p.quant))
        trial = profiles[:i] + ([back] if back is not None else []) + profiles[i + 1:]
        remaining = set(check_consistency(spec.model_copy(update={"profiles": trial}))[0])
        for problem in wanted:
            if problem not in remaining:
                blame[problem].append(str(origins[i]))
    for problem, names in blame.items():
        if not names:
            named = [str(origins[i]) for i in stored
                     if re.search(rf"\b{re.escape(profiles[i].device)}\b", problem[1])]
            names.extend(named or [str(origins[i]) for i in stored])
    return {problem: _file_of(names) for problem, names in blame.items()}


def _in_profiles(loc: tuple[Any, ...]) -> bool:
    return len(loc) >= 2 and loc[0] == "profiles" and isinstance(loc[1], int)


def _file_of(names: list[str]) -> str:
    """What an issue's `file` says for the stored entries behind it (the first 20 ids)."""
    if len(names) == 1:
        return names[0]
    ids = [n.removeprefix("stored profile ") for n in names]
    return f"stored profiles {', '.join(ids[:20])}" + (
        f" (and {len(ids) - 20} more)" if len(ids) > 20 else "")
