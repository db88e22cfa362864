"""Entry points of the solver worker processes.

Everything CPU-bound (parsing a spec, building candidates, Pyomo models,
HiGHS) runs here, never on the server's event loop.  Arguments and results
are plain picklable data; user errors come back as problem data, not as
exceptions, so the server can answer them as 4xx.
"""

from __future__ import annotations

import signal
from typing import Any

from configspec_opt.api import operations
from configspec_opt.api.params import (
    EvaluateParams,
    Op,
    OpParams,
    ParetoParams,
    SolveParams,
)
from configspec_opt.api.problem import from_error
from configspec_opt.api.stored_profiles import apply_stored
from configspec_opt.api.unlocated import unlocated_errors_are_invalid
from configspec_opt.errors import ConfigspecError, SpecError, SpecIssue
from configspec_opt.loader import LoadedSpec, parse_spec

REQUEST_NAME = "<request>"


def init_worker() -> None:
    """Ctrl-C is the server's to handle; import the solver stack once per process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import solvers.solve  # noqa: F401
    from solvers.adapter import require_solver

    require_solver()


def warm() -> bool:
    return True


def check_json(text: str, media_type: str | None) -> None:
    """A body declared JSON must be JSON (the loader would otherwise read it as YAML)."""
    if media_type == "application/json" and text.lstrip()[:1] not in ("{", "["):
        raise SpecError([SpecIssue("the body is declared application/json but is not a JSON "
                                   "object", file=REQUEST_NAME, line=1, column=1,
                                   hint="send YAML as application/yaml")])


def load(text: str, media_type: str | None, params: OpParams,
         stored: list[dict[str, Any]] | None) -> tuple[LoadedSpec, list[dict[str, Any]] | None]:
    """Parse a request body (paths in it are never opened) and merge stored profiles."""
    check_json(text, media_type)
    with unlocated_errors_are_invalid(REQUEST_NAME):
        loaded = parse_spec(text, name=REQUEST_NAME, base_dir=None)
    if params.profiles == "stored":
        return apply_stored(loaded, stored or [])
    return loaded, None


def run(op: Op, text: str, media_type: str | None, params: OpParams, time_limit: float | None,
        stored: list[dict[str, Any]] | None) -> dict[str, Any]:
    """`{"ok": True, "body", "sha256", "name"}` or `{"ok": False, "problem"}`."""
    try:
        loaded, used = load(text, media_type, params, stored)
        body: dict[str, Any]
        if op is Op.validate:
            body = operations.validate(loaded)
        elif op is Op.evaluate:
            assert isinstance(params, EvaluateParams)
            body = operations.evaluate(loaded, params)
        elif op is Op.solve:
            assert isinstance(params, SolveParams)
            body = operations.solve(loaded, params, time_limit)
        else:
            assert isinstance(params, ParetoParams)
            body = operations.pareto(loaded, params, time_limit)
    except ConfigspecError as exc:
        return {"ok": False, "problem": from_error(exc).to_wire()}
    if used is not None:
        body["stored_profiles"] = used
    return {"ok": True, "body": body, "sha256": loaded.sha256, "name": loaded.spec.name}


def check_job(text: str, media_type: str | None, params: SolveParams,
              stored: list[dict[str, Any]] | None) -> dict[str, Any]:
    """What a job submission checks before it is accepted: spec and options."""
    try:
        loaded, used = load(text, media_type, params, stored)
        operations.check_solve(loaded, params)
    except ConfigspecError as exc:
        return {"ok": False, "problem": from_error(exc).to_wire()}
    used_ids = {u["id"] for u in used or ()}
    return {"ok": True, "sha256": loaded.sha256, "name": loaded.spec.name,
            "stored": None if stored is None else [e for e in stored if e["id"] in used_ids]}
