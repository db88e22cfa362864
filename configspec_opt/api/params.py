"""Query parameters of the spec endpoints, one model per endpoint (FastAPI query models).

The names and defaults are the CLI's options, so `?objective=min:energy&device=rpi5`
means what `--objective min:energy --device rpi5` means.  Unknown parameters
are refused (a misspelt option silently ignored is a wrong answer).  The models
are plain pydantic, picklable, and travel to the solver workers as they are.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from configspec_opt.operations import SortKey

ProfilesFrom = Literal["inline", "stored"]
TermText = Annotated[str, Field(min_length=1, max_length=64,
                                examples=["max:goodput", "min:energy", "cost_efficiency"])]
Devices = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]],
                    Field(max_length=1000, description="Only these pools (repeatable).")]
TimeLimit = Annotated[float | None, Field(
    gt=0, le=86_400, description="Seconds for the solver (at most the server's maximum; "
    "default: the server's default).")]


class Op(str, Enum):
    """The spec operations the service runs; the value is also the recorded result's kind."""

    validate = "validate"
    evaluate = "evaluate"
    solve = "solve"
    pareto = "pareto"


class SpecParams(BaseModel):
    """Options every spec endpoint takes; unknown query parameters are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profiles: ProfilesFrom = Field(
        "inline", description="`stored`: profiles pushed to this server replace the spec's "
        "inline entries for the same (device, draft, quant).")


class ValidateParams(SpecParams):
    """Query of `POST /v1/validate`: only where the profiles come from."""

    pass


class EvaluateParams(SpecParams):
    """Query of `POST /v1/evaluate`: the options of `configspec evaluate`."""

    sort: SortKey = Field(SortKey.goodput, description="Order of the rows.")
    device: Devices = Field(default_factory=list)
    top: int | None = Field(None, ge=1, le=100_000, description="Only the best N rows per device.")


class SolveParams(SpecParams):
    """Query of `POST /v1/solve` and of a solve job: the options of `configspec solve`."""

    objective: TermText | None = Field(None, description="Override the spec's objective.")
    device: Devices = Field(default_factory=list)
    time_limit: TimeLimit = None
    gap: float = Field(1e-9, ge=0, le=1, description="Relative MIP gap.")
    explain: bool | None = Field(None, description="Runner-up and binding constraint per "
                                 "pool (default: on for small fleets).")
    tie_break: bool = Field(True, description="Resolve equal optima in the documented order.")
    prune: bool = Field(True, description="Remove provably dominated candidates first.")
    load_blind: bool = Field(False, description="Ignore batched verifiers' load: fixed "
                             "verify_latency_s and per-token price (what a load-blind model "
                             "picks).")
    simulate: float | None = Field(None, ge=0, lt=1, description="Also play each batched "
                                   "verifier of the answer forward step by step, with each "
                                   "round's drafting time within +- this share of K/v_d "
                                   "(`solve --simulate --jitter`); null: no simulation. "
                                   "Not with load_blind.")
    sensitivity: bool = Field(False, description="Also each parameter's breaking point and "
                              "the objective's elasticity to it (`solve --sensitivity`).")
    robust: float | None = Field(None, ge=0.5, le=0.999, description="A plan that holds for "
                                 "every alpha(K) within its measured interval at this "
                                 "confidence level (`solve --robust`).")


class ParetoParams(SpecParams):
    """Query of `POST /v1/pareto`: the options of `configspec pareto`; `x` and `y` are terms."""

    x: TermText = "goodput"
    y: TermText = "energy"
    device: Devices = Field(default_factory=list)
    points: int = Field(50, ge=1, le=200, description="At most this many points.")
    time_limit: TimeLimit = None


OpParams = ValidateParams | EvaluateParams | SolveParams | ParetoParams
