"""Response models (the request side is `params.py` and the spec models themselves).

Spec endpoints answer with exactly the CLI's `--json` dicts; their models
here document the stable top-level keys and allow the rest, so the OpenAPI
document describes them without a second source of truth to drift.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_serializer

from configspec_opt.api.problem import ProblemDetails
from configspec_opt.spec import Profile


class Out(BaseModel):
    """Base of the service's own answers: closed, so an undocumented key is a bug."""

    model_config = ConfigDict(extra="forbid")


class OpenOut(BaseModel):
    """The CLI's JSON: these keys are always there, others may be."""

    model_config = ConfigDict(extra="allow")


def _utc(value: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; they were written in UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class ValidateOut(OpenOut):
    """The answer of `POST /v1/validate`: `configspec validate --json`."""

    status: Literal["valid"]
    name: str
    spec_sha256: str
    pools: int
    devices: int
    candidates: int
    candidates_meeting_slo: int
    warnings: list[str]


class EvaluateOut(OpenOut):
    """The answer of `POST /v1/evaluate`: `configspec evaluate --json`, one row per candidate."""

    candidates: list[dict[str, Any]]


class SolveOut(OpenOut):
    """The answer of `POST /v1/solve` and a job's result: `configspec solve --json`.

    The nested parts are typed where they are built (`configspec_opt.results`); here
    they stay open, because a job's result is read back from the store as it was
    written by whatever release wrote it.
    """

    status: Literal["optimal", "feasible", "infeasible", "time_limit", "error"] = Field(
        description="`infeasible` comes with `diagnosis`: the fewest constraints to relax.")
    objective: dict[str, Any] = Field(
        description="What was optimised and the value reached (`results.ObjectiveJSON`).")
    assignments: list[dict[str, Any]] = Field(
        description="One row per (pool, configuration): the configuration and its metrics "
        "(keys of `configspec_opt.metric_registry`).")
    fleet: dict[str, Any] | None = Field(
        description="Every registered fleet metric (null where not available), devices, "
        "verifier load per target, batched verifiers as settled.")
    solver: dict[str, Any] = Field(
        description="How the answer was found and what is proven: status per stage, the "
        "certified gap, `proven_optimal` (`results.SolverJSON`).")


class ParetoOut(OpenOut):
    """The answer of `POST /v1/pareto`: `configspec pareto --json` (`complete`: the whole front)."""

    x: dict[str, Any] = Field(description="The first metric and its sense (`results.AxisJSON`).")
    y: dict[str, Any] = Field(description="The second metric and its sense.")
    complete: bool
    time_s: float
    points: list[dict[str, Any]]


class ProfilesIn(BaseModel):
    """What `configspec profile --push URL` sends (JSON, or the same shape as YAML)."""

    model_config = ConfigDict(extra="forbid")

    profiles: list[Profile] = Field(min_length=1)


class ProfileOut(Out):
    """A stored profile entry: the upload as sent, when it arrived, and who sent it."""

    id: int
    received_at: UtcDatetime
    profile: Profile
    token_fingerprint: str | None = Field(
        None, description="Who wrote it: the first 12 hex digits of SHA-256 of the bearer "
        "token sent (null when the server has no token, or for uploads before this was "
        "recorded).")

    @field_serializer("profile")
    def _as_sent(self, profile: Profile) -> dict[str, Any]:
        """Unset optional fields stay out, as in a spec's `profiles:` entry."""
        return profile.model_dump(mode="json", exclude_none=True)


class ProfilesOut(Out):
    """Profile entries: those just stored (POST) or those matching a query (GET)."""

    profiles: list[ProfileOut]


class JobOut(Out):
    """A queued solve and its state; `result` (or `error`) is set once it finished."""

    id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    spec_sha256: str
    params: dict[str, Any]
    stored_profiles: list[dict[str, Any]] | None = Field(
        None, description="The stored profiles snapshot taken at submission "
        "(`profiles=stored`).")
    attempts: int
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    result_url: str | None = None
    result: SolveOut | None = Field(None, description="The solve's JSON, once succeeded.")
    error: ProblemDetails | None = None


class ResultOut(Out):
    """A recorded solve or Pareto answer; `body` is the JSON the request was answered with."""

    id: str = Field(description="32 random hex digits (results cannot be found by counting).")
    kind: Literal["solve", "pareto"]
    spec_sha256: str
    params: dict[str, Any]
    status: str
    created_at: UtcDatetime
    body: dict[str, Any]


class HealthOut(Out):
    """The body of `/healthz`: alive, with the solver pool's load and the job backlog."""

    status: Literal["ok"]
    version: str
    database: Literal["ok"]
    workers: int
    in_flight: int
    capacity: int
    unfinished_jobs: int
