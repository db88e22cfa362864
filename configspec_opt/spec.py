"""The deployment spec: what a team declares and commits (schema only, no I/O).

Field names are a public contract: specs in users' repositories must keep
validating, so fields may be added but never renamed.  Every model forbids
unknown keys, because a misspelt key that is silently ignored is a wrong
deployment that nobody notices.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Strict,
    Tag,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from configspec_opt.safe_text import NOT_IN_NAMES_PATTERN, one_line_problem

# Every number is strict (a bool or a string is not a number; an int is a float) and
# bounded by what it can physically mean: a value outside these ranges is a typo or
# an attack, and one inside them keeps every metric a finite float (round times,
# goodput, $/hour of 10 million devices), so no division or overflow can reach a
# result.  The bounds are in the JSON Schema (minimum/maximum), for editors.
Int = Annotated[int, Strict()]
Fraction = Annotated[float, Strict(), Field(ge=0, le=1)]
Seconds = Annotated[float, Strict(), Field(ge=0, le=86_400)]
PositiveSeconds = Annotated[float, Strict(), Field(ge=1e-6, le=86_400)]
TokPerS = Annotated[float, Strict(), Field(ge=1e-3, le=1e7)]
Watts = Annotated[float, Strict(), Field(ge=1e-3, le=1e6)]
Gigabytes = Annotated[float, Strict(), Field(ge=1e-6, le=1e6)]
UsdPerMtok = Annotated[float, Strict(), Field(ge=1e-6, le=1e6)]
UsdPerHour = Annotated[float, Strict(), Field(ge=1e-6, le=1e6)]
Weight = Annotated[float, Strict(), Field(ge=1e-6, le=1e6)]
# Requirements (SLOs, fleet bounds) range wider than any one device can reach.
GoodputBound = Annotated[float, Strict(), Field(ge=0, le=1e16)]
EnergyBound = Annotated[float, Strict(), Field(ge=1e-12, le=1e12)]
EfficiencyBound = Annotated[float, Strict(), Field(ge=1e-6, le=1e15)]
FleetWatts = Annotated[float, Strict(), Field(ge=1e-3, le=1e13)]
FleetUsdPerHour = Annotated[float, Strict(), Field(ge=1e-9, le=1e18)]


def _one_line(value: str) -> str:
    if value.isascii() and value.isprintable():  # the common case without a regex
        return value
    problem = one_line_problem(value)
    if problem is not None:
        raise PydanticCustomError("control_character", problem)
    return value


@dataclass(frozen=True)
class _OneLineSchema:
    """The JSON Schema side of `OneLine`, for editors: no match of the refused characters.

    Said with `not` rather than as a `pattern` of the whole string, because pydantic
    turns a mapping key's `pattern` into `patternProperties`, under which a key that
    does not match is still allowed, with any value.
    """

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(core_schema)
        json_schema["not"] = {"pattern": NOT_IN_NAMES_PATTERN}
        return json_schema


# The one rule for names and the identifiers beside them (platform, file paths,
# endpoints): no control character, no line break (configspec_opt.safe_text).
OneLine = Annotated[str, AfterValidator(_one_line), _OneLineSchema()]
# The lengths before the validator, where pydantic-core checks them (not in Python):
# 490,000 names in a 10,000-pool fleet.
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_line),
                 _OneLineSchema()]
# Shares of requests per prompt class (code, chat, ...); normalised to sum to 1.
Mix = Annotated[dict[Name, Weight], Field(min_length=1, max_length=32)]


def _not_a_bool(value: Any) -> Any:
    """Mapping keys stay lax (JSON spells K as "2") but `true` is not the integer 1."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer here")
    return value


def int_range_pattern(lo: int, hi: int) -> str:
    """A regular expression matching the decimal spellings of lo..hi (0 <= lo <= hi).

    Plain digits, no sign, no leading zero: the way YAML and JSON write such a key.
    """
    if not 0 <= lo <= hi:
        raise ValueError(f"no integer range {lo}..{hi}")
    parts: list[str] = []
    for width in range(len(str(lo)), len(str(hi)) + 1):
        first = max(lo, 10 ** (width - 1) if width > 1 else 0)
        last = min(hi, 10**width - 1)
        parts += _same_width(str(first), str(last))
    return "^(?:" + "|".join(parts) + ")$"


def _same_width(a: str, b: str) -> list[str]:
    """Alternatives matching the digit strings a..b, both of the same width."""
    if a == b:
        return [a]
    if len(a) == 1:
        return [f"[{a}-{b}]"]
    if a[0] == b[0]:
        return [a[0] + tail for tail in _same_width(a[1:], b[1:])]
    n = len(a) - 1
    low: list[str] = []
    high: list[str] = []
    lo_digit, hi_digit = int(a[0]), int(b[0])
    if a[1:] != "0" * n:
        low = [a[0] + tail for tail in _same_width(a[1:], "9" * n)]
        lo_digit += 1
    if b[1:] != "9" * n:
        high = [b[0] + tail for tail in _same_width("0" * n, b[1:])]
        hi_digit -= 1
    middle = []
    if lo_digit <= hi_digit:
        lead = str(lo_digit) if lo_digit == hi_digit else f"[{lo_digit}-{hi_digit}]"
        middle = [lead + ("[0-9]" if n == 1 else f"[0-9]{{{n}}}")]
    return low + middle + high


@dataclass(frozen=True)
class IntKeys:
    """JSON Schema of a mapping keyed by integers (K, batch sizes): which keys it takes.

    In JSON, and in the JSON an editor makes of YAML, every key is a string, and
    pydantic's schema of ``dict[int, ...]`` leaves the keys free.  Then
    ``{per_token: 0.8}`` passes for an acceptance table, so it matches both
    acceptance forms, and ``{two: 0.7}`` passes where the loader refuses it.
    Annotate such a dict with ``IntKeys()``: its keys must spell an integer within
    the key type's bounds.
    """

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(core_schema)
        keys: Any = core_schema.get("keys_schema", {})
        if keys.get("type") == "function-before":  # _not_a_bool around the int
            keys = keys["schema"]
        if core_schema["type"] != "dict" or keys.get("type") != "int":
            raise TypeError(f"IntKeys() annotates a dict with int keys, not {core_schema}")
        lo = keys["ge"] if "ge" in keys else keys["gt"] + 1
        hi = keys["le"] if "le" in keys else keys["lt"] - 1
        json_schema["propertyNames"] = {"pattern": int_range_pattern(lo, hi)}
        return json_schema


def _exactly_one_of(*keys: str) -> dict[str, Any]:
    """JSON Schema of a model validator that wants exactly one of `keys` not null."""
    return {"oneOf": [{"required": [k], "properties": {k: {"not": {"type": "null"}}}}
                      for k in keys]}


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys and NaN/inf are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)


ReplicaCount = Annotated[int, Strict(), Field(ge=0, le=100_000)]
BatchSize = Annotated[int, Strict(), Field(ge=1, le=4096)]
SpecK = Annotated[int, Strict(), Field(ge=1, le=64)]
# The same ranges as mapping keys: lax, as JSON and YAML write keys, but never a bool.
BatchKey = Annotated[int, Field(ge=1, le=4096), BeforeValidator(_not_a_bool)]
KKey = Annotated[int, Field(ge=1, le=64), BeforeValidator(_not_a_bool)]


class Replicas(StrictModel):
    """How many verifier replicas the optimiser may run (a decision, between these bounds)."""

    min: ReplicaCount = 1
    max: ReplicaCount

    @model_validator(mode="after")
    def _ordered(self) -> Replicas:
        if self.max < self.min:
            raise ValueError(f"replicas.max ({self.max}) is below replicas.min ({self.min})")
        if self.max < 1:
            raise ValueError("replicas.max must be at least 1")
        return self


class Verifier(StrictModel):
    """A batched verifier we run ourselves: latency depends on the load the fleet creates.

    ``latency_s[b][K]`` is the measured time of one verification request of K
    drafted tokens while b requests are in flight at one replica
    (`configspec profile-verifier` measures it).  Every row lists the same K.
    """

    replicas: Replicas
    price_usd_per_replica_hour: UsdPerHour = Field(
        description="$ per replica-hour; a replica-priced target is billed per replica, "
        "not per token.")
    max_batch: BatchSize = Field(
        description="Verification requests one replica serves concurrently.")
    latency_s: Annotated[dict[BatchKey, Annotated[dict[KKey, PositiveSeconds], IntKeys()]],
                         IntKeys()] = Field(
        min_length=1, description="Measured T_verify(b, K), seconds: "
        "b concurrent requests -> K drafted tokens -> latency.")
    provenance: dict[str, Any] | None = Field(
        None, description="Where the table comes from (written by profile-verifier).")

    @model_validator(mode="after")
    def _same_k_in_every_row(self) -> Verifier:
        rows = sorted(self.latency_s.items())
        first_b, first = rows[0]
        for b, row in rows[1:]:
            if set(row) != set(first):
                raise ValueError(
                    f"latency_s row b={b} lists K {sorted(row)} but row b={first_b} "
                    f"lists K {sorted(first)}: every row must list the same K")
        if not first:
            raise ValueError(f"latency_s row b={first_b} is empty")
        for (b0, r0), (b1, r1) in itertools.pairwise(rows):
            for k in sorted(r0):
                if r1[k] < r0[k]:
                    raise ValueError(
                        f"latency_s at K={k} falls from {r0[k]:g} s (b={b0}) to {r1[k]:g} s "
                        f"(b={b1}): a request is never faster under more load; write the "
                        "running maximum (profile-verifier does)")
        return self


class Target(StrictModel):
    """A verifier model in the cloud."""

    name: Name
    family: Name
    price_usd_per_mtok: UsdPerMtok = Field(
        description="Verifier price, $ per 1M tokens it processes.")
    verify_latency_s: Seconds = Field(
        description="T_verify: latency of one verification request.")
    verify_latency_per_token_s: Seconds = Field(
        0.0,
        description="Optional growth of T_verify with K: "
        "T_verify(K) = verify_latency_s + K * this.",
    )
    capacity_tok_s: Annotated[float, Strict(), Field(ge=1e-3, le=1e12)] | None = Field(
        None, description="Verifier throughput (tokens/s) shared by the whole fleet."
    )
    gguf: OneLine | None = Field(
        None, description="Local GGUF of the target, for the profiler.")
    endpoint: OneLine | None = Field(
        None, description="OpenAI-compatible completions endpoint of the target, for the profiler."
    )
    verifier: Verifier | None = Field(
        None, description="A self-hosted, batched verifier: replicas are decisions, latency "
        "comes from the measured table, cost is per replica-hour.")
    prefill_latency_s: Seconds = Field(
        0.0, description="Extra time of a request's first verification: the prompt's "
        "prefill. Only time to first token reads it (docs/tails.md).")

    def verify_latency(self, k: int) -> float:
        """T_verify(K) in seconds: the fixed latency plus K times the per-token growth.

        The latency without fleet load; a batched verifier's (`verifier`) comes from
        its measured table instead.
        """
        return self.verify_latency_s + k * self.verify_latency_per_token_s


class Quant(StrictModel):
    """One quantisation of a draft model: a file to ship."""

    size_gb: Gigabytes
    gguf: OneLine | None = Field(None, description="Path of the GGUF file, for the profiler.")


class Draft(StrictModel):
    """A small draft model that runs on the devices, with the quantisations it ships in.

    It pairs only with targets of its own family.
    """

    name: Name
    family: Name
    quants: dict[Name, Quant] = Field(min_length=1)


class DeviceSLO(StrictModel):
    """Per-device service levels; every device of a pool must meet them."""

    min_goodput_tok_s: GoodputBound | None = None
    max_energy_j_per_tok: EnergyBound | None = None
    min_cost_efficiency_tok_per_usd: EfficiencyBound | None = None
    max_power_w: Watts | None = None
    max_round_time_s: PositiveSeconds | None = None
    # Percentiles over a device's requests (the tail model, docs/tails.md): TPOT is
    # (time of the last token - time of the first) / (tokens - 1), TTFT the first's.
    max_tpot_p50_s: PositiveSeconds | None = None
    max_tpot_p95_s: PositiveSeconds | None = None
    max_tpot_p99_s: PositiveSeconds | None = None
    max_ttft_p50_s: PositiveSeconds | None = None
    max_ttft_p95_s: PositiveSeconds | None = None
    max_ttft_p99_s: PositiveSeconds | None = None


class Device(StrictModel):
    """A pool of identical edge devices."""

    name: Name
    platform: OneLine | None = None
    count: Int = Field(ge=1, le=10_000_000)
    memory_gb: Gigabytes
    rtt_s: Seconds = Field(0.0, description="Network round trip added to every round.")
    rtt_jitter_s: Seconds = Field(
        0.0, description="Standard deviation of one round's network round trip (rtt_s is "
        "its mean); only the tail model reads it (docs/tails.md).")
    power_w: Watts | None = Field(
        None, description="Declared drafting power, used where a profile has none."
    )
    round_overhead_s: Seconds = Field(
        0.0, description="Measured per-round overhead outside drafting and verification "
        "(client code, tokenisation); added to every round. `configspec trial` reports it.")
    slo: DeviceSLO | None = Field(
        None, description="Overrides constraints.per_device for this pool.")
    mix: Mix | None = Field(
        None, description="This pool's traffic mix over prompt classes (shares of requests); "
        "overrides workload.mix.")


class PerTokenAcceptance(StrictModel):
    """Compact acceptance: drafted token i is accepted with probability a**i.

    With a per-position acceptance probability ``a`` (independent positions,
    the model of Leviathan et al.), a round of K drafted tokens accepts
    a + a^2 + ... + a^K tokens on average, so alpha(K) = a(1 - a^K) / (K(1 - a)).
    """

    per_token: Fraction

    def alpha(self, k: int) -> float:
        """alpha(K), the expected fraction of K drafted tokens accepted; 1 when per_token is 1."""
        a = self.per_token
        if a >= 1.0:
            return 1.0
        return a * (1.0 - a**k) / (k * (1.0 - a))


AcceptanceTable = Annotated[dict[KKey, Fraction], IntKeys()]


def _acceptance_kind(value: Any) -> str:
    if isinstance(value, dict) and "per_token" in value:
        return "per_token"
    if isinstance(value, PerTokenAcceptance):
        return "per_token"
    return "table"


Acceptance = Annotated[
    Annotated[AcceptanceTable, Tag("table")] | Annotated[PerTokenAcceptance, Tag("per_token")],
    Discriminator(_acceptance_kind),
]


def alpha_at(acceptance: AcceptanceTable | PerTokenAcceptance, k: int) -> float | None:
    """alpha(K) from either acceptance form; None where a table lacks K."""
    if isinstance(acceptance, PerTokenAcceptance):
        return acceptance.alpha(k)
    return acceptance.get(k)


class Profile(StrictModel):
    """What was measured (or declared) for one (device, draft, quant)."""

    device: Name
    draft: Name
    quant: Name
    draft_tok_s: TokPerS = Field(description="v_d: drafting throughput, tokens/s.")
    power_w: Watts | None = Field(None, description="P: device power while drafting, W.")
    idle_power_w: Watts | None = None
    acceptance: dict[Name, Acceptance] = Field(
        default_factory=dict, description="alpha(K) per target name."
    )
    acceptance_by_class: dict[Name, dict[Name, Acceptance]] = Field(
        default_factory=dict, description="alpha(K) per prompt class (code, chat, ...) and "
        "target, as `configspec profile --classes` measures it; a traffic mix "
        "(workload.mix, devices[].mix) reads it, the plain `acceptance` stands in for a "
        "class it lacks.")
    full_accept: dict[Name, AcceptanceTable] = Field(
        default_factory=dict,
        description="Per target, the fraction of rounds of K that accepted all K drafted "
        "tokens. The draft then has one more token to process before it can draft again, "
        "so a round drafts for (K + f_K)/v_d. Measured by `configspec profile`; without it "
        "drafting takes K/v_d, as in the paper's Eq. 1.")
    draft_time_cv: Annotated[float, Strict(), Field(ge=0, le=10)] = Field(
        0.0, description="Relative standard deviation of one round's drafting time (sd / "
        "mean of K/v_d), where measured; only the tail model reads it (docs/tails.md).")
    provenance: dict[str, Any] | None = Field(
        None, description="Where the numbers come from (written by the profiler)."
    )

    def class_alpha(self, cls: str, target: str, k: int) -> float | None:
        """alpha(K) of one prompt class: its own table, else the plain acceptance (None
        where neither has K)."""
        own = self.acceptance_by_class.get(cls, {}).get(target)
        a = alpha_at(own, k) if own is not None else None
        if a is None and target in self.acceptance:
            a = alpha_at(self.acceptance[target], k)
        return a


class KRange(StrictModel):
    """The draft lengths K the search considers, min and max included (1 to 64)."""

    min: Int = Field(ge=1, le=64)
    max: Int = Field(ge=1, le=64)

    @model_validator(mode="after")
    def _ordered(self) -> KRange:
        if self.max < self.min:
            raise ValueError(f"k.max ({self.max}) is below k.min ({self.min})")
        return self

    def values(self) -> range:
        """Every K of the range, ascending."""
        return range(self.min, self.max + 1)


class Search(StrictModel):
    """What the solver may choose beyond the pool assignment: the range of draft length K."""

    k: KRange = Field(default_factory=lambda: KRange(min=2, max=10))


class Metric(str, Enum):
    """Fleet-level metrics an objective or a Pareto axis can name."""

    goodput = "goodput"
    cost_efficiency = "cost_efficiency"
    energy = "energy"
    min_goodput = "min_goodput"
    cost = "cost"
    power = "power"
    verifier_load = "verifier_load"
    round_time = "round_time"


class Term(StrictModel):
    """One part of a weighted or lexicographic objective."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_of("maximize", "minimize"))

    maximize: Metric | None = None
    minimize: Metric | None = None
    weight: Weight = Field(1.0, description="Weighted objectives: the term's weight.")
    tolerance: Fraction = Field(
        0.0,
        description="Lexicographic objectives: relative loss of this term allowed "
        "while optimising the later ones.",
    )

    @model_validator(mode="after")
    def _one_direction(self) -> Term:
        if (self.maximize is None) == (self.minimize is None):
            raise ValueError("give exactly one of 'maximize' or 'minimize'")
        return self

    @property
    def metric(self) -> Metric:
        """The metric the term optimises, whichever direction it was given in."""
        m = self.maximize if self.maximize is not None else self.minimize
        assert m is not None
        return m

    @property
    def sense(self) -> Literal["maximize", "minimize"]:
        """The term's direction, so callers need not test which of the two keys is set."""
        return "maximize" if self.maximize is not None else "minimize"


class Objective(StrictModel):
    """What the fleet optimises: one metric, a weighted sum, or a lexicographic order.

    Give exactly one of the four keys; the default maximises fleet goodput.
    """

    model_config = ConfigDict(json_schema_extra=_exactly_one_of(
        "maximize", "minimize", "weighted", "lexicographic"))

    maximize: Metric | None = None
    minimize: Metric | None = None
    weighted: list[Term] | None = Field(None, min_length=1)
    lexicographic: list[Term] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Objective:
        given = [
            k
            for k in ("maximize", "minimize", "weighted", "lexicographic")
            if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of maximize, minimize, weighted or lexicographic"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def terms(self) -> list[Term]:
        """The objective as an ordered list of terms (one for a plain objective)."""
        if self.weighted is not None:
            return list(self.weighted)
        if self.lexicographic is not None:
            return list(self.lexicographic)
        return [Term(maximize=self.maximize, minimize=self.minimize)]

    @property
    def mode(self) -> Literal["single", "weighted", "lexicographic"]:
        """Which form was given: single (maximize or minimize), weighted or lexicographic."""
        if self.weighted is not None:
            return "weighted"
        if self.lexicographic is not None:
            return "lexicographic"
        return "single"

    def describe(self) -> str:
        """The objective in one line for reports: `maximize goodput`, `weighted: ... x0.5, ...`."""
        if self.mode == "single":
            t = self.terms()[0]
            return f"{t.sense} {t.metric.value}"
        parts = [
            f"{t.sense} {t.metric.value}"
            + (f" x{t.weight:g}" if self.mode == "weighted" else "")
            for t in self.terms()
        ]
        return f"{self.mode}: " + ", ".join(parts)


class FleetConstraints(StrictModel):
    """Limits on the fleet as a whole: totals over every device (a pool of n counts n times).

    `max_distinct_variants` bounds the distinct (draft, quant) files in use.
    """

    max_cost_usd_per_hour: FleetUsdPerHour | None = None
    max_power_w: FleetWatts | None = None
    max_distinct_variants: Int | None = Field(None, ge=1, le=1_000_000)
    min_goodput_tok_s: GoodputBound | None = None
    max_energy_j_per_tok: EnergyBound | None = None
    min_cost_efficiency_tok_per_usd: EfficiencyBound | None = None
    max_devices_per_target: Int | None = Field(
        None, ge=1, le=1_000_000_000,
        description="Devices one target may serve (its endpoint's session or quota limit).")
    # Percentiles over every request of the fleet (devices weighted by their request
    # rates); exact linear rows, see docs/tails.md.
    max_tpot_p50_s: PositiveSeconds | None = None
    max_tpot_p95_s: PositiveSeconds | None = None
    max_tpot_p99_s: PositiveSeconds | None = None
    max_ttft_p50_s: PositiveSeconds | None = None
    max_ttft_p95_s: PositiveSeconds | None = None
    max_ttft_p99_s: PositiveSeconds | None = None


class Pin(StrictModel):
    """Fix part or all of a pool's configuration."""

    device: Name
    target: Name | None = None
    draft: Name | None = None
    quant: Name | None = None
    k: Int | None = Field(None, ge=1, le=64)


OutputTokens = Annotated[int, Strict(), Field(ge=2, le=4096)]
DEFAULT_OUTPUT_TOKENS = 256


class OutputLength(StrictModel):
    """One output length of a few-point distribution, with its share of the requests."""

    tokens: OutputTokens
    weight: Weight = 1.0


# In the type, not a validator, so the published schema states the bound.
OutputLengths = Annotated[list[OutputLength], Field(min_length=1, max_length=16)]


def _output_tokens_kind(value: Any) -> str:
    return "length_mix" if isinstance(value, list) else "one_length"


# Discriminated, so a mistake inside a list is reported once, at its item, and not also
# as "Input should be a valid integer" for the whole list.
OutputTokensOrLengths = Annotated[
    Annotated[OutputTokens, Tag("one_length")] | Annotated[OutputLengths, Tag("length_mix")],
    Discriminator(_output_tokens_kind),
]
# The tags of the discriminated unions: steps of a pydantic error's location, not of the spec.
UNION_TAGS = frozenset({"table", "per_token", "one_length", "length_mix"})


class Workload(StrictModel):
    """What a request looks like, for the tail-latency model (docs/tails.md).

    `output_tokens` is a fixed length N or a few lengths with weights (shares of the
    requests); the default, 256 tokens, is a typical chat answer.
    """

    output_tokens: OutputTokensOrLengths = Field(
        DEFAULT_OUTPUT_TOKENS, description="Tokens per answer: one number, or a list of "
        "{tokens, weight} (1 to 16).")
    mix: Mix | None = Field(
        None, description="The fleet's traffic mix over prompt classes, as shares of "
        "requests (e.g. {code: 0.3, chat: 0.7}); each candidate's acceptance is then the "
        "mix's (profiles[].acceptance_by_class; docs/workload-mix.md).")

    def lengths(self) -> list[tuple[int, float]]:
        """(N, share) pairs, shares summing to 1, lengths merged and ascending."""
        if isinstance(self.output_tokens, int):
            return [(self.output_tokens, 1.0)]
        merged: dict[int, float] = {}
        for o in self.output_tokens:
            merged[o.tokens] = merged.get(o.tokens, 0.0) + o.weight
        total = sum(merged.values())
        return [(n, w / total) for n, w in sorted(merged.items())]


Margin = Annotated[float, Strict(), Field(ge=0.0, le=0.95)]


class Robust(StrictModel):
    """Box uncertainty: how far each measured number may be off, as a fraction of it.

    A robust solve keeps every SLO and fleet limit for every value within
    [1 - m, 1 + m] times the measured one, each number of each profile, device and
    target independently (docs/robust.md); the objective is the nominal one.  0 (the
    default) trusts a number as measured.
    """

    level: Annotated[float, Strict(), Field(ge=0.5, le=0.999)] | None = Field(
        None, description="Also each profile's measured interval of alpha(K) (its "
        "provenance's ci95, written by `configspec profile`), rescaled to this two-sided "
        "confidence level, wherever it is wider than the acceptance margin.")
    acceptance: Margin = Field(0.0, description="alpha(K) of every profile (capped at 1).")
    draft_tok_s: Margin = Field(0.0, description="Drafting speed v_d of every profile.")
    rtt_s: Margin = Field(0.0, description="Network round trip of every device.")
    verify_latency: Margin = Field(0.0, description="Verification latency of every target.")
    power_w: Margin = Field(0.0, description="Drafting power of every profile and device.")

    def margins(self) -> dict[str, float]:
        """The parameters with a margin above 0, by name (`spec_changes.PARAMETERS`)."""
        return {k: v for k, v in self.model_dump(exclude={"level"}).items() if v > 0.0}


class Constraints(StrictModel):
    """What any answer must satisfy: per-device SLOs, fleet totals, and pinned choices."""

    per_device: DeviceSLO = Field(default_factory=DeviceSLO)
    fleet: FleetConstraints = Field(default_factory=FleetConstraints)
    pinned: list[Pin] = Field(default_factory=list)


class Spec(StrictModel):
    """A whole deployment: what exists, what was measured, what is wanted."""

    version: Annotated[Literal[1], BeforeValidator(_not_a_bool)] = 1
    name: Name
    description: str | None = None
    targets: list[Target] = Field(min_length=1)
    drafts: list[Draft] = Field(min_length=1)
    devices: list[Device] = Field(min_length=1)
    profiles: list[Profile] = Field(default_factory=list)
    profiles_from: list[OneLine] = Field(
        default_factory=list,
        description="Files (YAML or JSON, relative to the spec) holding more profiles.",
    )
    search: Search = Field(default_factory=Search)
    objective: Objective = Field(default_factory=lambda: Objective(maximize=Metric.goodput))
    constraints: Constraints = Field(default_factory=Constraints)
    workload: Workload = Field(default_factory=Workload)
    robust: Robust | None = Field(
        None, description="Plan for measured numbers being off by up to these fractions.")

    def load_blind(self) -> Spec:
        """The same spec with every batched verifier dropped: fixed latency, per-token price.

        What the model without load would pick (`solve --load-blind`).
        """
        targets = [t.model_copy(update={"verifier": None}) for t in self.targets]
        return self.model_copy(update={"targets": targets})

    def mix_for(self, device: Device) -> dict[str, float] | None:
        """The pool's traffic mix, shares summing to 1: its own, else the fleet's; None when
        neither is given (each profile's plain acceptance)."""
        mix = device.mix if device.mix is not None else self.workload.mix
        if mix is None:
            return None
        total = sum(mix.values())
        return {c: w / total for c, w in mix.items()}

    def slo_for(self, device: Device) -> DeviceSLO:
        """The pool's SLO: its own overrides on top of constraints.per_device."""
        base = self.constraints.per_device.model_dump(exclude_none=True)
        if device.slo is not None:
            base.update(device.slo.model_dump(exclude_none=True))
        return DeviceSLO(**base)
