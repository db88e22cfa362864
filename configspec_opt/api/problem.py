"""RFC 9457 problem details: the one shape every error of the API has.

`ApiProblem` is raised anywhere (routes, dependencies, or rebuilt from what
a solver worker returned) and rendered by one handler.  Spec errors carry
`errors`: the CLI's issues (message, path, file, line, column, hint), so a
client can point at the same place `configspec validate` would.  Pure: no
FastAPI here, so workers can build problems too.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from configspec_opt.errors import ConfigspecError, SolverUnavailableError, SpecError

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:configspec-opt:problem:"


class Issue(BaseModel):
    """One located problem in a request body (a spec or a profile upload)."""

    message: str
    path: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    hint: str | None = None


class ProblemDetails(BaseModel):
    """application/problem+json (RFC 9457)."""

    # the docstring is the schema's description; the schema keeps the name `Problem` that
    # clients know (openapi.SCHEMA_NAMES), the class is named apart from problem.Problem
    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field("about:blank", description="`urn:configspec-opt:problem:<kind>`, "
                      "listed in docs/http.md.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[Issue] | None = None


class ApiProblem(Exception):
    """An error answered as a problem document (status < 500 unless something broke)."""

    def __init__(self, status: int, kind: str, title: str, detail: str | None = None, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 document; `instance` is the request path, extras go in as they are."""
        out: dict[str, Any] = {"type": TYPE_PREFIX + self.kind if self.kind else "about:blank",
                               "title": self.title, "status": self.status}
        if self.detail:
            out["detail"] = self.detail
        if instance:
            out["instance"] = instance
        out.update(self.extra)
        return out

    def to_wire(self) -> dict[str, Any]:
        """A picklable form, for a worker to hand back (exceptions pickle badly)."""
        return {"status": self.status, "kind": self.kind, "title": self.title,
                "detail": self.detail, "headers": self.headers, "extra": self.extra}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> ApiProblem:
        """Rebuild a problem a solver process handed back with `to_wire`."""
        return cls(d["status"], d["kind"], d["title"], d["detail"], headers=d["headers"],
                   **d["extra"])


def from_error(exc: ConfigspecError, what: str = "spec") -> ApiProblem:
    """The problem for a user error raised by the core (same classes the CLI reports)."""
    if isinstance(exc, SpecError):
        n = len(exc.issues)
        return ApiProblem(422, f"invalid-{what}", f"Invalid {what}",
                          f"invalid {what} ({n} problem{'s' if n != 1 else ''})",
                          errors=[i.to_dict() for i in exc.issues])
    if isinstance(exc, SolverUnavailableError):
        return ApiProblem(503, "solver-unavailable", "Solver unavailable", str(exc))
    return ApiProblem(422, "invalid-request", "Request cannot be honoured", str(exc))
