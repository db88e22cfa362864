"""Hostile variants of valid files, for the fuzz tests of every command that reads one.

Each strategy starts from a valid seed (a spec, a lock, an importer's sample) and
damages it the ways a careless editor, a broken pipe or an attacker would:

- bytes: flips, insertions of awkward fragments (NUL, ESC sequences, a lone quote,
  invalid UTF-8), deletions, truncation, a repeated slice;
- numbers: a number of the text replaced by a hostile one (`1` and 400 zeros, 5,000
  digits, NaN, Infinity, `true`, `"54.0"`, a negative, a list);
- lines: a line's value replaced, a line deleted, repeated or inserted, its indent
  changed;
- structure (JSON and YAML): the parsed data mutated (a value replaced by any JSON or
  YAML value, a key deleted or repeated, an unknown key, a value wrapped, the whole
  document of the wrong type) and written back as flow-style text, with the hostile
  numbers and deep nesting spliced in verbatim (Python's own `int`/`json` cannot
  write a 5,000-digit number, and 100,000 levels of nesting would overflow its stack).

Every strategy returns bytes: a file the command is then given.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from hypothesis import strategies as st
from ruamel.yaml import YAML

Format = Literal["yaml", "json", "text"]


@dataclass(frozen=True)
class Raw:
    """Text spliced into the rendered document as written."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """A mapping written with its keys in order, repeats included (a duplicate key)."""

    items: tuple[tuple[Any, Any], ...]


def _nested(depth: int, fmt: Format) -> str:
    if fmt == "json" or depth % 2:
        return "[" * depth + "]" * depth
    return '{"a": ' * depth + "1" + "}" * depth


# Numbers and scalars that have broken readers: each is valid syntax in its format.
_COMMON_NUMBERS = [
    "1" + "0" * 400, "-1" + "0" * 400, "9" * 5000, "-" + "9" * 5000, "1e400", "-1e400",
    "1e-400", "-1", "0", "-0", "-0.0", "12345678901234567890", "0.1" + "1" * 400,
    "4.9e-324", "1.7976931348623157e308",
]
PLAUSIBLE = ["0.5", "2", "3", "100", "1e-6", "0.999", "1.0", "40"]
"""Ordinary values, so that some variants get past the parser to the solver and writers."""
JSON_SCALARS = [*_COMMON_NUMBERS, "NaN", "Infinity", "-Infinity", "true", "false", "null",
                '"54.0"', '"1e400"', '""', '"\\u0000"', '"\\u001b]0;owned\\u0007"',
                '"a\\u0000b"', '"\\ud800"', "[]", "{}", "[1, 2]", '{"a": 1}',
                _nested(50, "json"), _nested(1000, "json"), _nested(100_000, "json")]
YAML_SCALARS = [*_COMMON_NUMBERS, ".nan", ".inf", "-.inf", ".NaN", "NaN", "Infinity", "true",
                "yes", "null", "~", "'54.0'", '"54.0"', "''", '"\\0"', '"\\e]0;owned\\a"',
                '"a\\x00b"', '"\\x9b31m"', "0x1F", "0o17", "1_000", "2001-12-14",
                "2001-12-14T21:59:43.10-05:00", "!!binary aGVsbG8=", "!!python/object:os.system",
                "!!float 1", "!!str", "*undefined", "&a [*a]", "[]", "{}", "[1, 2]", "{a: 1}",
                "|\n  block", '"a: b"', '"javascript:alert(1)"', "'x: {y}'", '"# not a comment"',
                _nested(50, "yaml"), _nested(1000, "yaml"), _nested(100_000, "yaml")]
TEXT_NUMBERS = [*_COMMON_NUMBERS, "NaN", "nan", "+Inf", "-Inf", "inf", "true", "54.0.1",
                "1,000", "0x10", "١٢٣", "1e", "--1", "+-0", ""]

FRAGMENTS = [b"\x00", b"\x1b]0;owned\x07", b"\x1b[2J", b"\x9b", b"\xff\xfe", b"\xc3(",
             b"\xed\xa0\x80", b"\r", b"\t", b"\n", b"'", b'"', b":", b": ", b"- ", b"{",
             b"}", b"[", b"]", b",", b"#", b"&a ", b"*a", b"!!", b"<<: ", b"%YAML 1.1\n",
             b"---\n", b"...\n", b"\\", b"\xe2\x80\xa8", b"\xef\xbb\xbf", b"\x85"]


def _render_key(key: Any, fmt: Format) -> str:
    if (fmt == "yaml" and isinstance(key, (int, float, bool))) or key is None:
        return json.dumps(key)
    return json.dumps(key if isinstance(key, str) else str(key))


def render(value: Any, fmt: Format) -> str:
    """Flow-style JSON (valid YAML too), with Raw text and Pairs' repeated keys kept."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs):
        items = value.items
    elif isinstance(value, dict):
        items = tuple(value.items())
    else:
        items = None
    if items is not None:
        return "{" + ", ".join(f"{_render_key(k, fmt)}: {render(v, fmt)}"
                               for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(v, fmt) for v in value) + "]"
    if isinstance(value, float) and value != value:
        return "NaN" if fmt == "json" else ".nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        sign = "-" if value < 0 else ""
        return sign + ("Infinity" if fmt == "json" else ".inf")
    return json.dumps(value)


def parse_seed(text: str, fmt: Format) -> Any:
    """The seed's data, as a structural mutation starts from it."""
    if fmt == "json":
        return json.loads(text)
    return YAML(typ="safe", pure=True).load(text)


def _scalars(fmt: Format) -> list[str]:
    return JSON_SCALARS if fmt == "json" else YAML_SCALARS


_CONTROL_TEXT = st.text(st.sampled_from(["a", " ", ":", "\x00", "\x1b", "\x07", "\x7f",
                                         "\x85", "\u2028", "\u202e", "é", "[", "'", '"']),
                        max_size=12)


def hostile_values(fmt: Format) -> st.SearchStrategy[Any]:
    """Any JSON/YAML value, hostile numbers and deep nesting included."""
    leaves = st.one_of(
        st.sampled_from(_scalars(fmt)).map(Raw),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(), st.none(), _CONTROL_TEXT,
        st.sampled_from(["54.0", "true", "1e400", "NaN", "rpi5", "llama-3.1-70b", "Q4_K_M"]),
    )
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "name", "k", "2", "per_token", ""]), inner,
                        max_size=3)), max_leaves=6)


def value_paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON/YAML value (keys of mappings, indices of lists), the root first:
    where a mutation may land."""
    found = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            found += value_paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found += value_paths(v, (*prefix, i))
    return found


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


@st.composite
def structural(draw: st.DrawFn, seed: Any, fmt: Format) -> bytes:
    """The seed's data with one to three mutations, written as flow-style text."""
    data = _copy(seed)
    for _ in range(draw(st.integers(1, 3))):
        paths = value_paths(data)
        path = paths[draw(st.integers(0, len(paths) - 1))]
        op = draw(st.sampled_from(["replace", "replace", "delete", "duplicate", "unknown",
                                   "wrap", "empty"]))
        value = draw(hostile_values(fmt))
        if not path:
            data = value if op in ("replace", "delete") else [data]
            continue
        parent, last = _get(data, path[:-1]), path[-1]
        if isinstance(parent, Pairs):
            continue
        if op == "replace":
            parent[last] = value
        elif op == "delete":
            del parent[last]
        elif op == "wrap":
            parent[last] = [parent[last]] if draw(st.booleans()) else {"a": parent[last]}
        elif op == "empty":
            parent[last] = {} if isinstance(parent[last], dict) else []
        elif isinstance(parent, dict):
            key = last if op == "duplicate" else draw(st.sampled_from(["zz_unknown", "", "0"]))
            pairs = (*parent.items(), (key, value if draw(st.booleans()) else parent[last]))
            container = _get(data, path[:-2]) if len(path) >= 2 else None
            if container is None:
                data = Pairs(pairs)
            else:
                container[path[-2]] = Pairs(pairs)
        else:
            parent.insert(last, value)
    return render(data, fmt).encode("utf-8", "surrogatepass")


@st.composite
def byte_mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """The seed's bytes flipped, cut, extended or repeated in one to four places."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "insert", "delete", "truncate",
                                   "repeat"]))
        if op == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            frag = draw(st.one_of(st.sampled_from(FRAGMENTS), st.binary(min_size=1,
                                                                         max_size=8)))
            data[pos:pos] = frag
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 32))]
        elif op == "truncate":
            del data[pos:]
        elif op == "repeat":
            end = min(len(data), pos + draw(st.integers(1, 200)))
            data[pos:pos] = data[pos:end] * draw(st.integers(1, 3))
    return bytes(data)


_NUMBER = re.compile(r"(?<![\w.-])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.-])")
"""A number standing alone (not a part of a name such as llama-3.2-1b)."""


@st.composite
def number_mutated(draw: st.DrawFn, seed: str, tokens: list[str]) -> bytes:
    """One to three numbers of the text replaced by hostile tokens."""
    text = seed
    for _ in range(draw(st.integers(1, 3))):
        spans = [m.span() for m in _NUMBER.finditer(text)]
        if not spans:
            break
        start, end = spans[draw(st.integers(0, len(spans) - 1))]
        text = text[:start] + draw(st.sampled_from(tokens)) + text[end:]
    return text.encode()


def _key_part(line: str) -> str:
    """What stays of a line when its value is replaced: `key: `, `name = `, `metric{...} `."""
    for sep in (": ", " = ", " "):
        cut = line.rfind(sep)
        if cut >= 0:
            return line[:cut + len(sep)]
    return ""


@st.composite
def line_mutated(draw: st.DrawFn, seed: str, tokens: list[str]) -> bytes:
    """One to three lines changed: a value replaced, deleted, repeated, inserted, indented."""
    lines = seed.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        line = lines[i] if lines else ""
        op = draw(st.sampled_from(["value", "value", "delete", "repeat", "insert",
                                   "indent"]))
        if op == "value":
            lines[i:i + 1] = [_key_part(line) + draw(st.sampled_from(tokens))]
        elif op == "delete" and lines:
            del lines[i]
        elif op == "repeat" and lines:
            lines.insert(i, line)
        elif op == "insert":
            lines.insert(i, draw(st.sampled_from(tokens)))
        elif lines:
            lines[i] = draw(st.sampled_from(["", " ", "  ", "\t", "      "])) + line.lstrip()
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def hostile_file(seed: str, fmt: Format) -> st.SearchStrategy[bytes]:
    """Every kind of damage to one seed file, one kind per example."""
    tokens = TEXT_NUMBERS if fmt == "text" else _scalars(fmt)
    kinds: list[st.SearchStrategy[bytes]] = [
        byte_mutated(seed.encode()), number_mutated(seed, tokens),
        number_mutated(seed, PLAUSIBLE + tokens[:8]), line_mutated(seed, tokens)]
    if fmt != "text":
        kinds.append(structural(parse_seed(seed, fmt), fmt))
    return st.one_of(kinds)


def _clip(data: bytes, limit: int) -> str:
    text = data.decode("utf-8", "backslashreplace")
    return repr(text if len(text) <= limit else text[:limit // 2] + " ... " + text[-limit // 2:])


TRICKY_STRINGS = ["a: b", "javascript:alert(1)", "http://h:8000/metrics", "a:b", "x:",
                  "x #y", "#x", "[x]", "{x}", "x, y", "'q'",
                  '"q"', "-x", "? x", "&a", "*a", "!x", "%x", "@x", "`x", "yes", "null", "~",
                  "1e3", "0x10", "", " x ", "\u00e9 \u00fc", "a\\b", ":x", "- x", "| x",
                  "> x", "a\u2028b", "\u202ex"]
"""Text a YAML writer must quote (or escape) to keep it the same string."""
_FREE_TEXT = re.compile(r"(?m)(?:^name|\bplatform): ([^,}\n#]*[^,}\n# ])")


@st.composite
def string_mutated(draw: st.DrawFn, seed: str) -> bytes:
    """A value that may be any text (the spec's name, a pool's platform) replaced by one a
    YAML writer must quote, written double-quoted, single-quoted or plain."""
    spans = [m.span(1) for m in _FREE_TEXT.finditer(seed)]
    start, end = spans[draw(st.integers(0, len(spans) - 1))]
    value = draw(st.sampled_from(TRICKY_STRINGS))
    style = draw(st.sampled_from(["double", "single", "plain"]))
    text = (json.dumps(value) if style == "double" else
            "'" + value.replace("'", "''") + "'" if style == "single" else value)
    return (seed[:start] + text + seed[end:]).encode()


def mild_file(seed: str) -> st.SearchStrategy[bytes]:
    """The seed with ordinary numbers or free text changed: mostly valid, so the commands
    get past the parser to the solver and write their outputs."""
    if not _FREE_TEXT.search(seed):
        return number_mutated(seed, PLAUSIBLE)
    return st.one_of(number_mutated(seed, PLAUSIBLE), string_mutated(seed))


def shown(data: bytes, seed: bytes | None = None, limit: int = 240) -> str:
    """A hostile input as a failure message shows it: where it differs from its seed (the
    seed's text there and its replacement, with a little context), or its start."""
    if seed is None or data == seed:
        return f"{_clip(data, limit)} ({len(data):,} bytes{', the seed' if data == seed else ''})"
    head = 0
    while head < min(len(data), len(seed)) and data[head] == seed[head]:
        head += 1
    tail = 0
    while (tail < min(len(data), len(seed)) - head
           and data[len(data) - 1 - tail] == seed[len(seed) - 1 - tail]):
        tail += 1
    line = seed[:head].count(b"\n") + 1
    context = seed[max(0, head - 40):head]
    return (f"the seed with, at line {line} after {_clip(context, 80)}: "
            f"{_clip(seed[head:len(seed) - tail], limit)} -> "
            f"{_clip(data[head:len(data) - tail], limit)} ({len(data):,} bytes)")
