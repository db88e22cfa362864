"""The limits on what configspec reads, in one place, each raised by an environment variable.

They protect against hostile files (an import input, a lock or spec in an
unreviewed pull request, whatever the HTTP service receives): `/dev/zero`, a
YAML alias bomb, 100,000-deep nesting, a 5,000-digit number.  Every default is
far above what a real spec, lock or measurement holds, and every refusal names
the variable that raises its limit (`Limit.hint`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from configspec_opt.errors import UsageError


@dataclass(frozen=True)
class Limit:
    """One limit: its environment variable, its default, and what it counts."""

    env: str
    default: int
    unit: str

    @property
    def value(self) -> int:
        """The limit now: the environment variable when set, else the default."""
        raw = os.environ.get(self.env, "").strip().replace("_", "")
        if not raw:
            return self.default
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1 or len(raw) > 18:
            raise UsageError(f"{self.env}={os.environ[self.env]!r}: expected a whole number of "
                             f"{self.unit}, at least 1 (default {self.default:,})")
        return value

    def hint(self) -> str:
        """How to raise it, for the end of a refusal."""
        return f"{self.env}=N raises this limit"


FILE_BYTES = Limit("CONFIGSPEC_MAX_FILE_BYTES", 20_000_000, "bytes")
"""A spec, a lock or a profiles_from file: as large as the text a document may expand to."""

IMPORT_BYTES = Limit("CONFIGSPEC_MAX_IMPORT_BYTES", 64 * 1024 * 1024, "bytes")
"""An import's input (a llama-bench file, a log, a metrics scrape, from a file or a URL)."""

VALUES = Limit("CONFIGSPEC_MAX_VALUES", 2_000_000, "values")
CHARS = Limit("CONFIGSPEC_MAX_CHARS", 20_000_000, "characters")
"""What a parsed document may hold, YAML aliases counted by what they expand to."""

DEPTH = Limit("CONFIGSPEC_MAX_DEPTH", 64, "levels")
"""Nesting of JSON and YAML collections (Python's parsers stop near 1,000 in any case)."""

DIGITS = Limit("CONFIGSPEC_MAX_DIGITS", 400, "digits")
"""Digits of one number in JSON or YAML (Python refuses to parse integers past 4,300)."""

ALL = (FILE_BYTES, IMPORT_BYTES, VALUES, CHARS, DEPTH, DIGITS)
