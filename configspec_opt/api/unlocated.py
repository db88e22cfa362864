"""A spec error whose position cannot be computed is still the client's 422.

The loader turns pydantic errors into file:line:column by walking the YAML
again; if that walk itself fails (a loader bug, e.g. on a key such as '³'
that `str.isdigit` accepts but `int` refuses), the request is still invalid
and pydantic's own messages say why.  The failure is logged (one line, no
traceback to the client) so the bug gets fixed, and the server answers 422
instead of 500.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError

from configspec_opt.errors import ConfigspecError, PathPart, SpecError, SpecIssue

log = logging.getLogger("configspec.api")


def issues_without_location(exc: ValidationError, file: str,
                            prefix: tuple[PathPart, ...] = ()) -> list[SpecIssue]:
    return [SpecIssue(e["msg"], prefix + tuple(e["loc"]), file=file)
            for e in exc.errors(include_url=False)]


@contextmanager
def unlocated_errors_are_invalid(file: str, prefix: tuple[PathPart, ...] = ()) -> Iterator[None]:
    try:
        yield
    except ConfigspecError:
        raise
    except Exception as exc:
        cause = exc.__context__
        if not isinstance(cause, ValidationError):
            raise
        log.error("could not locate validation errors (%s: %s); answering them unlocated",
                  type(exc).__name__, exc)
        raise SpecError(issues_without_location(cause, file, prefix)) from None
