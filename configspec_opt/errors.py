"""Errors a user can cause, each carrying what is needed to fix it.

A user mistake never ends in a traceback: the CLI and the HTTP API turn
these into a message (or RFC 9457 problem) naming file, line and column.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PathPart = str | int


MAX_KEY_SHOWN = 80  # a key longer than this is cut in a path: messages stay small


def format_path(path: tuple[PathPart, ...]) -> str:
    """`devices[0].count` style, as a user would point at it in the YAML."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = str(part)
            if len(key) > MAX_KEY_SHOWN:
                key = f"{key[:MAX_KEY_SHOWN]}...({len(key):,} characters)"
            out += ("." if out else "") + key
    return out or "(top level)"


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec, located as precisely as the source allows."""

    message: str
    path: tuple[PathPart, ...] = ()
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    hint: str | None = None

    def format(self) -> str:
        """The issue as one `file:line:column: path: message (hint)` line.

        The location parts that are unknown are left out (`<spec>` stands in for
        no file), so editors and CI logs can still jump to what is known.
        """
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        text = f"{where}: " + (f"{format_path(self.path)}: " if self.path else "") + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The issue as JSON data, with `path` as the dotted text a user reads."""
        d = asdict(self)
        d["path"] = format_path(self.path)
        return d


class ConfigspecError(Exception):
    """Base of the errors a user can fix; never shown with a traceback."""

    exit_code = 2


@dataclass
class SpecError(ConfigspecError):
    """The spec is not valid: syntax, types, unknown keys, dangling references."""

    issues: list[SpecIssue] = field(default_factory=list)

    def __str__(self) -> str:
        n = len(self.issues)
        head = f"invalid spec ({n} problem{'s' if n != 1 else ''})"
        return head + ":\n" + "\n".join("  " + i.format() for i in self.issues)

    def to_dict(self) -> dict[str, Any]:
        """The `{"status": "invalid", "errors": [...]}` body of `--json` and the HTTP API."""
        return {"status": "invalid", "errors": [i.to_dict() for i in self.issues]}


class NumericError(ConfigspecError, ArithmeticError):
    """A computed figure that would not be a finite number (exit 2, like an invalid spec).

    The spec's ranges prevent it; `candidates` turns it into a SpecError located at
    the profile whose numbers caused it, so it never reaches JSON as inf or NaN.
    """

    exit_code = 2


class OutputError(ConfigspecError):
    """A file configspec must write (a lock, a formatted spec, a schema, a plot) cannot be
    written: a read-only directory, a full disk.  Exit 4 (README), never a traceback."""

    exit_code = 4


EXTRA_OF_COMMAND: dict[str, str | None] = {
    "validate, evaluate, schema, fmt, check": None,
    "export LOCK, diff LOCK LOCK": None,
    "import llama-bench / vllm-metrics / llama-spec": None,
    "profile-verifier": None,
    "fleet-trial --recording FILE (an existing recording)": None,
    "solve, pareto, lock, report": "solver",
    "check --resolve, diff SPEC, export SPEC": "solver",
    "group": "solver",
    "profile, trial, quantize, draft-client": "profiler",
    "fleet-trial (recording)": "profiler",
    "plot, trial --plot": "plot",
    "serve, worker, db prune": "server",
    "observe": "server",
    "serve, worker, db prune with --db postgresql+psycopg://...": "postgres",
}
"""Which extra each command needs (None: the base install), the one place that says so:
the README's table is checked against it and the missing-extra messages name it.  The
report's Pareto plot is optional: without `plot` it is a table and says how to add it."""


def install_command(extra: str) -> str:
    """The one command that adds an extra to an install of configspec-opt (double quotes:
    the same line works in sh, zsh, PowerShell and cmd.exe)."""
    return f'pip install "configspec-opt[{extra}]"'


class ExtraNotInstalledError(ConfigspecError):
    """A part of configspec-opt whose extra this install lacks: exit 3 (README), never a
    traceback, and the message always ends with the pip command that adds it (so a
    message is written without one)."""

    exit_code = 3
    extra = "all"

    def __str__(self) -> str:
        return f"{super().__str__()}: {install_command(self.extra)}"


class SolverUnavailableError(ExtraNotInstalledError):
    """Pyomo or HiGHS are not installed (the edge-only install)."""

    extra = "solver"


class ProfilerUnavailableError(ExtraNotInstalledError):
    """llama-cpp-python is not installed (profile, trial, quantize)."""

    extra = "profiler"


class ServerUnavailableError(ExtraNotInstalledError):
    """FastAPI, uvicorn, SQLAlchemy, Alembic or platformdirs are not installed (serve)."""

    extra = "server"


class PlotUnavailableError(ExtraNotInstalledError):
    """matplotlib is not installed (plot, trial --plot)."""

    extra = "plot"


class PostgresUnavailableError(ExtraNotInstalledError):
    """psycopg is not installed and the database URL names PostgreSQL (serve, worker, db)."""

    extra = "postgres"


class UsageError(ConfigspecError):
    """A command-line or request option that cannot be honoured."""

    exit_code = 2
