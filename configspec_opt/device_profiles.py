"""Per-device measurements (what each device of a fleet pushed), read into columns.

`configspec group` reads a file in which every device of a fleet, not every pool,
has its own numbers: its kind and memory, its network round trip and, per (draft,
quant), its draft speed, power and alpha(K) per target.  A fleet of 100,000 devices
measures ~15 million numbers, so they are not kept as Python objects: each device
becomes one row of floats in the block of devices that measured exactly the same
things (same kind, memory, (draft, quant) pairs, targets and K values), the
`Layout`.  Only devices with the same layout can share a pool (they have the same
candidates), and within a block the grouping works on whole columns.

What the base spec cannot use is left out as it is read, and counted in the
warnings: drafts, quants and targets it does not declare, a target of another
family, K outside search.k, a file larger than the device's memory.  Pure: no I/O.

Two formats (docs/grouping.md):

- JSON Lines, one push per line: ``{"device": ID, "kind": KIND, "memory_gb": GB,
  "rtt_s": S, "profiles": [{"draft", "quant", "draft_tok_s", "power_w"?,
  "acceptance": {TARGET: {K: alpha} | {"per_token": a}}}, ...]}``.  A device may
  push several times: a later line replaces its kind, memory and rtt, and its
  entries for the (draft, quant) pairs it names;
- CSV, one row per (device, draft, quant, target): columns device, kind, draft,
  quant, draft_tok_s, target, and optionally memory_gb, rtt_s, power_w, per_token
  and k1 ... k64 (alpha at that K; an empty cell: not measured).

`memory_gb` and `rtt_s` may be left out where the base spec has a device named like
the kind (its values are taken).  Numbers are held to the spec's own ranges; an
error names the file, line and column (JSON) or field (CSV), and at most
`MAX_ISSUES` are listed.
"""

from __future__ import annotations

import csv
import io
import math
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic_core import from_json

from configspec_opt.errors import ConfigspecError, SpecIssue
from configspec_opt.safe_text import NOT_IN_NAMES, one_line_problem
from configspec_opt.spec import Device, Spec

MAX_ISSUES = 20
Format = Literal["jsonl", "csv"]

# The spec's ranges (spec.TokPerS, Watts, Fraction, Seconds, Gigabytes).
RANGES: dict[str, tuple[float, float]] = {
    "draft_tok_s": (1e-3, 1e7), "power_w": (1e-3, 1e6), "alpha": (0.0, 1.0),
    "rtt_s": (0.0, 86_400.0), "memory_gb": (1e-6, 1e6)}


class DevicesInputError(ConfigspecError):
    """A devices file that cannot be read or is not in the documented format: exit 4, as
    an import's input (README), with every problem located (file:line:column)."""

    exit_code = 4

    def __init__(self, issues: list[SpecIssue], total: int | None = None):
        self.issues = issues
        more = (total or len(issues)) - len(issues)
        text = "\n".join("  " + i.format() for i in issues)
        if more > 0:
            text += f"\n  ... and {more:,} more"
        n = total or len(issues)
        super().__init__(f"invalid devices file ({n:,} problem{'s' if n != 1 else ''}):\n"
                         + text)


@dataclass(frozen=True)
class VariantLayout:
    """What one device measured for one (draft, quant): speed, power if it was measured,
    and per target the K of its alpha table (None: a per-token acceptance)."""

    draft: str
    quant: str
    power: bool
    acceptance: tuple[tuple[str, tuple[int, ...] | None], ...]

    @property
    def width(self) -> int:
        """How many numbers it holds: its columns in a block."""
        return 1 + self.power + sum(1 if ks is None else len(ks) for _, ks in self.acceptance)


@dataclass(frozen=True)
class Layout:
    """Everything a device measured, in a canonical order; devices of one layout have
    the same candidates, so only they may share a pool.

    Columns: rtt_s first, then per variant draft_tok_s, power_w (if measured), alpha
    per target and K (or the per-token probability)."""

    kind: str
    memory_gb: float
    variants: tuple[VariantLayout, ...]

    @property
    def width(self) -> int:
        """Columns of the block: 1 (rtt) plus every variant's."""
        return 1 + sum(v.width for v in self.variants)

    def columns(self) -> list[str]:
        """What each column holds: rtt, speed, power or alpha (the grouping's rules differ)."""
        cols = ["rtt"]
        for v in self.variants:
            cols.append("speed")
            if v.power:
                cols.append("power")
            for _, ks in v.acceptance:
                cols.extend(["alpha"] * (1 if ks is None else len(ks)))
        return cols


@dataclass
class Block:
    """The devices of one layout: ids and a flat row-major array of their numbers."""

    layout: Layout
    ids: list[str] = field(default_factory=list)
    values: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]
    dead: set[int] = field(default_factory=set)  # rows replaced by a later push


@dataclass
class Devices:
    """A devices file as read: blocks by layout, and what was left out and why."""

    blocks: dict[Layout, Block]
    devices: int
    excluded: dict[str, str]  # device id -> why it has no usable measurement
    ignored: dict[str, int]  # reason -> measurements left out


# --- one device's measurements -------------------------------------------


RawKey = tuple[Any, ...]
"""A push's structure as read, before the base spec filters it: kind, memory, then per
profile draft, quant, whether power was given, (target, table keys) pairs and None."""

_LINE_KEYS = frozenset({"device", "kind", "memory_gb", "rtt_s", "profiles"})
_LINE_NEEDS = frozenset({"device", "kind", "profiles"})
_PROFILE_KEYS = frozenset({"draft", "quant", "draft_tok_s", "power_w", "acceptance"})
_PROFILE_NEEDS = frozenset({"draft", "quant", "draft_tok_s", "acceptance"})
_NUMBER = (float, int)  # type(x) in _NUMBER: not bool, which is an int subclass
_FLOAT_OR_INT = frozenset(_NUMBER)
_K = {str(k): k for k in range(1, 65)}


class _Bad(Exception):
    """One problem in one push: message, path and the text to look for its column."""

    def __init__(self, message: str, path: tuple[str | int, ...] = (), near: str | None = None):
        super().__init__(message)
        self.path = path
        self.near = near


class _Issues:
    def __init__(self, name: str):
        self.name = name
        self.shown: list[SpecIssue] = []
        self.total = 0

    def add(self, message: str, line: int | None, column: int | None = None,
            path: tuple[str | int, ...] = ()) -> None:
        self.total += 1
        if len(self.shown) < MAX_ISSUES:
            self.shown.append(SpecIssue(message, path, self.name, line,
                                        None if line is None else column or 1))

    def raise_any(self) -> None:
        if self.total:
            raise DevicesInputError(self.shown, self.total)


class _Base:
    """What of the base spec the reader needs, looked up once."""

    def __init__(self, spec: Spec):
        self.drafts = {d.name: (d.family, {q: v.size_gb for q, v in d.quants.items()})
                       for d in spec.drafts}
        self.targets = {t.name: t.family for t in spec.targets}
        self.kmin, self.kmax = spec.search.k.min, spec.search.k.max
        self.devices: dict[str, Device] = {d.name: d for d in spec.devices}


# --- the fast path: a push to its structure and numbers ----------------------


def _flatten(obj: Any, base: _Base) -> tuple[RawKey, list[float]] | None:
    """A push's structure and its numbers in the order written; None where it is not
    the documented shape (`_explain` then says what is wrong).

    The hot loop of reading 100,000 devices: key sets are checked by their size once
    the required keys were found, and numbers' types once per push."""
    if type(obj) is not dict:
        return None
    try:
        device, kind, profiles = obj["device"], obj["kind"], obj["profiles"]
    except KeyError:
        return None
    memory, rtt = obj.get("memory_gb"), obj.get("rtt_s")
    if (len(obj) != 3 + ("memory_gb" in obj) + ("rtt_s" in obj) or type(kind) is not str
            or type(profiles) is not list or type(device) is not str):
        return None
    if memory is None or rtt is None:
        given = base.devices.get(kind)
        if memory is None:
            if given is None:
                return None
            memory = given.memory_gb
        if rtt is None:
            rtt = given.rtt_s if given is not None else 0.0
    row = [rtt]
    key: list[Any] = [kind, memory]
    for p in profiles:
        try:
            draft, quant, speed, acceptance = (p["draft"], p["quant"], p["draft_tok_s"],
                                               p["acceptance"])
        except (KeyError, TypeError):
            return None
        power = p.get("power_w")
        if len(p) != 4 + ("power_w" in p) or type(acceptance) is not dict:
            return None
        if power is None:
            row.append(speed)
            key += (draft, quant, False)
        else:
            row += (speed, power)
            key += (draft, quant, True)
        for target, table in acceptance.items():
            if type(table) is not dict:
                return None
            key += (target, tuple(table))
            row += table.values()
        key.append(None)
    if not set(map(type, row)) <= _FLOAT_OR_INT:
        return None
    return tuple(key), row


@dataclass
class _Resolved:
    """A raw structure after the base spec: the layout, which raw columns it keeps (in
    its order), every raw column's kind (for the range checks) and what was left out;
    or why the structure is invalid."""

    layout: Layout | None = None
    keep: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    error: bool = False


def _resolve(key: RawKey, base: _Base) -> _Resolved:
    """What the base spec keeps of one raw structure (module docstring)."""
    kind, memory = key[0], key[1]
    out = _Resolved(kinds=["rtt"])
    if (_name_problem(kind) or type(memory) not in _NUMBER
            or not RANGES["memory_gb"][0] <= memory <= RANGES["memory_gb"][1]):
        out.error = True
        return out
    variants: list[tuple[tuple[str, str], VariantLayout, list[int]]] = []
    seen: set[tuple[Any, Any]] = set()
    i, col = 2, 1
    while i < len(key):
        draft, quant, power = key[i:i + 3]
        i += 3
        if _name_problem(draft) or _name_problem(quant) or (draft, quant) in seen:
            out.error = True
            return out
        seen.add((draft, quant))
        cols = [col] + ([col + 1] if power else [])
        out.kinds += ["speed"] + (["power"] if power else [])
        col += len(cols)
        targets: list[tuple[str, tuple[int, ...] | None, list[int]]] = []
        while key[i] is not None:
            target, names = key[i], key[i + 1]
            i += 2
            width = len(names)
            out.kinds += ["alpha"] * width
            span = list(range(col, col + width))
            col += width
            if _name_problem(target) or not names:
                out.error = True
                return out
            if names == ("per_token",):
                entry: tuple[tuple[int, ...] | None, list[int]] = (None, span)
            elif all(n in _K for n in names) and len(set(names)) == width:
                pairs = sorted((_K[n], c) for n, c in zip(names, span)
                               if base.kmin <= _K[n] <= base.kmax)
                if not pairs:
                    out.ignored.append("acceptance tables with no K in search.k")
                    continue
                entry = (tuple(k for k, _ in pairs), [c for _, c in pairs])
            else:
                out.error = True
                return out
            why = _target_problem(base, draft, target)
            if why is not None:
                out.ignored.append(why)
                continue
            targets.append((target, *entry))
        i += 1
        why = _variant_problem(base, draft, quant, memory)
        if why is None and not targets:
            why = "(draft, quant) pairs without acceptance for a target of the spec"
        if why is not None:
            out.ignored.append(why)
            continue
        targets.sort(key=lambda t: t[0])
        variants.append(((draft, quant), VariantLayout(
            draft, quant, bool(power), tuple((t, ks) for t, ks, _ in targets)),
            cols + [c for *_, cs in targets for c in cs]))
    variants.sort(key=lambda v: v[0])
    out.layout = Layout(kind, float(memory), tuple(v for _, v, _ in variants))
    out.keep = [0] + [c for *_, cs in variants for c in cs]
    return out


def _name_problem(value: Any) -> bool:
    return (type(value) is not str or not 1 <= len(value) <= 200
            or one_line_problem(value) is not None)


def _target_problem(base: _Base, draft: str, target: str) -> str | None:
    if draft not in base.drafts:
        return None  # the whole variant goes: counted once, there
    if target not in base.targets:
        return f"acceptance for target {target!r}, which the base spec lacks"
    if base.targets[target] != base.drafts[draft][0]:
        return f"acceptance of {draft} for {target}, another family"
    return None


def _variant_problem(base: _Base, draft: str, quant: str, memory: float) -> str | None:
    if draft not in base.drafts:
        return f"draft {draft!r}, which the base spec lacks"
    sizes = base.drafts[draft][1]
    if quant not in sizes:
        return f"quant {quant!r} of {draft}, which the base spec lacks"
    if sizes[quant] > memory:
        return f"{draft} {quant} larger than the device's memory_gb"
    return None


# --- the slow path: what exactly is wrong with a push --------------------------


def _number(value: Any, what: str, path: tuple[str | int, ...], near: str | None = None
            ) -> float:
    lo, hi = RANGES[what]
    if type(value) not in _NUMBER:
        got = "a boolean" if isinstance(value, bool) else type(value).__name__
        raise _Bad(f"expected a number, got {got}", path, near)
    x = float(value)
    if not lo <= x <= hi:
        raise _Bad(f"{x!r} is outside {lo:g}..{hi:g}", path, near)
    return x


def _name(value: Any, path: tuple[str | int, ...], near: str | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad("expected a non-empty string", path, near)
    if len(value) > 200:
        raise _Bad(f"a name of {len(value):,} characters (at most 200)", path, near)
    problem = one_line_problem(value)
    if problem is not None:
        raise _Bad(problem, path, near)
    return value


def _keys(obj: Any, allowed: frozenset[str], required: frozenset[str],
          path: tuple[str | int, ...], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _Bad(f"{what} must be a JSON object", path)
    for key in obj:
        if key not in allowed:
            raise _Bad(f"unknown key {key!r} (expected {', '.join(sorted(allowed))})",
                       (*path, key), f'"{key}"')
    missing = sorted(required - set(obj))
    if missing:
        raise _Bad(f"missing {', '.join(missing)}", path)
    return obj


def _explain(obj: Any, base: _Base) -> None:
    """Raise the first problem of a push that the fast path did not take: every rule of
    the format, checked one value at a time."""
    obj = _keys(obj, _LINE_KEYS, _LINE_NEEDS, (), "a push")
    _name(obj["device"], ("device",), '"device"')
    kind = _name(obj["kind"], ("kind",), '"kind"')
    if obj.get("memory_gb") is None:
        if kind not in base.devices:
            raise _Bad(f"memory_gb is missing and the base spec has no device named "
                       f"{kind!r} to take it from", ())
    else:
        _number(obj["memory_gb"], "memory_gb", ("memory_gb",), '"memory_gb"')
    if obj.get("rtt_s") is not None:
        _number(obj["rtt_s"], "rtt_s", ("rtt_s",), '"rtt_s"')
    profiles = obj["profiles"]
    if not isinstance(profiles, list):
        raise _Bad("profiles must be a list", ("profiles",), '"profiles"')
    seen = set()
    for i, p in enumerate(profiles):
        path: tuple[str | int, ...] = ("profiles", i)
        p = _keys(p, _PROFILE_KEYS, _PROFILE_NEEDS, path, "a profile")
        pair = (_name(p["draft"], (*path, "draft"), '"draft"'),
                _name(p["quant"], (*path, "quant"), '"quant"'))
        if pair in seen:
            raise _Bad(f"{pair[0]} {pair[1]} is given twice in one push", path)
        seen.add(pair)
        _number(p["draft_tok_s"], "draft_tok_s", (*path, "draft_tok_s"), '"draft_tok_s"')
        if p.get("power_w") is not None:
            _number(p["power_w"], "power_w", (*path, "power_w"), '"power_w"')
        acceptance = p["acceptance"]
        if not isinstance(acceptance, dict):
            raise _Bad("acceptance must be an object {target: {K: alpha}}",
                       (*path, "acceptance"), '"acceptance"')
        for target, table in acceptance.items():
            where = (*path, "acceptance", target)
            _name(target, where, f'"{target}"')
            if not isinstance(table, dict) or not table:
                raise _Bad("expected {K: alpha} or {per_token: a}", where, f'"{target}"')
            if "per_token" in table:
                if len(table) != 1:
                    raise _Bad("per_token stands alone", where, '"per_token"')
                _number(table["per_token"], "alpha", (*where, "per_token"), '"per_token"')
                continue
            for k, value in table.items():
                if k not in _K:
                    raise _Bad(f"K must be a whole number 1..64, not {k!r}", where)
                _number(value, "alpha", (*where, k))


# --- reading a file -----------------------------------------------------------


@dataclass
class _Raw:
    ids: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    values: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]


class _Reader:
    """Pushes to blocks: each push flattened once, each structure resolved once, every
    range checked a block at a time; only a push that fails any of that is read again,
    value by value, to say where."""

    def __init__(self, spec: Spec, name: str):
        self.base = _Base(spec)
        self.issues = _Issues(name)
        self.raw: dict[RawKey, _Raw] = {}
        self.where: dict[str, tuple[RawKey, int]] = {}
        self.pushes: dict[str, list[int]] = {}  # devices pushed more than once: lines
        self.dead: set[tuple[RawKey, int]] = set()  # rows a later push replaced
        self.merged: set[tuple[RawKey, int]] = set()  # rows made of several pushes

    def add(self, obj: Any, line: int, text: Callable[[int], str]) -> tuple[RawKey, int] | None:
        """One push (a JSON line, or a device's CSV rows) read at `line`: its row."""
        flat = _flatten(obj, self.base)
        if flat is None:
            self.explain(obj, line, text)
            return None
        key, row = flat
        device = obj["device"]
        if not 1 <= len(device) <= 200 or NOT_IN_NAMES.search(device):
            self.explain(obj, line, text)
            return None
        if device in self.where:
            self.pushes.setdefault(device, [self.raw[self.where[device][0]].lines[
                self.where[device][1]]]).append(line)
            self.dead.add(self.where[device])
        try:
            raw = self.raw.get(key)
        except TypeError:  # a name that is a list or an object
            self.explain(obj, line, text)
            return None
        if raw is None:
            raw = self.raw[key] = _Raw()
        self.where[device] = (key, len(raw.ids))
        raw.ids.append(device)
        raw.lines.append(line)
        raw.values.extend(row)
        return self.where[device]

    def explain(self, obj: Any, line: int, text: Callable[[int], str]) -> None:
        if len(self.issues.shown) >= MAX_ISSUES:
            self.issues.total += 1  # counted, not located: the first ones say enough
            return
        try:
            _explain(obj, self.base)
        except _Bad as exc:
            self.issues.add(str(exc), line, _column(text(line), exc.near), exc.path)
            return
        self.issues.add("not a push in the documented format (docs/grouping.md)", line)

    def merge(self, parse: Callable[[int], Any], text: Callable[[int], str]) -> None:
        """Devices pushed more than once: their pushes in order, later ones replacing
        kind, memory, rtt and the (draft, quant) entries they name."""
        for device, lines in self.pushes.items():
            self.dead.add(self.where.pop(device))
            merged: dict[str, Any] = {}
            profiles: dict[tuple[Any, Any], Any] = {}
            try:
                for line in lines:
                    obj = parse(line)
                    merged.update({k: v for k, v in obj.items() if k != "profiles"})
                    profiles.update({(p["draft"], p["quant"]): p for p in obj["profiles"]})
            except TypeError:  # a name that is a list or an object: said where
                self.explain(obj, line, text)
                continue
            merged["profiles"] = list(profiles.values())
            at = self.add(merged, lines[-1], text)
            if at is not None:
                self.merged.add(at)

    def blocks(self, text: Callable[[int], str], parse: Callable[[int], Any]) -> Devices:
        """Resolve every structure, check every range, and gather the blocks."""
        blocks: dict[Layout, Block] = {}
        ignored: dict[str, int] = {}
        excluded: dict[str, str] = {}
        for key, raw in self.raw.items():
            # every push is checked, a replaced one too (said at its own line); a merged
            # one only repeats its pushes' numbers, so it is not explained again
            told = [i for i in range(len(raw.ids)) if (key, i) not in self.merged]
            resolved = _resolve(key, self.base)
            if resolved.error:
                for i in told:
                    self.explain(parse(raw.lines[i]), raw.lines[i], text)
                continue
            values = np.frombuffer(raw.values, dtype=np.float64).reshape(
                len(raw.ids), len(resolved.kinds))
            lo = np.array([RANGES[_RANGE_OF[k]][0] for k in resolved.kinds])
            hi = np.array([RANGES[_RANGE_OF[k]][1] for k in resolved.kinds])
            bad = np.flatnonzero(((values < lo) | (values > hi)).any(axis=1))
            for b in set(bad.tolist()) & set(told):
                self.explain(parse(raw.lines[b]), raw.lines[b], text)
            live = [i for i in range(len(raw.ids)) if (key, i) not in self.dead]
            if bad.size or not live:
                continue
            values = values[live]
            for why in resolved.ignored:
                ignored[why] = ignored.get(why, 0) + len(live)
            layout = resolved.layout
            assert layout is not None
            ids = [raw.ids[i] for i in live]
            if not layout.variants:
                excluded.update((d, "no measurement the base spec can use") for d in ids)
                continue
            block = blocks.setdefault(layout, Block(layout))
            block.ids.extend(ids)
            block.values.extend(values[:, resolved.keep].ravel())
        self.issues.raise_any()
        return Devices(blocks, len(self.where), excluded, ignored)


_RANGE_OF = {"rtt": "rtt_s", "speed": "draft_tok_s", "power": "power_w", "alpha": "alpha"}


def _column(line: str, near: str | None) -> int:
    if near is None:
        return 1
    at = line.find(near)
    return at + 1 if at >= 0 else 1


def _json_error(message: str) -> tuple[str, int]:
    """The parser's message without its position, and the column it names."""
    found = re.search(r" at line \d+ column (\d+)$", message)
    if found is None:
        return message, 1
    return message[:found.start()], int(found.group(1))


def read_jsonl(text: str, name: str, spec: Spec) -> Devices:
    """Every device of a JSON Lines file (one push per line), filtered by `spec`."""
    reader = _Reader(spec, name)
    starts = array("q")

    def line_text(n: int) -> str:
        start = starts[n - 1]
        end = text.find("\n", start)
        return text[start:end if end >= 0 else len(text)]

    start, n = 0, 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        n += 1
        starts.append(start)
        line = text[start:end]
        start = end + 1
        if not line.strip():
            continue
        try:
            obj = from_json(line, allow_inf_nan=False)
        except ValueError as exc:
            message, column = _json_error(str(exc))
            reader.issues.add(f"not JSON: {message}", n, column)
            continue
        reader.add(obj, n, line_text)

    def parse(n: int) -> Any:
        return from_json(line_text(n), allow_inf_nan=False)

    reader.issues.raise_any()
    reader.merge(parse, line_text)
    return reader.blocks(line_text, parse)


CSV_REQUIRED = ("device", "kind", "draft", "quant", "draft_tok_s", "target")
CSV_OPTIONAL = ("memory_gb", "rtt_s", "power_w", "per_token")


def read_csv(text: str, name: str, spec: Spec) -> Devices:
    """Every device of a CSV file (one row per device, draft, quant and target): a
    device's rows make one push, read as a JSON line is."""
    reader = _Reader(spec, name)
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(rows)]
    except (StopIteration, csv.Error):
        raise DevicesInputError([SpecIssue("no header row", file=name, line=1, column=1)]
                                ) from None
    cols = {h: i for i, h in enumerate(header)}
    ks = {h: _K[h[1:]] for h in header if h[:1] == "k" and h[1:] in _K}
    missing = [c for c in CSV_REQUIRED if c not in cols]
    unknown = [h for h in header if h not in CSV_REQUIRED + CSV_OPTIONAL and h not in ks]
    if missing or unknown or len(cols) != len(header):
        why = (f"missing column {', '.join(missing)}" if missing else
               f"unknown column {', '.join(repr(u) for u in unknown)} (expected "
               f"{', '.join(CSV_REQUIRED + CSV_OPTIONAL)}, k1 ... k64)" if unknown
               else "a column is named twice")
        raise DevicesInputError([SpecIssue(why, file=name, line=1, column=1)])
    pushes: dict[str, tuple[int, dict[str, Any]]] = {}
    try:
        for row in rows:
            n = rows.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                reader.issues.add(f"{len(row)} fields, the header has {len(header)}", n)
                continue
            try:
                _csv_row(dict(zip(header, (c.strip() for c in row))), ks, pushes, n)
            except _Bad as exc:
                reader.issues.add(str(exc), n, 1, exc.path)
    except csv.Error as exc:
        reader.issues.add(f"not CSV: {exc}", rows.line_num)
    reader.issues.raise_any()
    firsts = {}
    for line, push in pushes.values():
        push["profiles"] = list(push["profiles"].values())
        firsts[line] = push
        reader.add(push, line, lambda _: "")
    return reader.blocks(lambda _: "", firsts.__getitem__)


def _csv_row(cells: dict[str, str], ks: dict[str, int],
             pushes: dict[str, tuple[int, dict[str, Any]]], line: int) -> None:
    """One row into its device's push (a JSON line's shape)."""
    def num(key: str) -> float | None:
        value = cells.get(key, "")
        if not value:
            return None
        try:
            x = float(value)
        except ValueError:
            raise _Bad(f"{value[:40]!r} is not a number", (key,)) from None
        if not math.isfinite(x):
            raise _Bad(f"{value!r} is not a finite number", (key,))
        return x

    device = cells["device"]
    _, push = pushes.setdefault(device, (line, {"device": device, "profiles": {}}))
    for key, value in (("kind", cells["kind"] or None), ("memory_gb", num("memory_gb")),
                       ("rtt_s", num("rtt_s"))):
        if value is None:
            continue
        if push.get(key, value) != value:
            raise _Bad(f"{value!r} differs from the device's earlier row ({push[key]!r})",
                       (key,))
        push[key] = value
    draft, quant, target = cells["draft"], cells["quant"], cells["target"]
    speed, power, per_token = num("draft_tok_s"), num("power_w"), num("per_token")
    if speed is None:
        raise _Bad("draft_tok_s is empty", ("draft_tok_s",))
    table = {h: x for h in ks if (x := num(h)) is not None}
    if (per_token is None) == (not table):
        raise _Bad("give either per_token or alpha columns k1 ... k64", ("per_token",))
    profile = push["profiles"].get((draft, quant))
    if profile is None:
        profile = push["profiles"][(draft, quant)] = {
            "draft": draft, "quant": quant, "draft_tok_s": speed, "acceptance": {},
            **({} if power is None else {"power_w": power})}
    elif profile["draft_tok_s"] != speed or profile.get("power_w") != power:
        raise _Bad("draft_tok_s and power_w must be the same on every row of one "
                   "(device, draft, quant)", ("draft_tok_s",))
    if target in profile["acceptance"]:
        raise _Bad(f"{target} is given twice for {draft} {quant}", ("target",))
    profile["acceptance"][target] = ({"per_token": per_token} if per_token is not None
                                     else {str(ks[h]): x for h, x in table.items()})


def read_devices(text: str, name: str, spec: Spec, fmt: Format | None = None) -> Devices:
    """The devices of `text` (JSON Lines or CSV, by `fmt` or by the name's suffix)."""
    if fmt is None:
        fmt = "csv" if name.lower().endswith(".csv") else "jsonl"
    devices = read_csv(text, name, spec) if fmt == "csv" else read_jsonl(text, name, spec)
    if not devices.blocks:
        left = "; ".join(f"{n:,} {why}" for why, n in sorted(devices.ignored.items()))
        raise DevicesInputError([SpecIssue(
            "no device with a measurement the base spec can use"
            + (f" (left out: {left})" if left else ""), file=name)])
    return devices
