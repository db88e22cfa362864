"""The limits on what configspec reads, in one place, each raised by an environment variable.

Two kinds of input, two policies (docs/limits.md):

- **your own files**: what you name on the command line or pass to the Python API
  (a spec, its `profiles_from` files, a lock, a spec or lock at a git revision of
  your repository, an import input on disk).  They are read however large they are:
  a 10,000-pool fleet is 30 MB of YAML, 100,000 pools 300 MB.  What still protects
  a command run on a file nobody reviewed (`configspec check` in CI on a pull
  request) is what does not depend on size: only regular files are read (never
  `/dev/zero`, a FIFO or a directory), `profiles_from` stays in the repository, a
  YAML document may not hold more than its own text writes unless within
  VALUES/CHARS (an alias bomb is refused, a big file is not), and DEPTH and DIGITS
  keep the parsers from crashing.  FILE_BYTES caps them all when set (such a CI
  job can set it); unset, there is no cap.
- **what is received**: HTTP request bodies (`configspec serve --max-body`, 4 MiB by
  default, then VALUES and CHARS as hard limits) and import inputs fetched from a
  URL (IMPORT_BYTES).  The shared service must not let one request exhaust it.

Every refusal names the variable (or option) that raises its limit (`Limit.hint`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from configspec_opt.errors import UsageError

NO_LIMIT = sys.maxsize
"""A limit's default when it is off unless set (FILE_BYTES)."""


@dataclass(frozen=True)
class Limit:
    """One limit: its environment variable, its default, and what it counts."""

    env: str
    default: int
    unit: str

    @property
    def value(self) -> int:
        """The limit now: the environment variable when set, else the default (NO_LIMIT
        for a limit that is off unless set)."""
        raw = os.environ.get(self.env, "").strip().replace("_", "")
        if not raw:
            return self.default
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1 or len(raw) > 18:
            default = "none" if self.default == NO_LIMIT else f"{self.default:,}"
            raise UsageError(f"{self.env}={os.environ[self.env]!r}: expected a whole number of "
                             f"{self.unit}, at least 1 (default {default})")
        return value

    def hint(self) -> str:
        """How to raise it, for the end of a refusal."""
        return f"{self.env}=N raises this limit"


FILE_BYTES = Limit("CONFIGSPEC_MAX_FILE_BYTES", NO_LIMIT, "bytes")
"""Your own files (a spec, a lock, a profiles_from file, an import input on disk): no
cap unless set."""

IMPORT_BYTES = Limit("CONFIGSPEC_MAX_IMPORT_BYTES", 64 * 1024 * 1024, "bytes")
"""An import input fetched from a URL."""

VALUES = Limit("CONFIGSPEC_MAX_VALUES", 2_000_000, "values")
CHARS = Limit("CONFIGSPEC_MAX_CHARS", 20_000_000, "characters")
"""What a parsed document may hold, YAML aliases counted by what they expand to: a hard
limit on what is received, and on your own files a limit on what aliases add (see
`allowance`)."""

DEPTH = Limit("CONFIGSPEC_MAX_DEPTH", 64, "levels")
"""Nesting of JSON and YAML collections (Python's parsers stop near 1,000 in any case)."""

DIGITS = Limit("CONFIGSPEC_MAX_DIGITS", 400, "digits")
"""Digits of one number in JSON or YAML (Python refuses to parse integers past 4,300)."""

ALL = (FILE_BYTES, IMPORT_BYTES, VALUES, CHARS, DEPTH, DIGITS)


def allowance(limit: Limit, text_chars: int, *, received: bool) -> int:
    """How many values (or characters) a document of `text_chars` characters may hold.

    Received text: `limit`.  Your own file: at least as many as its text has
    characters (plus one, for an empty document's null), since without YAML aliases
    no document holds more values or characters than it writes; so a large file is
    never refused for its size here, while aliases that multiply a small file are."""
    return limit.value if received else max(limit.value, text_chars + 1)
