"""YAML text to plain data, fast, with ruamel.yaml as the reference semantics.

ruamel.yaml's safe loader (even its C path) spends seconds on a multi-megabyte
fleet spec: only the scanner is C, every node is built in Python.  yaml-rs
(a Rust YAML 1.2 parser, pinned) builds the same dicts, lists, ints, floats,
strings, dates and nulls in a tenth of a second.  The two agree on the YAML that
specs are written in (tests/core/test_yaml_data.py checks every committed spec and
generated ones), and wherever they could differ this module defers to ruamel:

- text with any character outside letters, digits, spaces, line breaks and
  `-_.,:/{}[]#'"+=()~` (so no tag `!`, merge key `<<`, anchor, block scalar,
  tab, NEL or other character the two parsers were seen to read differently),
  with a colon not followed by a space (YAML 1.2 allows `{a:b: 1}` in flow
  collections, ruamel's scanner refuses it) or with anything date-like (yaml-rs
  0.1.6 turns even a quoted '2026-11-27T03:21:33+00:00' into a datetime) or
  with an underscore in a word that starts like a number, or a word that starts
  with one (yaml-rs reads `_3` and `_0` as the integers 3 and 0).
  ruamel's round-trip parser locates our errors and rewrites specs, so the two
  must agree on every document the fast path reads.  The comment lines a spec
  starts with (a schema line, a template marker, a description) are not looked
  at: no scalar can begin before them;
- anything yaml-rs refuses, and any document that is not a single mapping
  (several documents, a list, a scalar): ruamel parses it again, so the error a
  user sees (and its line and column) is ruamel's, as before.

Duplicate keys are refused on both paths; anchors and aliases always take
ruamel's, whose shared references keep a billion-laughs document small until
the loader's size check refuses it.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML

try:
    import yaml_rs
except ImportError:  # pragma: no cover - platforms without a wheel keep ruamel
    yaml_rs = None  # type: ignore[assignment]

_DEFER_TO_RUAMEL = re.compile(
    r"""[^-A-Za-z0-9 \n\r_.,:/{}\[\]#'"+=()~]"""  # outside the plain alphabet
    r"|:(?!\s)"                                       # a:b
    r"|\d{4}-\d\d?-\d\d?"                            # a date
    r"""|(?:^|[\s\[{,:'"])[-+.]?(?:_|[0-9][0-9A-Za-z.+-]*_)""",  # _3, 1_000: number-like
    re.MULTILINE)
_HEADER_COMMENTS = re.compile(r"(?:[ \t]*(?:#[^\n]*)?(?:\n|$))*")


def _fast_path_safe(text: str) -> bool:
    body_start = _HEADER_COMMENTS.match(text)
    return _DEFER_TO_RUAMEL.search(text, body_start.end() if body_start else 0) is None


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raises ruamel's (located) errors on bad YAML."""
    if yaml_rs is not None and _fast_path_safe(text):
        try:
            data = yaml_rs.loads(text, parse_datetime=False,
                                 duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error)
        except (ValueError, TypeError, OverflowError):
            data = None
        if isinstance(data, dict):
            return data
    return ruamel_load(text)


def ruamel_load(text: str) -> Any:
    """The reference: ruamel's safe loader (C-accelerated where installed)."""
    return YAML(typ="safe", pure=False).load(text)
