"""Pools that can never run anything, profiles that can never be used, and why.

A spec can be valid and still unsolvable: a pool with no profile, or whose
only draft does not fit its memory, has no candidate, so `solve` is
infeasible whatever the constraints say.  `configspec validate` reports these
as located warnings (`--strict`, `configspec check`: an invalid spec, exit 2).

The reasons are not worked out a second time here: they are the exclusions
`candidates.enumerate_candidates` records while it builds the candidates
(one truth).  A profile can never be a candidate when its draft file does
not fit memory_gb, its draft's family matches no target, it has no
acceptance, or no alpha(K) for any K of search.k; a pool has no candidate
when it has no profile, none of its profiles can be used, or its pins
exclude every profiled configuration.  A profile left out by a pin while the
pool has other candidates is what the pin asks for, not reported.
Per-device SLOs are constraints, not structure: `solve` diagnoses them.

One more warning is about plausibility, not structure: an acceptance table
whose expected accepted tokens per round, K*alpha(K), fall as K grows
(`metrics.falling_expectation`), located at the table.  The profile stays a
candidate; the numbers are probably not one measurement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from configspec_opt.candidates import PoolCandidates, enumerate_candidates
from configspec_opt.errors import PathPart, SpecError, SpecIssue
from configspec_opt.loader import LoadedSpec, Source, _locate
from configspec_opt.metrics import falling_expectation
from configspec_opt.spec import PerTokenAcceptance

PROFILE_KINDS = frozenset({"memory", "family", "no_acceptance", "k_range"})
# Lines and columns come from ruamel's round-trip parse (the loader's locator),
# about 8 s per MB: a file larger than this gets warnings with file and path only.
LOCATE_MAX_CHARS = 256_000


@dataclass(frozen=True)
class UsabilityWarning:
    """One pool without candidates (scope pool) or one unusable profile (scope profile)."""

    scope: Literal["pool", "profile"]
    kind: str  # "no_candidates" for a pool; the exclusion's kind for a profile
    device: str
    issue: SpecIssue
    profile: int | None = None  # index in the spec's profiles (all files together)

    def format(self) -> str:
        """The warning as a located `file:line:column: path: message` line."""
        return self.issue.format()

    def to_dict(self) -> dict[str, Any]:
        """The warning as `validate --json` reports it: scope, kind, pool and profile, and where."""
        return {"scope": self.scope, "kind": self.kind, "device": self.device,
                "profile": self.profile, **self.issue.to_dict()}


def analyse(loaded: LoadedSpec,
            structural: Sequence[PoolCandidates] | None = None) -> list[UsabilityWarning]:
    """Warnings in pool order: a pool without candidates, then its unusable profiles.

    `structural` is what `enumerate_candidates` (or `build_problem(...).structural`)
    returned for this spec, so that a caller that has built it need not build it twice.
    """
    spec = loaded.spec
    pools = enumerate_candidates(spec) if structural is None else structural
    locator = _Locator(loaded)
    device_index = {d.name: i for i, d in enumerate(spec.devices)}
    out: list[UsabilityWarning] = []
    for pc in pools:
        name = pc.device.name
        if not pc.candidates:
            reasons = "; ".join(e.message for e in pc.exclusions) or "no candidate"
            issue = locator.issue(("devices", device_index[name]),
                                  f"pool '{name}' has no candidates, so no assignment exists: "
                                  f"{reasons}", _pool_hint(pc))
            out.append(UsabilityWarning("pool", "no_candidates", name, issue))
        for e in pc.exclusions:
            if e.kind not in PROFILE_KINDS or e.profile is None:
                continue
            p = spec.profiles[e.profile]
            issue = locator.issue(("profiles", e.profile),
                                  f"{p.device}/{p.draft}/{p.quant} can never be a candidate: "
                                  f"{e.message}")
            out.append(UsabilityWarning("profile", e.kind, name, issue, e.profile))
    out.extend(implausible(loaded, locator=locator))
    return out


def falling_message(target: str, table: dict[int, float]) -> str | None:
    """The warning for a table whose K*alpha(K) falls as K grows (None when it does not)."""
    steps = falling_expectation(table)
    if not steps:
        return None
    shown = ", ".join(f"K={b} ({a * table[a]:.4g} at K={a}, {b * table[b]:.4g} at K={b})"
                      for a, b in steps[:6]) + (", ..." if len(steps) > 6 else "")
    return (f"acceptance[{target}]: K*alpha(K), the expected accepted tokens per round, "
            f"falls at {shown}; drafting one more token cannot lower it, so this table is "
            "not one measurement")


def implausible(loaded: LoadedSpec, keys: set[tuple[str, str, str]] | None = None,
                targets: set[str] | None = None, *,
                locator: _Locator | None = None) -> list[UsabilityWarning]:
    """Acceptance tables (of the profiles `keys`, for `targets`; default all) whose
    K*alpha(K) falls as K grows, located at the table."""
    locator = locator or _Locator(loaded)
    out: list[UsabilityWarning] = []
    for i, p in enumerate(loaded.spec.profiles):
        if keys is not None and (p.device, p.draft, p.quant) not in keys:
            continue
        for tname, acc in p.acceptance.items():
            if isinstance(acc, PerTokenAcceptance) or (targets and tname not in targets):
                continue
            message = falling_message(tname, acc)
            if message is not None:
                issue = locator.issue(("profiles", i, "acceptance", tname),
                                      f"{p.device}/{p.draft}/{p.quant}: {message}",
                                      "measure the table in one run: `configspec profile`, "
                                      "or one `configspec import vllm-metrics`")
                out.append(UsabilityWarning("profile", "falling_expectation", p.device,
                                            issue, i))
    return out


def _pool_hint(pc: PoolCandidates) -> str | None:
    if any(e.kind == "no_profile" for e in pc.exclusions):
        return f"measure one: configspec profile SPEC --device {pc.device.name}"
    return None


def strict_error(warnings: Sequence[UsabilityWarning]) -> SpecError | None:
    """`--strict`: pools without candidates make the spec invalid (None when there are none)."""
    issues = [w.issue for w in warnings if w.scope == "pool"]
    return SpecError(issues) if issues else None


class _Locator:
    """The loader's locator (`loader._locate`) for paths into the merged spec.

    The loader merges the main file's `profiles` with each `profiles_from` file's
    entries, in that order; `("profiles", i)` is mapped back to its file and its
    path there, as the loader does for its own errors.  An entry that cannot be
    matched (profiles merged from elsewhere, e.g. the HTTP store) gets no line.
    """

    def __init__(self, loaded: LoadedSpec) -> None:
        self.loaded = loaded
        self._origins: list[tuple[Source, tuple[PathPart, ...]]] | None = None

    def issue(self, loc: tuple[PathPart, ...], message: str,
              hint: str | None = None) -> SpecIssue:
        main = self.loaded.sources[0]
        if loc[0] != "profiles" or not isinstance(loc[1], int):
            return _at(main, loc, message, hint, loc)
        origin = self._origin(loc[1])
        if origin is None:
            return SpecIssue(message, loc, hint=hint)
        src, local = origin
        return _at(src, local + loc[2:], message, hint, loc)

    def _origin(self, i: int) -> tuple[Source, tuple[PathPart, ...]] | None:
        sources = self.loaded.sources
        if any(len(s.text) > LOCATE_MAX_CHARS for s in sources):
            # counting entries would parse every file with positions: the file, no line
            return (sources[0], ("profiles", i)) if len(sources) == 1 else None
        if self._origins is None:
            self._origins = _profile_origins(self.loaded)
        if i >= len(self._origins):
            return None
        src, local = self._origins[i]
        node: Any = src.round_trip()
        for part in local:
            node = node[part]
        p = self.loaded.spec.profiles[i]
        if not isinstance(node, Mapping) or any(
                node.get(key) != getattr(p, key) for key in ("device", "draft", "quant")):
            return None
        return src, local


def _at(src: Source, local: tuple[PathPart, ...], message: str, hint: str | None,
        shown: tuple[PathPart, ...]) -> SpecIssue:
    if len(src.text) > LOCATE_MAX_CHARS:
        return SpecIssue(message, shown, src.name, hint=hint)
    return _locate(src, local, message, hint, shown=shown)


def _profile_origins(loaded: LoadedSpec) -> list[tuple[Source, tuple[PathPart, ...]]]:
    """Where each merged profile is written: the main file's, then each included file's."""
    main, *included = loaded.sources
    out: list[tuple[Source, tuple[PathPart, ...]]] = []
    rt = main.round_trip()
    inline = rt.get("profiles") if isinstance(rt, Mapping) else None
    if isinstance(inline, list):
        out.extend((main, ("profiles", i)) for i in range(len(inline)))
    for src in included:
        node = src.round_trip()
        prefix: tuple[PathPart, ...] = ()
        if isinstance(node, Mapping) and set(node) == {"profiles"}:
            node, prefix = node["profiles"], ("profiles",)
        if not isinstance(node, list):
            return []
        out.extend((src, (*prefix, i)) for i in range(len(node)))
    return out if len(out) == len(loaded.spec.profiles) else []
