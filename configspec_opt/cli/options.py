"""Options that several commands take, each declared once: one flag, one help, one behaviour.

A command names the alias as its parameter's type and keeps the default
(`as_json: JsonOpt = False`): a second copy of an option drifts (one help
text says more than the other, one command forgets the environment variable
the docs promise), so none is written twice.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]

# --- the commands that run llama.cpp (profile, trial) ------------------------

PromptsOpt = Annotated[Path | None, typer.Option(
    "--prompts", help="Prompt file: text (one a line), JSONL, or Dolly 15K JSONL.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for sampled runs.")]
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
    min=0.3, envvar="CONFIGSPEC_JOB_LEASE", help="Seconds a job claimed here stays claimed "
    "without a heartbeat (renewed every third of it).")]
JobAttemptsOpt = Annotated[int, typer.Option(
    min=1, envvar="CONFIGSPEC_JOB_ATTEMPTS", help="Claims of one job (workers lost "
    "under it) before it is failed.")]
LogLevelOpt = Annotated[LogLevel, typer.Option(help="Log verbosity.")]
