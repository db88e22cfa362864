"""The typer application and the error handling every command shares."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.markup import escape
from rich.segment import Segment
from rich.text import Text

from configspec_opt.errors import ConfigspecError, ExtraNotInstalledError, SpecError
from configspec_opt.safe_text import terminal_safe

app = typer.Typer(
    name="configspec",
    help="Choose draft model, quantisation and speculative length K for every device of an "
    "edge-cloud speculative-decoding fleet.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

class SafeConsole(Console):
    """A console that cannot print a control character: each one is shown as an escape
    (`terminal_safe`), whatever the call site prints (a name, a message quoting a
    file, a table cell, a progress description).

    Strings are escaped before layout (`render_str`), so tables measure what is shown;
    every rendered segment is escaped again as a backstop for text that never was a
    `str` here (rich's own `Text` objects).  Rich's own control segments (cursor
    moves of a spinner) pass: they are not text.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        """`Console.render_str` of the escaped text."""
        return super().render_str(terminal_safe(text), **kwargs)

    def render(self, renderable: RenderableType,
               options: ConsoleOptions | None = None) -> Iterable[Segment]:
        """`Console.render` with every text segment escaped."""
        for segment in super().render(renderable, options):
            shown = segment.text if segment.control else terminal_safe(segment.text)
            yield segment if shown == segment.text else Segment(shown, segment.style)


# The terminal's width, or $COLUMNS, or 80 when piped: tables are laid out for 80
# columns (names wrap, numbers stay whole); `COLUMNS=160 configspec ...` widens them.
# Most of what is printed is the user's text (names, paths, messages quoting values):
# no markup, no emoji codes, so `[red]` or `:x:` in a device name prints as written
# and `[/b]` cannot raise a MarkupError.  A print that wants colour says markup=True
# and escapes what it interpolates.
out = SafeConsole(highlight=False, markup=False, emoji=False)
err = SafeConsole(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)
progress = SafeConsole(stderr=True, highlight=False, markup=False, emoji=False)
"""Spinners for anything slow (stderr; silent with -q and when stderr is not a terminal)."""


class _SafeFormatter(logging.Formatter):
    """Log lines quote names and files too: escaped as the consoles escape them."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record))


def _version(value: bool) -> None:
    if value:
        from configspec_opt.vcs.lock import tool_version

        sys.stdout.write(f"configspec {tool_version()}\n")
        raise typer.Exit(0)


@app.callback()
def _global_options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
    = False,
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True, envvar="CONFIGSPEC_VERBOSE",
        help="More log output on stderr (-v: info, -vv: debug).")] = 0,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", envvar="CONFIGSPEC_QUIET",
        help="Quiet stderr: no progress spinners, no log messages (errors still print).")] = False,
) -> None:
    """Choose draft model, quantisation and speculative length K for every device of an
    edge-cloud speculative-decoding fleet."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose >= 2 else
                                         logging.INFO if verbose == 1 else logging.WARNING)
    handler = logging.StreamHandler()
    handler.setFormatter(_SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    progress.quiet = quiet


def emit_json(data: Any) -> None:
    """Only JSON on stdout: no rich markup, no wrapping.

    ASCII only (json.dumps' default): every control character, DEL and C1 included, is
    written as a \\u escape, so no `--json` output can act on a terminal.
    """
    sys.stdout.write(json.dumps(data, indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def write_shown(text: str) -> None:
    """Text for people written to stdout as is (a unified diff of a spec): escaped as
    the consoles escape, so a file's control characters cannot act on the terminal."""
    sys.stdout.write(terminal_safe(text))


MAX_MESSAGE = 4_000
"""Characters of one error message (a SpecError caps its issues itself): whatever part of
an input a message quotes, a 50 MB input never becomes a 50 MB message."""


def fail(exc: ConfigspecError, as_json: bool) -> NoReturn:
    """Report a user error (as JSON with `--json`, else on stderr) and exit with its code."""
    text = str(exc)
    if not isinstance(exc, SpecError) and len(text) > MAX_MESSAGE:
        text = f"{text[:MAX_MESSAGE]}... ({len(text):,} characters)"
    if as_json:
        payload = exc.to_dict() if isinstance(exc, SpecError) else {
            "status": "error", "error": text}
        emit_json(payload)
    else:
        err.print(f"[red]error:[/red] {escape(text)}", markup=True)
    raise typer.Exit(exc.exit_code)


@contextmanager
def user_errors(as_json: bool = False) -> Iterator[None]:
    """Turn a user's mistake into a message and an exit code, never a traceback."""
    try:
        yield
    except ConfigspecError as exc:
        fail(exc, as_json)


HARD_STOP_EXIT = 1
"""Exit status when a solve is stopped at its hard stop: not solved, as with `time_limit`."""


@contextmanager
def hard_stop(seconds: float | None, as_json: bool = False) -> Iterator[None]:
    """Keep `--time-limit`'s promise when the solver cannot be interrupted.

    HiGHS checks its time limit between phases only; on very large models its
    presolve alone has run for many times the limit.  Past the limit plus a
    margin, a watchdog says so (as JSON with `--json`) and ends the process
    with `HARD_STOP_EXIT`.  Only for commands that write nothing (solve,
    pareto): nothing can be left half-written.
    """
    if seconds is None:
        yield
        return
    from solvers.deadline import stop_after  # lazy: start-up

    done = threading.Event()
    stop = stop_after(seconds)

    def watch() -> None:
        if done.wait(stop):
            return
        message = (f"no answer within the time limit of {seconds:g} s: the solver was still "
                   f"running after {stop:g} s (HiGHS checks its limit between phases only; "
                   "on very large fleets its presolve alone can take longer)")
        if as_json:
            emit_json({"status": "time_limit", "error": message})
        else:
            err.print(f"error: {message}")
        sys.stderr.flush()
        os._exit(HARD_STOP_EXIT)

    threading.Thread(target=watch, name="configspec-hard-stop", daemon=True).start()
    try:
        yield
    finally:
        done.set()


def require_extra(error: type[ExtraNotInstalledError], what: str, *modules: str) -> None:
    """Import `modules` now, before any work; a missing one raises `error` (exit 3, the pip
    command in its one-line message) instead of a ModuleNotFoundError traceback later."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise error(f"{what} needs the '{error.extra}' extra ({exc.name or name} is "
                        "not installed)") from None


def require_db_driver(url: str, what: str) -> None:
    """Import the database driver `url` names now: without it a PostgreSQL URL is a missing
    `postgres` extra (exit 3, the pip command), another driver a usage error naming it,
    instead of a traceback once the server or worker has started."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from configspec_opt.errors import PostgresUnavailableError, UsageError
    from configspec_opt.store.engine import describe_url

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError("--db: not a SQLAlchemy URL (dialect+driver://user@host/name) "
                         "nor a file path") from None
    try:
        parsed.get_dialect().import_dbapi()
    except ArgumentError as exc:  # an unknown dialect or driver
        raise UsageError(f"--db {describe_url(url)}: {exc}") from None
    except ImportError as exc:
        module = (exc.name or "").partition(".")[0]
        if parsed.get_backend_name() == "postgresql" and module == "psycopg":
            raise PostgresUnavailableError(f"{what} with a PostgreSQL database needs the "
                                           "'postgres' extra (psycopg is not installed)"
                                           ) from None
        hint = " (or write postgresql+psycopg://..., the driver of the 'postgres' extra)" \
            if parsed.get_backend_name() == "postgresql" else ""
        raise UsageError(f"--db {describe_url(url)}: its driver ({module or exc}) is not "
                         f"installed{hint}") from None


Command = Callable[..., Any]
