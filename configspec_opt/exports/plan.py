"""What the ready-to-run formats read from a decision: per pool configuration, per verifier.

A decision (`configspec_opt.export.Decision`, a solve or a lock) names drafts, quants and
targets; the commands need files and URLs.  A model reference in the spec is a path
relative to the spec's directory, `~/...`, an absolute path, `pkg:<module>/<file>` or a
URL; `Resolver` turns it into what a command can open on this machine (None where it
cannot: a URL, a package not installed here, nothing declared).  What stays unknown is
written as a placeholder that stops the command with a message (`Placeholder`) and listed
in the manifest's `unresolved`, never guessed.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configspec_opt.export import ENV_PREFIX, Decision, pool_documents, safe_names
from configspec_opt.safe_text import one_line

Resolver = Callable[[str], str | None]
"""A model reference as the spec writes it -> a path a command can open, or None."""

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DNS = re.compile(r"[^a-z0-9-]+")


def default_resolver(base: Path) -> Resolver:
    """Paths against the spec's directory `base`; URLs and `pkg:` references stay unresolved
    (the CLI resolves `pkg:` where the package is installed)."""
    def resolve(ref: str) -> str | None:
        if _URL.match(ref) or ref.startswith("pkg:"):
            return None
        p = Path(ref).expanduser()
        return str(p if p.is_absolute() else (base / p).resolve())
    return resolve


@dataclass(frozen=True)
class ModelRef:
    """A model file as declared (`declared`) and as a command opens it (`local`, or None)."""

    declared: str | None
    local: str | None
    what: str  # "draft llama-1b Q4_K_M", "target llama-70b"

    @property
    def why_unknown(self) -> str:
        """Why `local` is None, for the manifest."""
        if self.declared is None:
            return f"the spec declares no gguf for {self.what}"
        return f"{self.what}: {self.declared} is not a file on this machine (download it, or " \
            "install its package, and export again; or set the variable)"


@dataclass(frozen=True)
class Configuration:
    """One configuration of one pool: what its devices run (a split pool has several)."""

    pool: str
    stem: str        # the pool's file stem, with `.i` for configuration i of a split pool
    index: int       # 1-based
    of: int
    count: int       # devices running it
    draft: str
    quant: str
    k: int
    target: str
    endpoint: str | None
    draft_model: ModelRef
    target_model: ModelRef
    expected: dict[str, Any]


@dataclass(frozen=True)
class VerifierTarget:
    """A target the fleet uses, with the replicas and batch the plan decides for it."""

    target: str
    slug: str                # a DNS-1123 label: Kubernetes and Compose names
    replicas: int
    decided: bool            # replicas decided by the plan (a batched verifier) or not
    max_batch: int | None    # verification requests one replica serves together
    devices: int
    k_max: int
    model: ModelRef
    in_flight_per_replica: float | None = None


@dataclass
class Unresolved:
    """Values a format could not fill in from the spec: each stops its command by name."""

    items: list[dict[str, str]] = field(default_factory=list)

    def add(self, where: str, variable: str, why: str) -> None:
        """Record one (once per variable and place)."""
        item = {"where": where, "variable": variable, "why": why}
        if item not in self.items:
            self.items.append(item)


def _ref(declared: str | None, resolve: Resolver, what: str) -> ModelRef:
    return ModelRef(declared, None if declared is None else resolve(declared), what)


def configurations(decision: Decision, resolve: Resolver) -> list[Configuration]:
    """Every configuration of every pool with devices, in the spec's pool order."""
    spec = decision.loaded.spec
    docs = pool_documents(decision)
    stems = safe_names([d.name for d, _ in docs])
    out: list[Configuration] = []
    for device, doc in docs:
        cfgs = doc["configurations"]
        for i, cfg in enumerate(cfgs):
            draft = next(d for d in spec.drafts if d.name == cfg["draft"]["name"])
            target = next(t for t in spec.targets if t.name == cfg["target"]["name"])
            stem = stems[device.name] if len(cfgs) == 1 else f"{stems[device.name]}.{i + 1}"
            quant = cfg["draft"]["quant"]
            out.append(Configuration(
                device.name, stem, i + 1, len(cfgs), int(cfg["count"]), draft.name, quant,
                int(cfg["k"]), target.name, target.endpoint,
                _ref(draft.quants[quant].gguf, resolve, f"draft {draft.name} {quant}"),
                _ref(target.gguf, resolve, f"target {target.name}"), dict(cfg["expected"])))
    return out


def dns_label(name: str, taken: set[str]) -> str:
    """`name` as a DNS-1123 label (lowercase, digits, '-', at most 63), unique in `taken`."""
    slug = _DNS.sub("-", name.lower()).strip("-")[:50] or "target"
    if slug != name or slug in taken:
        slug = f"{slug[:50]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    taken.add(slug)
    return slug


def verifier_targets(decision: Decision, configs: list[Configuration],
                     resolve: Resolver) -> list[VerifierTarget]:
    """One entry per target some pool uses: replicas from the plan where it decides them
    (a batched verifier), else one replica, said so by `decided`."""
    spec = decision.loaded.spec
    states = {str(v["target"]): v for v in (decision.data.get("fleet") or {}).get("verifiers")
              or [] if isinstance(v, dict)}
    taken: set[str] = set()
    out: list[VerifierTarget] = []
    for t in spec.targets:
        mine = [c for c in configs if c.target == t.name]
        if not mine:
            continue
        state = states.get(t.name)
        replicas = int(state["replicas"]) if state else 1
        out.append(VerifierTarget(
            t.name, dns_label(t.name, taken), max(replicas, 1), state is not None,
            t.verifier.max_batch if t.verifier else None, sum(c.count for c in mine),
            max(c.k for c in mine), _ref(t.gguf, resolve, f"target {t.name}"),
            float(state["in_flight_per_replica"]) if state else None))
    return out


# --------------------------------------------------------------------------- shell


def env_name(key: str) -> str:
    """The environment variable a script reads for `key` (the env format's prefix)."""
    return f"{ENV_PREFIX}{key}"


def sh_value(value: str | None, variable: str, why: str, unresolved: Unresolved,
             where: str) -> str:
    """A literal, shell-quoted; or, unknown, `"${VAR:?message}"`, which stops the script
    with the message unless VAR is set (and is recorded in `unresolved`)."""
    if value is not None:
        return shlex.quote(value)
    unresolved.add(where, variable, why)
    return f'"${{{variable}:?not in the spec: set {variable} (see the manifest)}}"'


def script(header: str, argv: list[str]) -> str:
    """A POSIX shell script that execs `argv` (already quoted), one argument per line, with
    "$@" last so that the caller can add options."""
    lines = ["#!/bin/sh"]
    lines += [f"# {one_line(ln)}".rstrip() for ln in header.split("\n")]
    lines += ["set -eu", "exec " + " \\\n  ".join([*argv, '"$@"'])]
    return "\n".join(lines) + "\n"
