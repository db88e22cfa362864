"""The lock file's schema: what `configspec lock` writes, and all that a reader of a lock takes.

A lock sits in the repository beside its spec and anyone can edit it, so it is
input like a spec: every reader (`diff`, `export`, `check`) validates it here
first, and a malformed lock is refused with file, line and column (exit 2)
before any of its values is used.  The models are strict like the spec's: no
unknown keys (with "did you mean"), no string or boolean where a number
belongs, no NaN or infinity, no negative counts or metrics.

`lock_version` is checked on its own before the rest, so a lock written by a
newer configspec is refused with one line that says so instead of every key
the newer format added.  There has been one version so far; locks written
before `fleet.mean_round_time_s` existed lack it, so the fleet's figures are
optional (a diff shows an absent one as n/a).

Names are checked against the spec only where the spec is at hand
(`export`, `lock_issues` with `spec=`): every pool, target, draft, quant and K
the lock assigns must exist there, and each pool's counts must add up to its
devices.  Whether the numbers are the ones the solver would write is
`configspec check --resolve`'s question, not the schema's.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from configspec_opt.errors import SpecIssue
from configspec_opt.loader import Source, validation_issues
from configspec_opt.spec import Metric, Name, Spec

LOCK_VERSION = 1

Count = Annotated[int, Field(ge=1, le=10_000_000)]
Size = Annotated[int, Field(ge=0)]
K = Annotated[int, Field(ge=1, le=64)]
Number = Annotated[float, Field(ge=0)]
Ratio = Annotated[float, Field(ge=0, le=1)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
MetricName = Annotated[Metric, Strict(False)]  # its value, as the YAML spells it
KKey = Annotated[str, Field(pattern=r"^[1-9][0-9]?$")]


class LockModel(BaseModel):
    """Base of the lock's models: strict types, no unknown keys, finite numbers."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class SourceHash(LockModel):
    """One file the spec was built from and its SHA-256 when the lock was written."""

    file: str = Field(min_length=1)
    sha256: Sha256


class SpecRef(LockModel):
    """The spec the lock belongs to: its name and the hashes `check` compares."""

    file: str = Field(min_length=1)
    name: Name
    sha256: Sha256 = Field(description="The spec_sha256 of `solve --json`: every source.")
    sources: list[SourceHash] = Field(min_length=1)


class LockTerm(LockModel):
    """One term of a weighted or lexicographic objective."""

    sense: Literal["maximize", "minimize"]
    metric: MetricName
    weight: Number | None = None
    tolerance: Ratio | None = None


class LockObjective(LockModel):
    """What the lock's decision optimises and the value it reached."""

    sense: Literal["maximize", "minimize"]
    metric: MetricName
    value: float | None
    mode: Literal["weighted", "lexicographic"] | None = None
    terms: list[LockTerm] | None = Field(None, min_length=1)


class Assignment(LockModel):
    """One (pool, configuration) of the decision: how many devices run it, and its numbers."""

    device: Name
    count: Count
    target: Name
    draft: Name
    quant: Name
    k: K
    alpha: Ratio
    draft_tok_s: Number
    round_time_s: Number
    goodput_tok_s: Number
    cost_tok_per_usd: Number | None
    energy_j_per_tok: Number | None
    verifier_load_tok_s: Number
    cost_usd_per_hour: Number
    power_w: Number | None
    mean_acceptance_length: Number
    verify_latency_s: Number | None = None
    # Percentiles over the pool's requests (docs/tails.md); absent in older locks.
    tpot_p50_s: Number | None = None
    tpot_p95_s: Number | None = None
    tpot_p99_s: Number | None = None
    ttft_p50_s: Number | None = None
    ttft_p95_s: Number | None = None
    ttft_p99_s: Number | None = None
    split: bool

    @field_validator("device", "target", "draft", "quant", "k")
    @classmethod
    def _in_spec(cls, value: Any, info: ValidationInfo) -> Any:
        spec: Spec | None = (info.context or {}).get("spec")
        if spec is None:
            return value
        field = info.field_name
        known: dict[str, set[Any]] = {
            "device": {d.name for d in spec.devices}, "target": {t.name for t in spec.targets},
            "draft": {d.name for d in spec.drafts}, "k": set(spec.search.k.values())}
        if field == "quant":
            draft = next((d for d in spec.drafts if d.name == info.data.get("draft")), None)
            if draft is None or value in draft.quants:
                return value
            raise PydanticCustomError("not_in_spec", f"draft {info.data['draft']!r} has no "
                                      "such quant in the spec")
        if field is not None and value not in known[field]:
            what = "K outside the spec's search.k" if field == "k" else \
                f"no {field} of that name in the spec"
            raise PydanticCustomError("not_in_spec", what)
        return value


class LockVerifier(LockModel):
    """A batched verifier as the decision settled it."""

    target: Name
    replicas: Size
    in_flight_per_replica: Number
    latency_s_by_k: dict[KKey, Number]
    cost_usd_per_hour: Number


class LockFleet(LockModel):
    """The fleet's figures (`solve --json`'s `fleet`); null where not available."""

    goodput_tok_s: Number | None = None
    cost_usd_per_hour: Number | None = None
    verifier_load_tok_s: Number | None = None
    power_w: Number | None = None
    cost_efficiency_tok_per_usd: Number | None = None
    energy_j_per_tok: Number | None = None
    min_goodput_tok_s: Number | None = None
    mean_round_time_s: Number | None = None
    devices: Size
    verifier_load_by_target: dict[Name, Number]
    verifiers: list[LockVerifier] | None = None
    tpot_p50_s: Number | None = None
    tpot_p95_s: Number | None = None
    tpot_p99_s: Number | None = None
    ttft_p50_s: Number | None = None
    ttft_p95_s: Number | None = None
    ttft_p99_s: Number | None = None


class LockSolver(LockModel):
    """What is proven about the decision, and how ties were broken."""

    name: Literal["highs"]
    proven_optimal: bool
    candidates: Size
    pruned_dominated: Size
    tie_break: str


class LockFile(LockModel):
    """A `.lock` file: the decision that follows from a spec, and which spec it was."""

    model_config = ConfigDict(title="configspec-opt lock file")

    lock_version: Literal[1] = Field(description="The format's version; a newer one is refused.")
    tool: str = Field(description="The configspec-opt that wrote it (informational).")
    spec: SpecRef
    status: Literal["optimal", "feasible", "infeasible", "time_limit"]
    objective: LockObjective
    assignments: list[Assignment]
    split_pools: list[Name] | None = None
    fleet: LockFleet | None
    message: str | None = None
    solver: LockSolver
    warnings: list[str] | None = None

    @field_validator("assignments")
    @classmethod
    def _every_device_once(cls, rows: list[Assignment], info: ValidationInfo) -> list[Assignment]:
        spec: Spec | None = (info.context or {}).get("spec")
        if spec is None or info.data.get("status") not in ("optimal", "feasible"):
            return rows  # an unsolved decision assigns nothing; its readers say so
        counts: dict[str, int] = defaultdict(int)
        for row in rows:
            counts[row.device] += row.count
        for d in spec.devices:
            if counts.get(d.name, 0) != d.count:
                raise PydanticCustomError(
                    "not_in_spec", f"pool {d.name!r} has {d.count} devices in the spec and "
                    f"{counts.get(d.name, 0)} in the lock's assignments")
        return rows


class _VersionOnly(BaseModel):
    """The one key read before the rest: which format the file is in."""

    model_config = ConfigDict(extra="ignore", strict=True)

    lock_version: int

    @field_validator("lock_version")
    @classmethod
    def _known(cls, value: int) -> int:
        if value > LOCK_VERSION:
            raise PydanticCustomError(
                "lock_version", f"written by a newer configspec (lock_version {value}); this "
                f"one reads version {LOCK_VERSION}: upgrade configspec-opt, or rewrite the "
                "lock with `configspec lock`")
        if value != LOCK_VERSION:
            raise PydanticCustomError("lock_version", f"there is no lock_version {value}; "
                                      f"this configspec reads version {LOCK_VERSION}")
        return value


def lock_issues(data: Any, src: Source, *, spec: Spec | None = None) -> list[SpecIssue]:
    """Every way `data` (parsed from `src`) is not a lock this version reads, located.

    Empty when it is one.  With `spec`, also every name, K and count of the
    assignments that does not fit that spec.
    """
    if not isinstance(data, dict):
        return [SpecIssue("a lock is a mapping of keys (lock_version, spec, assignments, ...)",
                          file=src.name, line=1, column=1)]
    if "lock_version" not in data:
        return [SpecIssue("not a configspec lock: no lock_version", file=src.name, line=1,
                          column=1, hint="`configspec lock SPEC` writes one")]
    for model in (_VersionOnly, LockFile):
        try:
            model.model_validate(data, context={"spec": spec})
        except ValidationError as exc:
            return validation_issues(exc, src, LockFile)
    return []


def lock_json_schema() -> dict[str, Any]:
    """JSON Schema of a lock file, for editors and for tools that read locks."""
    schema = LockFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
