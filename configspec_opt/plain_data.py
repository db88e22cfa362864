"""Large documents, fast: one walk over parsed data, JSON's fast checks and positions.

A 10,000-pool fleet is 30 MB and 2.4 million values; the loader (`loader.parse_data`)
must check every one of them (nesting, numbers no float holds, repeated JSON keys)
and, when something is wrong, say at which line and column.  What is here does that
in loops over the data or C-speed scans of the text, never a recursion a hostile
document could crash, and each piece is held to the slower reference it stands in
for (tests/core/test_load_limits.py):

- `shape`: nesting, numbers and keys in one loop over the collections;
- `json_number_runs_within`: whether any number token could have too many digits;
- `colons_in_strings`: with the text's colons, shows that no JSON key was repeated;
- `json_marks`: positions in JSON text, as ruamel's round-trip parse gives them,
  by skipping every value off the way with json's C decoder.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from bisect import bisect_right
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from configspec_opt.yaml_data import NodeMarks

FLOAT_MAX = sys.float_info.max


@dataclass
class Shape:
    """What `shape` found: keys in all mappings, and the problems the loader refuses."""

    keys: int = 0
    too_deep: bool = False
    bad_number: bool = False  # an int no float holds
    infinite: bool = False


def shape(data: Any, limit: int) -> Shape:
    """Nesting and numbers of parsed data, in a loop over its collections; stops at the
    first collection whose items lie deeper than `limit`.  A value per iteration,
    floats (most of a fleet) tested first: 2.4 million values in 0.7 s."""
    found = Shape()
    if type(data) is not dict and type(data) is not list:
        data = [data]  # a scalar document: its one value, as any other
    keys, bad_number, infinite = 0, False, False
    stack: list[tuple[Any, int]] = [(data, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if type(node) is dict:
            keys += len(node)
            items: Iterable[Any] = node.values()
        else:
            items = node
        if depth >= limit and node:
            found.too_deep = True
            return found
        depth += 1
        for v in items:
            kind = type(v)
            if kind is float:
                if v - v:  # nan for inf and nan, else 0.0
                    infinite = True
            elif kind is dict or kind is list:
                push((v, depth))
            elif kind is int and not -FLOAT_MAX <= v <= FLOAT_MAX:
                bad_number = True
    found.keys, found.bad_number, found.infinite = keys, bad_number, infinite
    return found


_NUMBER_RUNS = bytes(48 if b in b"0123456789+-.eE" else 32 for b in range(256))


def json_number_runs_within(text: str, digits: int) -> bool:
    """No run of number characters longer than `digits`: then no number token has more
    digits than that (a token is such a run).  A byte translation and a search, in C."""
    raw = text.encode("utf-8", "surrogatepass")
    return b"0" * (digits + 1) not in raw.translate(_NUMBER_RUNS)


def colons_in_strings(data: Any) -> int:
    """The colons in every key and string of `data`: in JSON without `\\u003a` escapes,
    the text's colons less these are its key-value pairs (a dropped repeat's too), so
    as many keys as that in the data means no key was repeated."""
    found = 0
    stack = [data]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            found += sum(k.count(":") for k in node)
            stack.extend(node.values())
        elif type(node) is list:
            stack.extend(node)
        elif type(node) is str:
            found += node.count(":")
    return found


def keys_unrepeated(text: str, data: Any, keys: int) -> bool:
    """Whether JSON `text`, parsed into `data` with `keys` keys in all, repeated none."""
    colons = text.count(":")
    if keys == colons:
        return True
    if "\\u003a" in text or "\\u003A" in text:  # a colon no count of the text sees
        return False
    return keys == colons - colons_in_strings(data)


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _Stop(Exception):
    pass


def json_marks(text: str, paths: Collection[tuple[str, ...]]) -> dict[tuple[str, ...], NodeMarks]:
    """`yaml_data.node_marks` for JSON text: where each path is written, found by walking
    only the collections on the way to a wanted path and skipping every other value
    with json's C decoder (a 30 MB fleet: about a second, where libyaml's events take
    15).  Marks are 0-based (line, column) as ruamel's; text that stops being JSON
    ends the walk with what was found before."""
    pending = set(paths)
    on_the_way = {p[:i] for p in pending for i in range(len(p))}
    found: dict[tuple[str, ...], NodeMarks] = {}
    lines = _LineIndex(text)

    def ws(i: int) -> int:
        m = _WS.match(text, i)
        return m.end() if m else i

    def visit(i: int, path: tuple[str, ...], key_at: int | None) -> int:
        ch = text[i:i + 1]
        if path in pending:
            found[path] = NodeMarks(None if key_at is None else lines.mark(key_at),
                                    lines.mark(i), ch in ("{", "["))
            pending.discard(path)
            if not pending:
                raise _Stop
        if path not in on_the_way or ch not in ("{", "["):
            return int(_DECODER.raw_decode(text, i)[1])
        close = "}" if ch == "{" else "]"
        j, index = ws(i + 1), 0
        if text[j:j + 1] == close:
            return j + 1
        while True:
            if ch == "{":
                key, after = _DECODER.raw_decode(text, j)
                colon = ws(after)
                if not isinstance(key, str) or text[colon:colon + 1] != ":":
                    raise _Stop
                j = visit(ws(colon + 1), (*path, key), j)
            else:
                j = visit(j, (*path, str(index)), None)
                index += 1
            j = ws(j)
            sep = text[j:j + 1]
            if sep == close:
                return j + 1
            if sep != ",":
                raise _Stop
            j = ws(j + 1)

    with contextlib.suppress(_Stop, ValueError, IndexError, RecursionError):
        visit(ws(0), (), None)
    return found


class _LineIndex:
    """Offsets to 0-based (line, column), the line starts found once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts: list[int] | None = None

    def mark(self, offset: int) -> tuple[int, int]:
        if self.starts is None:
            self.starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        line = bisect_right(self.starts, offset) - 1
        return line, offset - self.starts[line]
