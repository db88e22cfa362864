"""Speculative-decoding counters (Prometheus text at `/metrics`) as alpha(K).

vLLM counts, per engine and served model, `vllm:spec_decode_num_drafts` (draft
rounds), `vllm:spec_decode_num_draft_tokens`, `vllm:spec_decode_num_accepted_tokens`
and `vllm:spec_decode_num_accepted_tokens_per_pos{position="i"}`: the rounds whose
drafted token i (0-based) was accepted.  Acceptance is a prefix (a rejected
token ends the round), so r_i = per_pos[i] / drafts is P(accepted >= i + 1), and
for every K up to the K the server drafts, a round of K accepts
r_0 + ... + r_{K-1} tokens on average: alpha(K) = (r_0 + ... + r_{K-1}) / K, and
the fraction of rounds that accept all K is r_{K-1} (`full_accept`).  Counters
exported by prometheus_client carry a `_total` suffix; both spellings are read.

llama.cpp's llama-server (`--metrics`) exports the same four counters under
`llamacpp:` instead of `vllm:`, with the same meaning (checked on its real output:
the per-position counts sum to the accepted tokens); both prefixes are read.

Counters are cumulative since the server started; `--baseline` (an earlier
scrape) subtracts the traffic before it.

A counter no server can report is refused, with its metric and line: a value that
is not a finite count >= 0 (NaN, +Inf, negative, 1e400), a series written twice
(two scrapes pasted together), a position accepted in more rounds than were
drafted, more accepted tokens than drafted ones.  Nothing is clamped: alpha comes
from the counts as they are or not at all.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from configspec_opt.errors import UsageError
from configspec_opt.imports.source import ImportInputError, Input

PREFIXES = ("vllm:", "llamacpp:")
DRAFTS = "spec_decode_num_drafts"
DRAFT_TOKENS = "spec_decode_num_draft_tokens"
ACCEPTED = "spec_decode_num_accepted_tokens"
PER_POS = "spec_decode_num_accepted_tokens_per_pos"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_COUNT = re.compile(r"\+?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
MAX_LISTED = 8  # positions or lines named in one message


@dataclass(frozen=True)
class Sample:
    """One sample line of a Prometheus exposition: metric name, labels, value."""

    name: str
    labels: dict[str, str]
    value: float
    line: int = 0
    text: str = ""  # the value as written


def _labels(text: str, line_no: int, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise ImportInputError(f"{where}:{line_no}: unreadable labels {{{text[:80]}}}")
        value = m.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        out[m.group(1)] = value
        pos = m.end()
    return out


def parse_exposition(src: Input) -> list[Sample]:
    """Samples of Prometheus's text exposition format (comments and types skipped)."""
    samples: list[Sample] = []
    for no, line in enumerate(src.text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            raise ImportInputError(
                f"{src.name}:{no}: not Prometheus text exposition format "
                f"({line[:80]!r}); give vLLM's /metrics URL or a saved copy of it")
        try:
            value = float(m.group(3))
        except ValueError:
            raise ImportInputError(f"{src.name}:{no}: value {m.group(3)[:40]!r} is not a "
                                   "number") from None
        samples.append(Sample(m.group(1), _labels(m.group(2) or "", no, src.name), value,
                              no, m.group(3)))
    if not samples:
        raise ImportInputError(f"{src.name}: no metrics in it (empty, or only comments)")
    return samples


def _split(name: str) -> tuple[str, str] | None:
    """(prefix, counter) of a speculative-decoding sample, `_total` dropped; None for
    `_created` samples and every other metric."""
    prefix = next((p for p in PREFIXES if name.startswith(p + "spec_decode_")), None)
    if prefix is None or name.endswith("_created"):
        return None
    base = name[len(prefix):]
    return prefix, base[: -len("_total")] if base.endswith("_total") else base


@dataclass
class Counters:
    """Summed over engines for one served model."""

    server: str  # the metric prefix: "vllm:" or "llamacpp:"
    model_name: str | None
    drafts: float
    draft_tokens: float | None
    accepted: float | None
    per_position: list[float] = field(default_factory=list)
    lines: dict[str, list[int]] = field(default_factory=dict)  # counter -> its sample lines
    names: dict[str, str] = field(default_factory=dict)  # counter -> its name in the file

    def check(self, where: str) -> None:
        """Refuse counts no server reports: more accepted than drafted, per position or in
        total.  `where` names the input(s) the counts came from."""
        def at(key: str) -> str:
            return where + _lines(self.lines.get(key, []))

        def name(key: str) -> str:
            return self.names.get(key, self.server + key)

        for i, v in enumerate(self.per_position):
            if v > self.drafts:
                raise ImportInputError(
                    f"{at(f'{PER_POS}:{i}')}: {name(PER_POS)}{{position=\"{i}\"}} counts "
                    f"{_num(v)} accepted tokens at position {i} in {_num(self.drafts)} draft "
                    f"rounds ({name(DRAFTS)}, {at(DRAFTS)}): a position is accepted at "
                    "most once per round")
        accepted = self.accepted if self.accepted is not None else sum(self.per_position)
        key = ACCEPTED if self.accepted is not None else PER_POS
        if self.draft_tokens is not None and accepted > self.draft_tokens:
            raise ImportInputError(
                f"{at(key)}: {name(key)} counts {_num(accepted)} accepted tokens, more than "
                f"the {_num(self.draft_tokens)} drafted ({name(DRAFT_TOKENS)}, "
                f"{at(DRAFT_TOKENS)})")

    def minus(self, before: Counters) -> Counters:
        """The counts since `before` (a baseline scrape of the same server), per position too.

        Raises ImportInputError when the two scrapes cannot be of the same server.
        """
        def sub(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a - b

        if len(before.per_position) > len(self.per_position):
            raise ImportInputError("the baseline has more draft positions than the scrape: "
                                   "they come from different servers")
        per = [a - (before.per_position[i] if i < len(before.per_position) else 0.0)
               for i, a in enumerate(self.per_position)]
        if before.server != self.server:
            raise ImportInputError(f"the baseline counts {before.server} metrics, the scrape "
                                   f"{self.server}: they come from different servers")
        out = Counters(self.server, self.model_name, self.drafts - before.drafts,
                       sub(self.draft_tokens, before.draft_tokens),
                       sub(self.accepted, before.accepted), per)
        if out.drafts < 0 or any(v < 0 for v in per) or \
                any(v is not None and v < 0 for v in (out.draft_tokens, out.accepted)):
            raise ImportInputError("a counter fell between the baseline and the scrape (the "
                                   "server restarted?): scrape again without --baseline")
        return out


def counters(samples: Sequence[Sample], src: Input, model_name: str | None = None) -> Counters:
    """The speculative-decoding counters of one served model."""
    spec = [(s, parts) for s in samples if (parts := _split(s.name)) is not None]
    if not spec:
        raise ImportInputError(
            f"{src.name} has no speculative-decoding counters (vllm:{DRAFTS}_total, "
            f"vllm:{PER_POS}_total{{position=...}}, or llama-server's llamacpp:...): is "
            "speculative decoding on, and is this the server's /metrics?")
    servers = sorted({parts[0] for _, parts in spec})
    if len(servers) > 1:
        raise ImportInputError(f"{src.name} mixes {' and '.join(servers)} counters: scrape "
                               "one server per file")
    models = sorted({s.labels.get("model_name", "") for s, _ in spec})
    if model_name is not None:
        if model_name not in models:
            raise UsageError(f"--model-name {model_name!r}: the counters are for "
                             f"{', '.join(repr(m) for m in models)}")
        chosen = model_name
    elif len(models) > 1:
        raise UsageError(f"{src.name} counts several models ({', '.join(map(repr, models))}): "
                         "choose one with --model-name")
    else:
        chosen = models[0]
    mine = [(s, parts[1]) for s, parts in spec if s.labels.get("model_name", "") == chosen]
    server = servers[0]
    seen: dict[tuple[str, frozenset[tuple[str, str]]], int] = {}
    # per engine (the labels but position): counter (`PER_POS:i` per position) -> value, lines
    values: dict[frozenset[tuple[str, str]], dict[str, float]] = {}
    names = {base: s.name for s, base in reversed(mine)}
    lines: dict[frozenset[tuple[str, str]], dict[str, list[int]]] = {}
    for s, base in mine:
        key = (base, frozenset(s.labels.items()))
        if key in seen:
            raise ImportInputError(
                f"{src.name}:{s.line}: {s.name} with these labels is also on line "
                f"{seen[key]}: one scrape per file (two scrapes pasted together?)")
        seen[key] = s.line
        if not (math.isfinite(s.value) and s.value >= 0 and _COUNT.fullmatch(s.text)):
            shown = s.text if len(s.text) <= 24 else f"{s.text[:12]}...{s.text[-8:]}"
            raise ImportInputError(f"{src.name}:{s.line}: {s.name} is {shown}: a counter is "
                                   "a finite count >= 0")
        if base == PER_POS:
            pos = s.labels.get("position", "")
            if not (pos.isascii() and pos.isdigit() and len(pos) <= 6):
                raise ImportInputError(f"{src.name}:{s.line}: {s.name} without a numeric "
                                       "position label")
            base = f"{PER_POS}:{int(pos)}"
        engine = frozenset((k, v) for k, v in s.labels.items() if k != "position")
        mine_v = values.setdefault(engine, {})
        mine_v[base] = mine_v.get(base, 0.0) + s.value
        lines.setdefault(engine, {}).setdefault(base, []).append(s.line)
    if not any(DRAFTS in v for v in values.values()):
        raise ImportInputError(f"{src.name} has no {server}{DRAFTS}_total counter")
    positions = sorted({int(k.split(":")[1]) for v in values.values() for k in v
                        if k.startswith(PER_POS + ":")})
    if not positions:
        raise ImportInputError(f"{src.name} has no {server}{PER_POS}_total counters (older "
                               "servers did not count acceptance per position)")
    if positions != list(range(len(positions))):
        missing = sorted(set(range(positions[-1] + 1)) - set(positions))
        raise ImportInputError(f"{src.name}: positions are not 0..{positions[-1]}: "
                               f"{_listed(missing)} missing")

    def counted(v: Mapping[str, float], at: dict[str, list[int]]) -> Counters:
        return Counters(server, chosen or None, v.get(DRAFTS, 0.0), v.get(DRAFT_TOKENS),
                        v.get(ACCEPTED),
                        [v.get(f"{PER_POS}:{i}", 0.0) for i in range(len(positions))], at,
                        names)

    every: dict[str, float] = {}
    every_line: dict[str, list[int]] = {}
    for engine, v in values.items():
        if DRAFTS in v:
            counted(v, lines[engine]).check(src.name)
        for k, x in v.items():
            every[k] = every.get(k, 0.0) + x
            every_line.setdefault(k, []).extend(lines[engine][k])
    total = counted(every, every_line)
    total.check(src.name)
    return total


def _num(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.6g}"


def _listed(values: Sequence[int]) -> str:
    shown = ", ".join(map(str, values[:MAX_LISTED]))
    return shown + (f", ... ({len(values):,} in all)" if len(values) > MAX_LISTED else "")


def _lines(lines: Sequence[int]) -> str:
    return ":" + _listed(sorted(lines)).replace(", ", ",") if lines else ""


@dataclass(frozen=True)
class Acceptance:
    """alpha(K) and full_accept(K) keyed by draft length K, and their provenance record."""

    alpha: dict[int, float]
    full_accept: dict[int, float]
    record: dict[str, Any]


def acceptance(c: Counters, src: Input, baseline: Input | None = None,
               digits: int = 4) -> Acceptance:
    """alpha(K) and full_accept(K) for K = 1 .. positions, and what provenance records."""
    if not c.drafts > 0:
        raise ImportInputError(f"{src.name}: no draft rounds counted yet"
                               + (" since the baseline" if baseline else "")
                               + ": send requests through the server first")
    c.check(src.name if baseline is None else f"{src.name} minus {baseline.name}")
    k_max = len(c.per_position)
    rates = [v / c.drafts for v in c.per_position]
    sums = list(itertools.accumulate(rates))
    alpha = {k: round(sums[k - 1] / k, digits) for k in range(1, k_max + 1)}
    full = {k: round(rates[k - 1], digits) for k in range(1, k_max + 1)}
    record: dict[str, Any] = {
        "tool": "configspec import vllm-metrics", "source": src.name, "sha256": src.sha256,
        "server": c.server.rstrip(":"), "model_name": c.model_name,
        "draft_rounds": int(c.drafts) if float(c.drafts).is_integer() else c.drafts,
        "k": k_max,
        "accepted_per_position": [round(r, 6) for r in rates],
    }
    if c.accepted is not None:
        record["mean_acceptance_length"] = round(1.0 + c.accepted / c.drafts, 6)
    if baseline is not None:
        record["baseline"] = {"source": baseline.name, "sha256": baseline.sha256}
    if c.draft_tokens is not None:
        short = 1.0 - c.draft_tokens / (c.drafts * k_max)
        if short > 1e-9 and not math.isclose(short, 0.0, abs_tol=1e-9):
            record["note"] = (f"{short:.1%} of the K={k_max} draft positions were not proposed "
                              "(rounds shorter than K): alpha is a lower bound")
    return Acceptance(alpha, full, record)
