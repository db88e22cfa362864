"""The typer application and the error handling every command shares."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from configspec_opt.errors import ConfigspecError, SpecError

app = typer.Typer(
    name="configspec",
    help="Choose draft model, quantisation and speculative length K for every device of an "
    "edge-cloud speculative-decoding fleet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Wide tables when piped (CI logs), the terminal's width otherwise.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(data: Any) -> None:
    """Only JSON on stdout: no rich markup, no wrapping."""
    sys.stdout.write(json.dumps(data, indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def fail(exc: ConfigspecError, as_json: bool) -> NoReturn:
    if as_json:
        payload = exc.to_dict() if isinstance(exc, SpecError) else {
            "status": "error", "error": str(exc)}
        emit_json(payload)
    else:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
    raise typer.Exit(exc.exit_code)


@contextmanager
def user_errors(as_json: bool = False) -> Iterator[None]:
    """Turn a user's mistake into a message and an exit code, never a traceback."""
    try:
        yield
    except ConfigspecError as exc:
        fail(exc, as_json)


Command = Callable[..., Any]
