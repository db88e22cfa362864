"""Reports from a running fleet: their shape, their checks, and what a batch adds up to.

One report (an `Observation`) comes from one reporter (`source`: a device, or
a scraper of one server) about one configuration of one pool: the lock's
(device, target, draft, quant, K).  It may carry

* `spec_decode`: the speculative-decoding counters exactly as vLLM
  (`vllm:spec_decode_num_drafts`, `..._num_draft_tokens`,
  `..._num_accepted_tokens`) and llama.cpp's llama-server
  (`llamacpp:spec_decode_...`) expose them: cumulative since the server
  started.  The store keeps each reporter's last values and counts only what
  was added since; a counter that goes backwards is refused unless the report
  says `reset: true` (its server restarted: the values count from zero);
* `draft_tok_s` (v_d as the device measured it), `rtt_s` (the network round
  trip) and `verify_step_s` (one verification request, network excluded: the
  model's T_verify(K)).

Counts are whole numbers >= 0 (`1200.0` is read as 1200; `true`, `"1200"`,
NaN and negatives are refused) and a server never accepts more tokens than it
drafted.  The HTTP route and `configspec observe` read bodies through here, so
both refuse the same things with the same located messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from configspec_opt.errors import SpecError, SpecIssue
from configspec_opt.loader import Source, _locate, parse_data, validation_issues
from configspec_opt.spec import Int, Name, PositiveSeconds, Seconds, StrictModel, TokPerS

MAX_BATCH = 1000
"""Reports in one request or file; devices send 100 at a time (docs/drift.md)."""
MAX_COUNT = 2**62
COUNTERS = ("num_drafts", "num_draft_tokens", "num_accepted_tokens")
SHAPE = ('a report is a mapping with one key, observations: {"observations": '
         "[<observation>, ...]}")

ConfigKey = tuple[str, str, str, str, int]
"""(device, target, draft, quant, K): one row of a lock's assignment."""
SeriesKey = tuple[str, str, str, str, str, int]
"""(source, device, target, draft, quant, K): one reporter's counters of one configuration."""


def _whole(value: Any) -> Any:
    """A count: an integer, or a float with no fraction (Prometheus writes 1200.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("a count is a whole number (not a string or a boolean)")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("a count is a whole number")
        return int(value)
    return value


Count = Annotated[int, Field(ge=0, le=MAX_COUNT), BeforeValidator(_whole)]


class SpecDecodeCounters(StrictModel):
    """Cumulative speculative-decoding counters of one server, vLLM's and llama-server's names
    without their `vllm:spec_decode_` / `llamacpp:spec_decode_` prefix and `_total` suffix."""

    num_drafts: Count = Field(description="Draft rounds.")
    num_draft_tokens: Count = Field(description="Tokens drafted.")
    num_accepted_tokens: Count = Field(description="Drafted tokens the target accepted.")

    @model_validator(mode="after")
    def _accepted_within_drafted(self) -> SpecDecodeCounters:
        if self.num_accepted_tokens > self.num_draft_tokens:
            raise ValueError(f"num_accepted_tokens ({self.num_accepted_tokens}) is more than "
                             f"num_draft_tokens ({self.num_draft_tokens}): a server accepts "
                             "at most what was drafted")
        if self.num_draft_tokens and not self.num_drafts:
            raise ValueError("num_draft_tokens counted without a draft round (num_drafts 0)")
        return self

    def values(self) -> tuple[int, int, int]:
        """(drafts, draft tokens, accepted tokens)."""
        return self.num_drafts, self.num_draft_tokens, self.num_accepted_tokens


READINGS = ("draft_tok_s", "rtt_s", "verify_step_s")
UNSTATED_RULES = (
    "num_accepted_tokens is at most num_draft_tokens, and num_draft_tokens is 0 when "
    "num_drafts is",
    "a source's counters for one configuration never fall below its previous report's "
    "(unless reset: true), nor grow by more accepted than drafted tokens",
)
"""What a 422 may say of a body that JSON Schema finds valid (fields compared with each
other, or with what the store holds): stated in the body's description."""


class Observation(StrictModel):
    """What one reporter saw of one pool's configuration (module docstring)."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": [k], "properties": {k: {"not": {"type": "null"}}}}
        for k in ("spec_decode", *READINGS)]})

    source: Name = Field(description="Who reports: a device's id, or the server a scraper "
                         "reads. Counters are kept per source.")
    device: Name = Field(description="The pool (a device name of the spec).")
    target: Name
    draft: Name
    quant: Name
    k: Int = Field(ge=1, le=64, description="The draft length K it runs.")
    reset: bool = Field(False, description="The reporter's server restarted since its last "
                        "report: its counters count from zero again.")
    spec_decode: SpecDecodeCounters | None = None
    draft_tok_s: TokPerS | None = Field(None, description="v_d as measured on the device.")
    rtt_s: Seconds | None = Field(None, description="Network round trip, s.")
    verify_step_s: PositiveSeconds | None = Field(
        None, description="One verification request, network excluded (T_verify(K)), s.")

    @model_validator(mode="after")
    def _says_something(self) -> Observation:
        if self.spec_decode is None and self.draft_tok_s is None and self.rtt_s is None \
                and self.verify_step_s is None:
            raise ValueError("an observation carries at least one of spec_decode, "
                             "draft_tok_s, rtt_s, verify_step_s")
        return self

    @property
    def config(self) -> ConfigKey:
        """The lock row this report is about."""
        return (self.device, self.target, self.draft, self.quant, self.k)

    @property
    def series(self) -> SeriesKey:
        """The counters' series: this reporter and this configuration."""
        return (self.source, *self.config)


class ObservationsIn(StrictModel):
    """A batch of reports: `POST /v1/observations` and `configspec observe FILE`."""

    model_config = ConfigDict(json_schema_extra={"description": (
        "A batch of reports: `POST /v1/observations` and `configspec observe FILE` "
        "(docs/drift.md). Rules this schema cannot state (a located 422 names the place): "
        + "; ".join(UNSTATED_RULES) + ".")})

    observations: list[Observation] = Field(min_length=1, max_length=MAX_BATCH)


class ObservationsError(SpecError):
    """Reports that cannot be read or stored, located like a spec's problems.  Exit 4 (an
    input from outside the spec, like an import's); over HTTP a 422."""

    exit_code = 4

    def __str__(self) -> str:
        n = len(self.issues)
        head = f"invalid observations ({n} problem{'s' if n != 1 else ''})"
        return head + ":\n" + "\n".join("  " + i.format() for i in self.issues)


@dataclass
class Batch:
    """Validated reports and the text they came from (for located refusals later)."""

    observations: list[Observation]
    source: Source


def parse_observations(text: str, name: str) -> Batch:
    """The reports in `text` (JSON or YAML), or an ObservationsError located in it."""
    src = Source(name, text)
    try:
        data = parse_data(src)
    except SpecError as exc:
        raise ObservationsError(exc.issues) from None
    if not isinstance(data, dict) or "observations" not in data:
        extra = sorted(str(k) for k in data) if isinstance(data, dict) else []
        raise ObservationsError([SpecIssue(SHAPE, file=name, line=1, column=1,
                                           hint=f"found keys: {', '.join(extra[:10])}"
                                           if extra else None)])
    try:
        batch = ObservationsIn.model_validate(data)
    except ValidationError as exc:
        raise ObservationsError(validation_issues(exc, src, ObservationsIn)) from None
    return Batch(batch.observations, src)


Counts = tuple[int, int, int]
ZERO: Counts = (0, 0, 0)


@dataclass
class Tally:
    """What one batch adds to one configuration: counter increments and sums of the readings."""

    drafts: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0
    reports: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add_reading(self, metric: str, value: float | None) -> None:
        """Add one reading (`draft_tok_s`, `rtt_s`, `verify_step_s`); None adds nothing."""
        if value is not None:
            self.sums[metric] = self.sums.get(metric, 0.0) + value
            self.counts[metric] = self.counts.get(metric, 0) + 1


class CounterRefused(Exception):
    """A counter report that cannot follow the reporter's previous one."""

    def __init__(self, index: int, counter: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.counter = counter
        self.message = message
        self.hint = hint

    def error(self, src: Source) -> ObservationsError:
        """The refusal located in the request body or file."""
        return ObservationsError([_locate(
            src, ("observations", self.index, "spec_decode", self.counter), self.message,
            self.hint)])


def tally(observations: list[Observation], previous: dict[SeriesKey, Counts]
          ) -> tuple[dict[ConfigKey, Tally], dict[SeriesKey, Counts]]:
    """What the batch adds per configuration, and the latest counters of the series it moved.

    `previous` holds the last stored counters of the series the batch names
    (absent: a new series, counted from zero).  Reports of one series in one
    batch are taken in order.  Raises CounterRefused, naming the first report
    whose counters went backwards or added more accepted than drafted tokens.
    """
    tallies: dict[ConfigKey, Tally] = {}
    latest: dict[SeriesKey, Counts] = {}
    for i, o in enumerate(observations):
        t = tallies.setdefault(o.config, Tally())
        t.reports += 1
        for metric in READINGS:
            t.add_reading(metric, getattr(o, metric))
        if o.spec_decode is None:
            continue
        new = o.spec_decode.values()
        before = (0, 0, 0) if o.reset else latest.get(o.series, previous.get(o.series, ZERO))
        step = tuple(n - b for n, b in zip(new, before, strict=True))
        for name, d, b, n in zip(COUNTERS, step, before, new, strict=True):
            if d < 0:
                raise CounterRefused(i, name, f"{name} went backwards, from {b} to {n}, for "
                                     f"source '{o.source}'",
                                     "a reporter whose server restarted sends reset: true")
        if step[2] > step[1]:
            raise CounterRefused(i, "num_accepted_tokens",
                                 f"{step[2]} tokens accepted since the last report but only "
                                 f"{step[1]} drafted, for source '{o.source}'")
        t.drafts += step[0]
        t.draft_tokens += step[1]
        t.accepted_tokens += step[2]
        latest[o.series] = new
    return tallies, latest
