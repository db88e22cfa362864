"""Options that several commands take, each declared once: one flag, one help, one behaviour.

A command names the alias as its parameter's type and keeps the default
(`as_json: JsonOpt = False`): a second copy of an option drifts (one help
text says more than the other, one command forgets the environment variable
the docs promise), so none is written twice.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic_core import PydanticCustomError


class Bounds:
    """The domain of a numeric option, checked as the option is read (command line or
    environment variable): a value outside it is a usage error naming the option (exit 2)
    before any work, instead of a run that ends "raise time_limit" or a traceback.

    Used as the option's `parser`.  Floats must also be finite: `nan` passes every
    comparison of a range check and `inf` every lower bound, and either turns a limit
    into no limit (or into an overflow deep inside a run).
    """

    def __init__(self, *, min: float | None = None, max: float | None = None,
                 above: float | None = None, below: float | None = None,
                 integer: bool = False, unit: str = "") -> None:
        self.min, self.max, self.above, self.below = min, max, above, below
        self.integer, self.unit = integer, unit

    def describe(self) -> str:
        """The domain in words: `a number of seconds above 0 and at most 604800`."""
        what = "a whole number" if self.integer else "a number"
        what += f" of {self.unit}" if self.unit else ""
        low = f"above {self.above:g}" if self.above is not None else \
            f"from {self.min:g}" if self.min is not None else ""
        high = f"below {self.below:g}" if self.below is not None else \
            f"at most {self.max:g}" if self.max is not None else ""
        if low.startswith("from") and not high:
            low = f"no less than {self.min:g}"
        if low.startswith("from") and high:
            return f"{what} {low} to {high.removeprefix('at most ')}"
        if not (low or high or self.integer):
            return f"a finite {what.removeprefix('a ')}"
        return " ".join(p for p in (what, " and ".join(x for x in (low, high) if x)) if p)

    def __call__(self, value: Any) -> float | int:
        """The option's value (text from the command line or the environment, or its
        default) as a number in the domain; a PydanticCustomError when it is not."""
        try:
            number: float | int = int(value) if self.integer else float(value)
        except (TypeError, ValueError, OverflowError):
            raise _refused(f"{value!s} is not {self.describe()}") from None
        low_ok = (self.above is None or number > self.above) and \
            (self.min is None or number >= self.min)
        high_ok = (self.below is None or number < self.below) and \
            (self.max is None or number <= self.max)
        if not (math.isfinite(number) and low_ok and high_ok):
            raise _refused(f"{value!s} is not {self.describe()}")
        return number


def _refused(detail: str) -> PydanticCustomError:
    # typer reads options through pydantic: this message becomes "Invalid value for
    # '--option': DETAIL" (exit 2); a ValueError would gain a "Value error, " prefix
    return PydanticCustomError("configspec_option", "{detail}", {"detail": detail})


MAX_TIME_LIMIT_S = 7 * 24 * 3600.0
"""The longest `--time-limit` (a week): a solve that needs more has a fleet to split; also
the bound of the other second counts (timeouts, leases)."""
MAX_DAYS = 36_500.0
"""The longest age in days an option takes (a century: dates stay representable)."""

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]

# --- the solver's options (solve, pareto, report, plot) ---------------------


def time_limit_option(help: str) -> Any:
    """`--time-limit S`: each command says what the seconds bound; the domain, the
    environment variable and the refusal are the same everywhere."""
    return typer.Option("--time-limit", help=f"{help} Above 0, at most a week (604800).",
                        envvar="CONFIGSPEC_TIME_LIMIT",
                        parser=Bounds(above=0, max=MAX_TIME_LIMIT_S, unit="seconds"))


GapOpt = Annotated[float, typer.Option(
    help="Relative MIP gap, 0 to 1 (default proves optimality).", envvar="CONFIGSPEC_GAP",
    parser=Bounds(min=0, max=1))]
PointsOpt = Annotated[int, typer.Option(
    help="At most this many points (1 or more).", envvar="CONFIGSPEC_PARETO_POINTS",
    parser=Bounds(min=1, integer=True))]
JitterOpt = Annotated[float, typer.Option(
    help="With --simulate: each round's drafting time drawn within +-this share of "
    "K/v_d (0 to below 1).", parser=Bounds(min=0, below=1))]
TopOpt = Annotated[int | None, typer.Option(
    help="Only the best N rows per device (1 or more).", parser=Bounds(min=1, integer=True))]
HttpTimeoutOpt = Annotated[float, typer.Option(
    "--timeout", help="HTTP timeout, seconds (above 0).",
    parser=Bounds(above=0, max=MAX_TIME_LIMIT_S, unit="seconds"))]

# --- the commands that run llama.cpp (profile, trial) ------------------------

PromptsOpt = Annotated[Path | None, typer.Option(
    "--prompts", help="Prompt file: text (one a line), JSONL, or Dolly 15K JSONL.")]
SeedOpt = Annotated[int, typer.Option(
    help="Seed for sampled runs (0 to 4294967295: llama.cpp's seeds are 32-bit).", min=0,
    max=2**32 - 1)]
ThreadsOpt = Annotated[int, typer.Option(help="llama.cpp threads (0: all cores).", min=0)]
NCtxOpt = Annotated[int, typer.Option(help="Context size.", min=64)]
RepackOpt = Annotated[bool, typer.Option(
    help="Allow llama.cpp weight repacking (AMX/AVX extra buffers).")]
ChatOpt = Annotated[bool | None, typer.Option(
    "--chat/--no-chat", help="Wrap prompts in the model's chat template (default: when it "
    "has one).")]
PowerOpt = Annotated[str, typer.Option(
    help="auto, none, rapl, jetson, rpi, nvml or constant:<watts>.")]

# --- the job service (serve, worker, db prune) -------------------------------


class LogLevel(str, Enum):
    """Log levels of `configspec serve` and `configspec worker` (`--log-level`)."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


DbOpt = Annotated[str | None, typer.Option(
    "--db", envvar="CONFIGSPEC_DB", help="SQLAlchemy URL (sqlite:///path, "
    "postgresql+psycopg://... to share one between machines) or a SQLite file path. "
    "Default: a file in the user data directory.")]
JobLeaseOpt = Annotated[float, typer.Option(
    parser=Bounds(min=0.3, max=MAX_TIME_LIMIT_S, unit="seconds"), envvar="CONFIGSPEC_JOB_LEASE",
    help="Seconds a job claimed here stays claimed without a heartbeat (renewed every third "
    "of it).")]
JobAttemptsOpt = Annotated[int, typer.Option(
    min=1, envvar="CONFIGSPEC_JOB_ATTEMPTS", help="Claims of one job (workers lost "
    "under it) before it is failed.")]
LogLevelOpt = Annotated[LogLevel, typer.Option(help="Log verbosity.")]
