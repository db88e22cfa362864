"""Running a spec operation for a request: stored profiles, the pool, the record.

Shared by the synchronous spec routes and the job runner, so a job and a
`POST /v1/solve` with the same body and options compute the same thing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from configspec_opt.api import tasks
from configspec_opt.api.params import Op, OpParams, SolveParams
from configspec_opt.api.pool import SolverPool
from configspec_opt.api.problem import ApiProblem
from configspec_opt.store import repo
from configspec_opt.store.database import Database

RECORDED = (Op.solve, Op.pareto)


def time_limit_for(requested: float | None, default: float, maximum: float,
                   *, hint: str) -> float:
    """The solver time limit a request gets: its own, within the server's maximum."""
    if requested is None:
        return default
    if requested > maximum:
        raise ApiProblem(422, "invalid-request", "Time limit too long",
                         f"time_limit {requested:g} s is above this server's maximum of "
                         f"{maximum:g} s; {hint}")
    return requested


async def stored_profiles(db: Database, params: OpParams) -> list[dict[str, Any]] | None:
    """Newest stored profile per key, when the request asks for stored profiles."""
    if params.profiles != "stored":
        return None

    def load(s: Session) -> list[dict[str, Any]]:
        return [{"id": r.id, "profile": r.data} for r in repo.latest_profiles(s)]

    return await db.run(load)


async def compute(pool: SolverPool, op: Op, text: str, media_type: str | None,
                  params: OpParams, time_limit: float | None,
                  stored: list[dict[str, Any]] | None, *, wait: bool = False) -> dict[str, Any]:
    """Run on the pool; a user error comes back as an `ApiProblem`, raised here."""
    outcome: dict[str, Any] = await pool.run(tasks.run, op, text, media_type, params,
                                             time_limit, stored, wait=wait)
    if not outcome["ok"]:
        raise ApiProblem.from_wire(outcome["problem"])
    return outcome


def recorded_params(params: OpParams, time_limit: float | None) -> dict[str, Any]:
    data = params.model_dump(mode="json")
    if "time_limit" in data:
        data["time_limit"] = time_limit
    return data


def record(s: Session, op: Op, text: str, outcome: dict[str, Any],
           params: dict[str, Any]) -> int:
    """Store the spec (by hash) and the result; returns the result id."""
    repo.save_spec(s, outcome["sha256"], outcome["name"], text)
    return repo.add_result(s, op.value, outcome["sha256"], params, outcome["body"]).id


def job_params(data: dict[str, Any]) -> SolveParams:
    return SolveParams.model_validate(data)
