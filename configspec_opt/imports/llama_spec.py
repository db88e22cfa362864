"""llama.cpp's speculative-decoding statistics, from a log: alpha at the K it ran with.

Two formats, as llama.cpp prints them:

- the speculative examples (`llama-speculative`, `llama-speculative-simple`) end
  with a summary: `n_draft = K`, `n_predict`, `n_drafted` (draft tokens sent to
  the target), `n_accept` (of those, accepted) and `accept = x%`;
- llama-server logs, after each request that drafted,
  `draft acceptance = 0.72917 (   35 accepted /    48 generated), mean len =  3.92`
  (`draft acceptance rate = ...` in older versions).

alpha(K) is the expected accepted fraction of a round of K drafted tokens, so it
is n_accept / n_drafted when every round drafted exactly K tokens
(`llama-speculative` with one draft sequence; llama-server with
`--draft-min K --draft-max K --draft-p-min 0`).  A server log does not say K, so
it must be given.  Several summaries (or requests) in one log are summed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from configspec_opt.errors import UsageError
from configspec_opt.imports.source import ImportInputError, Input

_FIELD = re.compile(r"\b(n_draft|n_predict|n_drafted|n_accept)\s*=\s*(\d+)\s*$")
_ACCEPT = re.compile(r"\baccept\s*=\s*([0-9.]+|nan|-?inf)\s*%", re.IGNORECASE)
_SERVER = re.compile(r"draft acceptance(?: rate)?\s*=\s*[0-9.naif]+\s*\(\s*(\d+)\s+accepted\s*/"
                     r"\s*(\d+)\s+generated\s*\)", re.IGNORECASE)


@dataclass(frozen=True)
class SpecStats:
    """Drafted and accepted token counts summed over a llama.cpp log, at draft length `k`."""

    kind: str  # "example" or "server"
    k: int
    drafted: int
    accepted: int
    runs: int
    predicted: int | None

    @property
    def alpha(self) -> float:
        """Acceptance rate: accepted / drafted tokens (exact only if every round drafted `k`)."""
        return self.accepted / self.drafted

    def record(self, src: Input) -> dict[str, Any]:
        """Provenance of an imported acceptance rate: the source, the counts and the caveat."""
        rec: dict[str, Any] = {
            "tool": "configspec import llama-spec", "source": src.name, "sha256": src.sha256,
            "log": "llama-speculative summary" if self.kind == "example"
            else "llama-server acceptance lines",
            "k": self.k, "n_drafted": self.drafted, "n_accept": self.accepted,
            "runs" if self.kind == "example" else "requests": self.runs,
            "note": "alpha(K) = n_accept / n_drafted holds when every round drafted K tokens",
        }
        if self.predicted is not None:
            rec["n_predict"] = self.predicted
        return rec


def _example_blocks(text: str) -> list[dict[str, int]]:
    """One dict per summary block (a block starts at `n_draft =`)."""
    blocks: list[dict[str, int]] = []
    for line in text.splitlines():
        m = _FIELD.search(line)
        if not m:
            continue
        key, value = m.group(1), int(m.group(2))
        if key == "n_draft" or not blocks:
            blocks.append({})
        blocks[-1][key] = value
    return blocks


def parse(src: Input, k: int | None = None) -> SpecStats:
    """The statistics in a log; `k` is required for a server log and checked otherwise."""
    blocks = [b for b in _example_blocks(src.text) if "n_drafted" in b or "n_accept" in b]
    server = [(int(a), int(g)) for a, g in _SERVER.findall(src.text)]
    if blocks and server:
        raise ImportInputError(f"{src.name} holds both a speculative example's summary and "
                               "llama-server lines: import them from separate files")
    if blocks:
        incomplete = [i for i, b in enumerate(blocks)
                      if not {"n_draft", "n_drafted", "n_accept"} <= set(b)]
        if incomplete:
            raise ImportInputError(f"{src.name}: summary #{incomplete[0] + 1} lacks n_draft, "
                                   "n_drafted or n_accept (a truncated log?)")
        ks = sorted({b["n_draft"] for b in blocks})
        if len(ks) > 1:
            raise ImportInputError(f"{src.name} holds runs at several K ({ks}): alpha is "
                                   "per K, import one K per file")
        if k is not None and k != ks[0]:
            raise UsageError(f"--k {k} but the log ran with n_draft = {ks[0]}")
        drafted = sum(b["n_drafted"] for b in blocks)
        accepted = sum(b["n_accept"] for b in blocks)
        predicted = sum(b.get("n_predict", 0) for b in blocks) \
            if all("n_predict" in b for b in blocks) else None
        stats = SpecStats("example", ks[0], drafted, accepted, len(blocks), predicted)
    elif server:
        if k is None:
            raise UsageError("a llama-server log does not say K: give --k, the K it drafted "
                             "(run it with --draft-min K --draft-max K --draft-p-min 0 so "
                             "that every round drafts K tokens)")
        stats = SpecStats("server", k, sum(g for _, g in server), sum(a for a, _ in server),
                          len(server), None)
    else:
        if _ACCEPT.search(src.text):
            raise ImportInputError(f"{src.name}: an `accept = x%` line without n_drafted and "
                                   "n_accept; the importer needs the counts")
        raise ImportInputError(
            f"{src.name} is not a llama.cpp speculative log: no `n_drafted = N` / "
            "`n_accept = N` summary (llama-speculative) and no `draft acceptance = ... "
            "(A accepted / G generated)` line (llama-server)")
    if stats.drafted <= 0:
        raise ImportInputError(f"{src.name}: nothing was drafted (n_drafted = 0)")
    if stats.accepted > stats.drafted:
        raise ImportInputError(f"{src.name}: more accepted ({stats.accepted}) than drafted "
                               f"({stats.drafted})")
    return stats
