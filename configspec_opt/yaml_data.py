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
  with one (yaml-rs reads `_3` and `_0` as the integers 3 and 0), or with a line
  that starts with BLOCK_COLUMNS spaces and dashes (see below).
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

Both parsers recurse once per nesting level in C and crash the process
(SIGSEGV) on a hostile document: ruamel's C composer near 100,000 levels
(`[[[[...`), yaml-rs near 20,000 levels of block nesting (`- - - - ...`; it
refuses flow nesting past 256 itself).  So yaml-rs only sees text whose lines
start with fewer than BLOCK_COLUMNS spaces and dashes (a block collection starts
after its line's indentation and `- ` indicators, its plain-alphabet text has no
`?`, tab, anchor or tag, and every two levels of block nesting cost at least
one column), and ruamel composes only after libyaml's event stream (a loop, not
a recursion) showed the nesting within limits.DEPTH: the refusal then has a
line and a column.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from configspec_opt.limits import DEPTH, DIGITS

try:
    import yaml_rs
except ImportError:  # pragma: no cover - platforms without a wheel keep ruamel
    yaml_rs = None  # type: ignore[assignment]

BLOCK_COLUMNS = 500
# What sends a text to ruamel (the module's docstring says why), one check each, on the
# text's ASCII bytes (any other character is outside the plain alphabet): one alternation
# of them all tried every pattern at every character (2.5 s on 17 MB), while a search for
# a literal first character skips ahead in C.
_PLAIN_ALPHABET = (b"-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                   b""" \n\r_.,:/{}[]#'"+=()~""")
_COLON_WITHOUT_SPACE = re.compile(rb":(?!\s)")               # a:b
_DATE_AFTER_YEAR = re.compile(rb"-\d\d?-\d")                 # 2026-11-27 from its first '-'
_YEAR_BEFORE = re.compile(rb"\d{4}")
# `(?:^|[\s\[{,:'"])[-+.]?(?:_|[0-9][0-9A-Za-z.+-]*_)` (_3, 1_000: number-like), written
# backwards to start at its '_' and searched in the reversed text: ^ becomes \Z
_NUMBER_UNDERSCORE_REVERSED = re.compile(
    rb"""_(?:[0-9A-Za-z.+-]*[0-9])?[-+.]?(?:[\s\[{,:'"]|\Z)""")
_DEEP_BLOCK = tuple(re.compile(eol + rb"[ -]{%d}" % BLOCK_COLUMNS) for eol in (b"\n", b"\r"))
_DEEP_FIRST_LINE = re.compile(rb"[ -]{%d}" % BLOCK_COLUMNS)
_HEADER_COMMENTS = re.compile(r"(?:[ \t]*(?:#[^\n]*)?(?:\n|$))*")


def _fast_path_safe(text: str) -> bool:
    body_start = _HEADER_COMMENTS.match(text)
    body = text[body_start.end() if body_start else 0:]
    if not body.isascii():
        return False
    raw = body.encode("ascii")
    if raw.translate(None, _PLAIN_ALPHABET) or _COLON_WITHOUT_SPACE.search(raw) \
            or _DEEP_FIRST_LINE.match(raw) \
            or any(deep.search(raw) for deep in _DEEP_BLOCK if deep.pattern[:1] in raw):
        return False
    for dash in _DATE_AFTER_YEAR.finditer(raw):
        if dash.start() >= 4 and _YEAR_BEFORE.match(raw, dash.start() - 4):
            return False
    return b"_" not in raw or _NUMBER_UNDERSCORE_REVERSED.search(raw[::-1]) is None


SAFE_DEPTH = 1_000  # whatever limits.DEPTH says: the C parsers crash 20 times deeper


class DataRefused(ValueError):
    """A document refused for its shape, not its syntax: nested too deeply, or a number
    no float can hold.  `line` and `column` are 1-based, None when unknown."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None,
                 path: tuple[str | int, ...] = ()):
        super().__init__(message)
        self.line, self.column, self.path = line, column, path


def max_depth() -> int:
    """limits.DEPTH, at most SAFE_DEPTH."""
    return min(DEPTH.value, SAFE_DEPTH)


def too_deep(limit: int) -> str:
    """The refusal's text for nesting past `limit` levels."""
    if limit >= SAFE_DEPTH:
        return f"nested deeper than {limit:,} levels, the most configspec parses"
    return f"nested deeper than {limit:,} levels ({DEPTH.hint()})"


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raises ruamel's (located) errors on bad YAML, and
    DataRefused for nesting past limits.DEPTH."""
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
    """The reference: ruamel's safe loader (C-accelerated where installed), once
    `check_depth` has seen the nesting within limits.DEPTH."""
    check_depth(text, max_depth())
    return YAML(typ="safe", pure=False).load(text)


def _events(text: str) -> Iterator[Any]:
    return YAML(typ="safe", pure=False).parse(text)  # type: ignore[no-any-return]


class _Frame:
    """A collection being read: its path, and where in it the next node goes."""

    __slots__ = ("index", "is_key", "key", "mapping", "path", "want_key")

    def __init__(self, path: tuple[str | int, ...], mapping: bool, is_key: bool) -> None:
        self.path, self.mapping, self.is_key = path, mapping, is_key
        self.want_key, self.key, self.index = True, "?", 0

    def child(self) -> tuple[str | int, ...]:
        return (*self.path, self.key if self.mapping else self.index)

    def advance(self, key: Any = None) -> None:
        if not self.mapping:
            self.index += 1
        elif self.want_key:
            self.key, self.want_key = "?" if key is None else str(key), False
        else:
            self.want_key = True


def _nodes(text: str) -> Iterator[tuple[Any, tuple[str | int, ...], int]]:
    """Every value of the document as libyaml's events meet it (keys only if collections):
    the event, its path (`profiles`, 0, `draft_tok_s`) and its depth, in a loop whose
    memory grows with the nesting but never recurses."""
    frames: list[_Frame] = []
    for event in _events(text):
        top = frames[-1] if frames else None
        is_key = top is not None and top.mapping and top.want_key
        if isinstance(event, CollectionStartEvent):
            path = () if top is None else (*top.path, "?") if is_key else top.child()
            yield event, path, len(frames) + 1
            frames.append(_Frame(path, isinstance(event, MappingStartEvent), is_key))
        elif isinstance(event, CollectionEndEvent):
            done = frames.pop()
            if frames:
                frames[-1].advance("?" if done.is_key else None)
        elif isinstance(event, (ScalarEvent, AliasEvent)):
            if top is None:
                continue
            if not is_key:
                yield event, top.child(), len(frames)
            top.advance(event.value if isinstance(event, ScalarEvent) else "*")


def check_depth(text: str, limit: int) -> None:
    """DataRefused at the first collection nested deeper than `limit`, from libyaml's events
    (syntax errors are left to the loader, which meets them again)."""
    for event, path, depth in _nodes(text):
        if depth > limit:
            mark = event.start_mark
            raise DataRefused(too_deep(limit), mark.line + 1, mark.column + 1, path)


Mark = tuple[int, int]
"""A 0-based line and column, as ruamel's round-trip `.lc` gives them."""


@dataclass(frozen=True)
class NodeMarks:
    """Where a value is written: its key's mark (None for a sequence's item), its own
    mark, and whether it is a collection."""

    key: Mark | None
    node: Mark
    collection: bool


_PLAIN_INT_KEY = re.compile(r"[-+]?[0-9][0-9_]*")


def key_text(part: Any) -> str:
    """A path part as `node_marks` compares it: `2`, `"2"` and a YAML key `2` alike."""
    return str(part)


def _key_of(event: Any) -> str:
    value = str(event.value)
    if not event.style and _PLAIN_INT_KEY.fullmatch(value):
        return str(int(value.replace("_", "")))
    return value


_STARTS = frozenset({MappingStartEvent, SequenceStartEvent})
_ENDS = frozenset({MappingEndEvent, SequenceEndEvent})
_NODES = _STARTS | {ScalarEvent, AliasEvent}


class _Place:
    """A collection on the way to a wanted path: where the next node in it goes."""

    __slots__ = ("index", "key", "key_mark", "mapping", "path", "want_key")

    def __init__(self, path: tuple[str, ...], mapping: bool) -> None:
        self.path, self.mapping = path, mapping
        self.want_key, self.key, self.index = mapping, "?", 0
        self.key_mark: Mark | None = None

    def advance(self, was_key: bool) -> None:
        if not self.mapping:
            self.index += 1
        else:
            self.want_key = not was_key


def node_marks(text: str, paths: Collection[tuple[str, ...]]) -> dict[tuple[str, ...], NodeMarks]:
    """Where each of `paths` (parts as `key_text` writes them) is in the text, from
    libyaml's events: what ruamel's round-trip parse gives as `.lc` (the same on every
    path of every committed spec), in about a second per 3 MB where that parse takes
    25 s: the error at the end of a 30 MB fleet is located in seconds, not 12 minutes.

    One pass that only follows the collections on the way to a wanted path (the
    others are counted through), ended once every path is found or known to be
    absent; a path through an alias or a complex key is not found; a syntax error
    ends the pass with what was found before it."""
    pending = set(paths)
    on_the_way = {p[:i] for p in pending for i in range(len(p))}
    found: dict[tuple[str, ...], NodeMarks] = {}
    places: list[_Place] = []
    skip, skipped_key = 0, False
    try:
        for event in _events(text):
            kind = type(event)
            if skip:
                if kind in _STARTS:
                    skip += 1
                elif kind in _ENDS:
                    skip -= 1
                    if not skip and places:
                        places[-1].advance(skipped_key)
                continue
            if kind in _ENDS:
                done = places.pop()
                if done.path in on_the_way:  # what was not found under it is not there
                    pending = {p for p in pending if p[:len(done.path)] != done.path}
                    if not pending:
                        break
                if places:
                    places[-1].advance(False)
                continue
            if kind not in _NODES:
                continue
            top = places[-1] if places else None
            start = kind in _STARTS
            if top is not None and top.want_key:
                if start:  # a complex key: never on the way
                    skip, skipped_key, top.key, top.key_mark = 1, True, "?", None
                else:
                    top.key = _key_of(event) if kind is ScalarEvent else "*"
                    top.key_mark = (event.start_mark.line, event.start_mark.column)
                    top.want_key = False
                continue
            path = () if top is None else (*top.path, top.key if top.mapping else str(top.index))
            if path in pending:
                found[path] = NodeMarks(top.key_mark if top is not None and top.mapping else None,
                                        (event.start_mark.line, event.start_mark.column), start)
                pending.discard(path)
                if not pending:
                    break
            if start:
                if path in on_the_way:
                    places.append(_Place(path, kind is MappingStartEvent))
                else:
                    skip, skipped_key = 1, False
            elif top is not None:
                top.advance(False)
    except Exception:  # a syntax error: the caller reports without the rest
        pass
    return found


_INT = re.compile(r"[-+]?(?:[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+)")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?")
FLOAT_MAX = sys.float_info.max


def number_problem(token: str) -> str | None:
    """Why a number as written cannot be read, or None: more digits than limits.DIGITS,
    or a magnitude no 64-bit float holds (a 400-digit integer breaks every later
    float conversion; Python refuses to parse integers past 4,300 digits)."""
    digits = sum(c.isdigit() for c in token)
    shown = token if len(token) <= 24 else f"{token[:20]}... ({len(token):,} characters)"
    if digits > DIGITS.value:
        return f"the number {shown} has {digits:,} digits, more than {DIGITS.value:,} " \
               f"({DIGITS.hint()})"
    plain = token.replace("_", "")
    try:
        if _INT.fullmatch(token):
            body = plain.lstrip("+-")
            base = 16 if body[:2] in ("0x", "0X") else 8 if body[:2] == "0o" else 10
            value = abs(int(body[2:] if base != 10 else body, base))
            too_big = value > FLOAT_MAX
        else:
            too_big = math.isinf(float(plain))
    except ValueError:
        return None
    return f"the number {shown} is too large: more than {FLOAT_MAX:.4g}, the most a " \
           "64-bit float holds" if too_big else None


def find_scalar(text: str, bad: Callable[[str], bool]) -> DataRefused | None:
    """The first plain scalar value `bad` picks, as a DataRefused with its text as the
    message, its line, column and path; None if none (or if the text does not parse
    that far)."""
    try:
        for event, path, _ in _nodes(text):
            if isinstance(event, ScalarEvent) and not event.style and event.implicit[0] \
                    and bad(event.value):
                mark = event.start_mark
                return DataRefused(event.value, mark.line + 1, mark.column + 1, path)
    except Exception:  # locating is a nicety: the caller reports without a position
        return None
    return None


def bad_number(value: str) -> bool:
    """A plain scalar that reads as a number `number_problem` refuses."""
    return bool(_INT.fullmatch(value) or _FLOAT.fullmatch(value)) \
        and number_problem(value) is not None
