"""Control characters: refused in names, made visible wherever text reaches a terminal.

A spec, a lock or an imported file is text someone else may have written.  A
control character in it (ESC sequences set a terminal's title, clear its
screen or rewrite what was printed; NUL makes YAML unreadable) must neither
act on the terminal that shows it nor break a file written from it.  Two
rules, kept here so that no call site has to remember them:

- names (pools, drafts, quants, targets, families, the spec's own name) and
  the one-line identifiers beside them (platform, GGUF paths, endpoints,
  ``profiles_from`` entries) refuse them: `one_line_problem` says why;
- every other text the command line prints goes through `terminal_safe`
  (the CLI's consoles and log handler apply it), which writes each control
  character as a visible escape such as ``\\x1b``.
"""

from __future__ import annotations

import re

CONTROL_RANGES = "\x00-\x1f\x7f-\x9f"
"""C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F): Unicode's category Cc."""

LINE_BREAKS = "\u2028\u2029"
"""Unicode's line and paragraph separators: a name is one line wherever it is shown."""

NOT_IN_NAMES = re.compile(f"[{CONTROL_RANGES}{LINE_BREAKS}]")

NOT_IN_NAMES_PATTERN = r"[\u0000-\u001f\u007f-\u009f\u2028\u2029]"
"""`NOT_IN_NAMES` as a JSON Schema pattern (ECMA-262 and Python `re` read it alike)."""

_SHOWN_ESCAPED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # every control but \t, \n
_ALL_ESCAPED = re.compile(f"[{CONTROL_RANGES}{LINE_BREAKS}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def one_line_problem(text: str) -> str | None:
    """Why `text` cannot be a name (a control character or a line break), or None."""
    found = NOT_IN_NAMES.search(text)
    if found is None:
        return None
    code = ord(found.group())
    return (f"U+{code:04X} at character {found.start() + 1} is a control character or "
            "line break: names are printed in terminals and written into files")


def terminal_safe(text: str) -> str:
    """`text` with every control character but tab and newline written as a visible
    escape (``\\x1b``, ``\\x00``, ``\\x9b``): nothing printed can act on a terminal.

    Idempotent (the escapes are printable), so text escaped twice reads the same.
    """
    return _SHOWN_ESCAPED.sub(_escape, text)


def one_line(text: str) -> str:
    """`text` for a single line (a comment in a generated file): tabs, newlines and
    Unicode line separators are escaped too, so it cannot end the line it is on."""
    return _ALL_ESCAPED.sub(_escape, text)
