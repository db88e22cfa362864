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

A log mixes these lines with everything else llama.cpp prints, so other lines are
skipped; a line that *is* one of these statistics is never skipped: if its numbers
are impossible (negative, not whole, absurdly long, more accepted than drafted, a
rate that disagrees with its counts) the log is refused with that line's number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from configspec_opt.errors import UsageError
from configspec_opt.imports.source import ImportInputError, Input

_FIELD = re.compile(r"\b(n_draft|n_predict|n_drafted|n_accept)\s*=\s*(\S+)\s*$")
_ACCEPT = re.compile(r"\baccept\s*=\s*([0-9.]+|nan|-?inf)\s*%", re.IGNORECASE)
_SERVER = re.compile(r"draft acceptance(?: rate)?\s*=\s*(\S+)\s*\(\s*(\S+)\s+accepted\s*/"
                     r"\s*(\S+)\s+generated\s*\)", re.IGNORECASE)
_COUNT = re.compile(r"\d{1,18}")  # llama.cpp's counters are int32/int64


@dataclass(frozen=True)
class SpecStats:
    """Drafted and accepted token counts summed over a llama.cpp log, at draft length `k`."""

    kind: str  # "example" or "server"
    k: int
    drafted: int
    accepted: int
    runs: int
    predicted: int | None
    k_line: int | None = None  # the `n_draft = K` line K was read from

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


def _count(src: Input, no: int, what: str, text: str) -> int:
    if not _COUNT.fullmatch(text):
        shown = text if len(text) <= 24 else f"{text[:12]}...{text[-8:]}"
        raise ImportInputError(f"{src.name}:{no}: {what} = {shown}: not a count (a whole "
                               "number >= 0 of at most 18 digits)")
    return int(text)


def _example_blocks(src: Input) -> list[dict[str, tuple[str, int]]]:
    """One dict per summary block (a block starts at `n_draft =`): field -> (value, line)."""
    blocks: list[dict[str, tuple[str, int]]] = []
    for no, line in enumerate(src.text.splitlines(), 1):
        m = _FIELD.search(line)
        if not m:
            continue
        key = m.group(1)
        if key == "n_draft" or not blocks:
            blocks.append({})
        blocks[-1][key] = (m.group(2), no)
    return blocks


def _summaries(src: Input) -> list[dict[str, tuple[int, int]]]:
    """The speculative summaries (blocks with n_drafted or n_accept), their counts checked.

    Blocks without them are other text that happens to end in `n_predict = -1`."""
    out = []
    for block in _example_blocks(src):
        if "n_drafted" not in block and "n_accept" not in block:
            continue
        counts = {key: (_count(src, no, key, text), no) for key, (text, no) in block.items()}
        if "n_draft" in counts and counts["n_draft"][0] < 1:
            raise ImportInputError(f"{src.name}:{counts['n_draft'][1]}: n_draft = 0: a "
                                   "speculative run drafts at least one token per round")
        if "n_drafted" in counts and "n_accept" in counts \
                and counts["n_accept"][0] > counts["n_drafted"][0]:
            raise ImportInputError(
                f"{src.name}:{counts['n_accept'][1]}: n_accept = {counts['n_accept'][0]} is "
                f"more than n_drafted = {counts['n_drafted'][0]} (line "
                f"{counts['n_drafted'][1]}): a run accepts at most what it drafted")
        out.append(counts)
    return out


def _server_lines(src: Input) -> list[tuple[int, int]]:
    """(accepted, generated) of every llama-server acceptance line, each checked."""
    out = []
    for no, line in enumerate(src.text.splitlines(), 1):
        m = _SERVER.search(line)
        if m is None:
            continue
        rate, acc, gen = m.groups()
        a, g = _count(src, no, "accepted", acc), _count(src, no, "generated", gen)
        if a > g:
            raise ImportInputError(f"{src.name}:{no}: {a} accepted of {g} generated: a "
                                   "request accepts at most the tokens drafted for it")
        try:
            shown = float(rate)
        except ValueError:
            shown = math.nan
        if g and not (math.isfinite(shown) and abs(shown - a / g) <= 1e-4):
            raise ImportInputError(f"{src.name}:{no}: draft acceptance = {rate[:24]} but "
                                   f"{a} accepted / {g} generated is {a / g:.5f}")
        out.append((a, g))
    return out


def parse(src: Input, k: int | None = None) -> SpecStats:
    """The statistics in a log; `k` is required for a server log and checked otherwise."""
    blocks = _summaries(src)
    server = _server_lines(src)
    if blocks and server:
        raise ImportInputError(f"{src.name} holds both a speculative example's summary and "
                               "llama-server lines: import them from separate files")
    if blocks:
        incomplete = [i for i, b in enumerate(blocks)
                      if not {"n_draft", "n_drafted", "n_accept"} <= set(b)]
        if incomplete:
            raise ImportInputError(f"{src.name}: summary #{incomplete[0] + 1} lacks n_draft, "
                                   "n_drafted or n_accept (a truncated log?)")
        ks = sorted({b["n_draft"][0] for b in blocks})
        if len(ks) > 1:
            raise ImportInputError(f"{src.name} holds runs at several K ({ks}): alpha is "
                                   "per K, import one K per file")
        if k is not None and k != ks[0]:
            raise UsageError(f"--k {k} but the log ran with n_draft = {ks[0]}")
        drafted = sum(b["n_drafted"][0] for b in blocks)
        accepted = sum(b["n_accept"][0] for b in blocks)
        predicted = sum(b["n_predict"][0] for b in blocks) \
            if all("n_predict" in b for b in blocks) else None
        stats = SpecStats("example", ks[0], drafted, accepted, len(blocks), predicted,
                          blocks[0]["n_draft"][1])
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
