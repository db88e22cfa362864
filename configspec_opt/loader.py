"""Reading a spec: text -> plain data -> validated `Spec`, or a located error.

Valid specs take the fast path (JSON by json's C scanner, or yaml-rs with ruamel as
the reference, see `yaml_data` and `plain_data`): a fleet spec with 100,000
candidates must load in well under a second, a 30 MB one of 10,000 pools in seconds
(docs/limits.md).  Only when something is wrong is the text read again for
positions that turn pydantic's error locations into file:line:column (the rendercv
habit): ruamel's round-trip parse (`.lc`) for a short text, libyaml's events or a
JSON walk for a long one (`Source.marks`), with the same positions.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import json
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from configspec_opt.consistency import Inconsistency, check_consistency
from configspec_opt.errors import PathPart, SpecError, SpecIssue
from configspec_opt.limits import CHARS, DIGITS, VALUES, allowance
from configspec_opt.plain_data import (
    json_marks,
    json_number_runs_within,
    keys_unrepeated,
    shape,
)
from configspec_opt.spec import UNION_TAGS, Profile, Spec
from configspec_opt.spec_files import (
    PROFILES_ROOT_ENV,
    FileRefused,
    allowed_roots,
    confined,
    first_duplicate_key,
    line_column,
    read_text_file,
    repository_root,
)
from configspec_opt.yaml_data import (
    FLOAT_MAX,
    DataRefused,
    NodeMarks,
    bad_number,
    check_depth,
    find_scalar,
    key_text,
    load_yaml,
    max_depth,
    node_marks,
    number_problem,
    too_deep,
)

# The length of a value echoed back in a message, and the problems listed in one
# error: an error message must never be what exhausts memory.  What a document may
# hold is limited in configspec_opt.limits.
MAX_ECHO = 80
MAX_ISSUES = 50
ROUND_TRIP_MAX_CHARS = 50_000  # ruamel round-trip parses this much in about a second
_profiles_adapter: TypeAdapter[list[Profile]] = TypeAdapter(list[Profile])


@dataclass
class Source:
    """One file (or request body) that contributed to a spec."""

    name: str
    text: str
    received: bool = False
    """Text from the network (an HTTP body): held to limits.VALUES and CHARS as they are,
    not to what its text writes (`limits.allowance`)."""

    _rt: Any = field(default=None, repr=False)
    _marks: dict[tuple[str, ...], NodeMarks | None] = field(default_factory=dict, repr=False)

    @property
    def located_by_marks(self) -> bool:
        """Errors in a long text are located by `plain_data.json_marks` or libyaml's events
        (`yaml_data.node_marks`), not from ruamel's round-trip parse (25 s per 3 MB);
        YAML aliases need the latter."""
        return len(self.text) > ROUND_TRIP_MAX_CHARS and (self.is_json or "*" not in self.text)

    def marks(self, paths: Iterable[tuple[str, ...]]) -> dict[tuple[str, ...], NodeMarks | None]:
        """Where `paths` are written (None: not there), found in one pass for those not
        already asked for: ask for every path an error report needs at once."""
        missing = {p for p in paths if p not in self._marks}
        if missing:
            found = (json_marks if self.is_json else node_marks)(self.text, missing)
            self._marks.update({p: found.get(p) for p in missing})
        return self._marks

    @property
    def is_json(self) -> bool:
        """Parse as JSON? By the `.json` suffix, or a text that opens with `{` or `[`."""
        return self.name.endswith(".json") or self.text.lstrip()[:1] in ("{", "[")

    def round_trip(self) -> Any:
        """The text parsed with positions, for error reports only."""
        if self._rt is None:
            try:
                self._rt = YAML(typ="rt").load(self.text)
            except Exception:  # positions are a nicety: never fail the report
                self._rt = {}
        return self._rt


@dataclass
class LoadedSpec:
    """A validated spec with the texts it was built from.

    The sources (the spec, then its includes, in order) are kept so that a later
    error can still be located in them and so that `sha256` ties a result to
    exactly these texts; `warnings` are non-fatal remarks to show the user.
    """

    spec: Spec
    sources: list[Source]
    warnings: list[str]

    @property
    def sha256(self) -> str:
        """Hash of every source's content, in order: identifies what a result came from."""
        h = hashlib.sha256()
        for s in self.sources:
            h.update(s.text.encode())
            h.update(b"\0")
        return h.hexdigest()


ProfileOrigin = tuple[Source, int] | str
"""Where a merged profile came from: entry i of a source's profiles, or only a name (a
profile the HTTP store holds, with no text to point into)."""


def load_spec(path: str | Path, *, allow_includes: bool = True) -> LoadedSpec:
    """Load and validate a spec file (YAML or JSON): a regular file of bounded size."""
    p = Path(path)
    try:
        text = read_text_file(p)
    except FileRefused as exc:
        raise SpecError([SpecIssue(f"{exc}: {p}" if str(exc) == "no such file" else str(exc),
                                   file=str(p))]) from None
    return parse_spec(text, name=str(p), base_dir=p.parent if allow_includes else None)


def parse_spec(text: str, *, name: str = "<spec>", base_dir: Path | None = None,
               root: Path | None = None,
               files: Mapping[str, str] | Mapping[Path, str] | None = None,
               received: bool = False) -> LoadedSpec:
    """Validate spec text.  `base_dir=None` refuses `profiles_from` (HTTP bodies);
    `received` holds it to the limits of what the network sends (`Source.received`).

    `profiles_from` files must lie under `root` (default: the git work tree holding
    base_dir, else base_dir itself) or a directory of CONFIGSPEC_PROFILES_ROOT.
    `files` holds the text of profiles_from files by path (base_dir / the name as
    written), taken instead of the disk and not confined again: an import validates
    the texts it is about to write, a revision's spec its files at that revision.
    """
    with collection_paused():
        return _parse_spec(Source(name, text, received), base_dir, root, files)


def _parse_spec(main: Source, base_dir: Path | None, root: Path | None,
                files: Mapping[str, str] | Mapping[Path, str] | None) -> LoadedSpec:
    data = parse_data(main)
    if not isinstance(data, dict):
        raise SpecError([SpecIssue("a spec is a mapping of keys (version, name, targets, ...)",
                                   file=main.name, line=1, column=1)])
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(validation_issues(exc, main, Spec)) from None

    sources = [main]
    origins: list[ProfileOrigin] = [(main, i) for i in range(len(spec.profiles))]
    if spec.profiles_from:
        if base_dir is None:
            raise SpecError([_locate(main, ("profiles_from",),
                                     "profiles_from names files; it is not allowed here "
                                     "(send the profiles inline)")])
        extra: list[Profile] = list(spec.profiles)
        roots = allowed_roots(root if root is not None else repository_root(base_dir))
        given = {os.path.normpath(p): t for p, t in (files or {}).items()}
        for j, rel in enumerate(spec.profiles_from):
            src, profiles = _load_profile_file(base_dir / rel, main, j, roots,
                                               given.get(os.path.normpath(base_dir / rel)))
            sources.append(src)
            origins.extend((src, i) for i in range(len(profiles)))
            extra.extend(profiles)
        spec = spec.model_copy(update={"profiles": extra})
    return check_merged(spec, sources, origins)


@contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a document becomes objects.

    Parsing and validating a fleet allocate millions of objects and free none, so
    the collector's passes (one per 700 allocations, and full ones as the heap
    grows) walk them again for nothing: a third of the time a 17 MB spec took.
    Left as it was found (another thread may have paused it)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def check_merged(spec: Spec, sources: list[Source], origins: Sequence[ProfileOrigin], *,
                 blame: Callable[[list[Inconsistency]], Mapping[Inconsistency, str]] | None
                 = None) -> LoadedSpec:
    """A spec whose profiles were merged from several places, checked as one spec.

    Names, pools and power data are only complete once merged, so the
    consistency checks run here, not per source; a problem is then reported
    where the user can fix it: a profile's in the file (or store entry) it
    came from, any other at its place in the main source (`sources[0]`), or,
    for the problems `blame` names a culprit for, in that culprit.
    """
    problems, warnings = check_consistency(spec)
    if not problems:
        return LoadedSpec(spec, sources, warnings)
    main = sources[0]
    culprits = blame(problems) if blame is not None else {}
    issues = []
    _prefetch(_where(origins[i], main, p[0]) if (i := _profile_index(p[0])) is not None
              else (main, p[0]) for p in problems[:MAX_ISSUES + 1] if p not in culprits)
    for problem in problems[:MAX_ISSUES + 1]:  # locating costs a parse each
        loc, msg, hint = problem
        if (i := _profile_index(loc)) is not None:
            issues.append(_at_origin(origins[i], main, loc, msg, hint))
        elif problem in culprits:
            issues.append(SpecIssue(msg, loc, culprits[problem], hint=hint))
        else:
            issues.append(_locate(main, loc, msg, hint, shown=loc))
    more = capped(issues)
    if len(problems) > len(issues):
        n_more = len(problems) - MAX_ISSUES
        more[-1] = SpecIssue(f"... and {n_more:,} more problems (fix these first)",
                             file=main.name)
    raise SpecError(more)


def _profile_index(loc: tuple[PathPart, ...]) -> int | None:
    """i for a path into merged profile i (`profiles`, i, ...), else None."""
    if len(loc) >= 2 and loc[0] == "profiles" and isinstance(loc[1], int):
        return loc[1]
    return None


def _where(origin: ProfileOrigin, main: Source,
           loc: tuple[PathPart, ...]) -> tuple[Source, tuple[PathPart, ...]]:
    """The source and the path there of merged profile `loc[1]`'s `loc[2:]` (main for a
    profile from the store, which is never located)."""
    if isinstance(origin, str):
        return main, ()
    src, idx = origin
    return src, (("profiles", idx) if src is main else (idx,)) + loc[2:]


def _at_origin(origin: ProfileOrigin, main: Source, loc: tuple[PathPart, ...], message: str,
               hint: str | None) -> SpecIssue:
    """A problem in merged profile `loc[1]`, placed in the source that profile came from."""
    if isinstance(origin, str):
        return SpecIssue(message, loc, origin, hint=hint)
    src, local = _where(origin, main, loc)
    return _locate(src, local, message, hint, shown=loc)


def parse_data(src: Source) -> Any:
    """Text to plain Python data (dicts, lists, floats), with a located syntax error.

    The one place JSON and YAML are read (specs, profiles files, locks, import
    inputs, HTTP bodies): the nesting, the size a document expands to and every
    number are checked here against configspec_opt.limits, so that nothing later
    meets a RecursionError, a crash of a C parser, or an int no float can hold."""
    if src.is_json:
        return parse_json(src)
    data = _load_yaml(src)
    _check_data(data, src)
    return data


def parse_json(src: Source) -> Any:
    """`parse_data` for text that is JSON whatever its name (a JSONL line, an answer)."""
    data = _plain_json(src)
    if data is _DEFER:
        data = _load_json(src)
        _check_data(data, src)
    return data


_DEFER = object()


def _plain_json(src: Source) -> Any:
    """The data of a JSON text that `_load_json` and `_check_data` would accept as it
    is, read by json's C scanner alone, else _DEFER (to them, for their located error).

    `_load_json`'s hooks (every number, every object) cost half of reading a
    30 MB fleet; this path shows without them that no number token is longer than
    limits.DIGITS characters (so none has more digits), that the data hold no
    integer or infinity a float cannot, that no key was repeated (as many keys as
    colons in the text outside its strings) and that the nesting is within
    limits.DEPTH."""
    text, digits = src.text, DIGITS.value
    n = len(text)
    if src.received and min(VALUES.value, CHARS.value) <= n:
        return _DEFER  # counted value by value, as `_check_data` does
    if not json_number_runs_within(text, digits):
        return _DEFER
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError, _NumberRefused):
        return _DEFER
    found = shape(data, max_depth())
    if found.too_deep or found.bad_number or found.infinite \
            or not keys_unrepeated(text, data, found.keys):
        return _DEFER
    return data


def _load_json(src: Source) -> Any:
    digits = DIGITS.value
    try:
        return json.loads(src.text, parse_constant=_reject_constant,
                          object_pairs_hook=_unique_keys, parse_int=_json_int(digits),
                          parse_float=_json_float(digits))
    except _DuplicateKeyError:
        raise SpecError([_duplicate_key_issue(src)]) from None
    except _NumberRefused as exc:
        token = exc.token
        found = find_scalar(src.text, lambda value: value == token)  # JSON is YAML
        line, column = (found.line, found.column) if found else _json_token_at(src.text, token)
        raise SpecError([SpecIssue(f"invalid JSON: {exc.why}", found.path if found else (),
                                   src.name, line, column)]) from None
    except json.JSONDecodeError as exc:
        raise SpecError([SpecIssue(f"invalid JSON: {exc.msg}", file=src.name,
                                   line=exc.lineno, column=exc.colno)]) from None
    except RecursionError:  # past Python's own limit (~1,000 levels)
        raise SpecError([_json_depth_issue(src, max_depth())]) from None


def _load_yaml(src: Source) -> Any:
    try:
        return load_yaml(src.text)
    except DataRefused as exc:  # nested too deeply: the position says where, not a path
        raise SpecError([SpecIssue(f"invalid YAML: {exc}", file=src.name, line=exc.line,
                                   column=exc.column)]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = " ".join(x for x in (exc.context, exc.problem) if x)
        raise SpecError([SpecIssue(f"invalid YAML: {msg}", file=src.name,
                                   line=mark.line + 1 if mark else None,
                                   column=mark.column + 1 if mark else None)]) from None
    except (YAMLError, ValueError, TypeError) as exc:
        if "integer string conversion" in str(exc):  # Python's 4,300-digit limit
            raise SpecError([_number_issue(src)]) from None
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError([SpecIssue(f"invalid YAML: {_cut(first)}", file=src.name)]) from None
    except RecursionError:
        raise SpecError([SpecIssue("invalid YAML: nested too deeply", file=src.name)]) from None


def _cut(text: str, most: int = 300) -> str:
    return text if len(text) <= most else f"{text[:most]}... ({len(text):,} characters)"


class _NumberRefused(Exception):
    def __init__(self, token: str, why: str):
        super().__init__(why)
        self.token, self.why = token, why


# json's hooks for numbers: refused past limits.DIGITS or a float's range, before Python
# converts them (an int of 5,000 digits raises ValueError there).  They run once per
# number (1.35 million in a 30 MB fleet), so a short token, which can have neither
# problem, is converted at once; `number_problem` judges the rest.
_SHORT_INT = len(str(int(FLOAT_MAX))) - 1


def _refuse(token: str) -> None:
    why = number_problem(token)
    if why is not None:
        raise _NumberRefused(token, why)


def _json_int(digits: int) -> Callable[[str], int]:
    short = min(digits, _SHORT_INT)

    def convert(token: str) -> int:
        if len(token) > short:
            _refuse(token)
        return int(token)
    return convert


def _json_float(digits: int) -> Callable[[str], float]:
    def convert(token: str) -> float:
        if len(token) > digits:
            _refuse(token)
        value = float(token)
        if value - value != 0:  # 1e400: inf
            _refuse(token)
        return value
    return convert


def _json_token_at(text: str, token: str) -> tuple[int | None, int | None]:
    """Where a number (or NaN) json refused is written: the first such token outside a string."""
    pattern = re.compile(r'"(?:[^"\\]|\\.)*"|(?<![\w.+-])' + re.escape(token) + r"(?![\w.])")
    for m in pattern.finditer(text):
        if not m.group().startswith('"'):
            return line_column(text, m.start())
    return None, None


_JSON_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _json_depth_issue(src: Source, limit: int) -> SpecIssue:
    """Nesting past `limit`, at the bracket that goes one level too deep."""
    depth = 0
    for m in _JSON_BRACKETS.finditer(src.text):
        ch = m.group()
        if ch in "[{":
            depth += 1
            if depth > limit:
                line, column = line_column(src.text, m.start())
                return SpecIssue(f"invalid JSON: {too_deep(limit)}", file=src.name, line=line,
                                 column=column)
        elif ch in "]}":
            depth -= 1
    return SpecIssue(f"invalid JSON: {too_deep(limit)}", file=src.name)


def _number_issue(src: Source) -> SpecIssue:
    """A number no float holds (or of too many digits), where the YAML text writes it."""
    found = find_scalar(src.text, bad_number)
    if found is None:
        return SpecIssue("invalid YAML: a number no 64-bit float holds", file=src.name)
    return SpecIssue(f"invalid YAML: {number_problem(str(found))}", found.path, src.name,
                     found.line, found.column)


def _reject_constant(name: str) -> float:
    raise _NumberRefused(name, f"{name} is not a number JSON may hold")


class _DuplicateKeyError(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a repeated key (json.loads would keep the last silently;
    YAML's loaders refuse it, and a spec must not mean two things)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        raise _DuplicateKeyError
    return data


def _duplicate_key_issue(src: Source) -> SpecIssue:
    found = first_duplicate_key(src.text)
    if found is None:  # cannot happen for text json.loads parsed; keep a message anyway
        return SpecIssue("invalid JSON: a key appears twice in one object", file=src.name)
    key, at, first = found
    line, column = line_column(src.text, at)
    first_line, first_column = line_column(src.text, first)
    return SpecIssue(f"invalid JSON: duplicate key {echo(key)} (first at line {first_line}, "
                     f"column {first_column})", file=src.name, line=line, column=column)


def _check_data(data: Any, src: Source) -> None:
    """Refuse alias bombs, absurd nesting and numbers no float holds before anything
    walks the data (JSON's numbers were checked as they were read).

    What a document may hold is `limits.allowance`: for your own file at least what
    its text writes, so only a YAML document with aliases (`*`) can exceed it and
    only such a document, or received text, is counted value by value."""
    n = len(src.text)
    budget = allowance(VALUES, n, received=src.received)
    chars = allowance(CHARS, n, received=src.received)
    can_expand = not src.is_json and "*" in src.text
    if can_expand or min(budget, chars) <= n:
        _count(data, src, budget, chars)
        return
    limit = max_depth()
    found = shape(data, limit)
    if found.too_deep:
        raise SpecError([_depth_issue(src, limit)])
    if found.bad_number:
        raise SpecError([_number_issue(src)])
    _check_infinite(found.infinite, src)


def _count(data: Any, src: Source, budget: int, chars: int) -> None:
    """Every value counted against `budget` and every string's characters against
    `chars`, YAML aliases by what they expand to; nesting and numbers as `_walk`."""
    limit = max_depth()
    values_cap, chars_cap = budget, chars
    stack: list[tuple[Any, int]] = [(data, 0)]
    infinite = False
    while stack:
        node, depth = stack.pop()
        budget -= 1
        kind = type(node)
        if kind is str:
            chars -= len(node)
        elif kind is dict:
            chars -= sum(len(k) for k in node if isinstance(k, str))
        elif kind is int and not -FLOAT_MAX <= node <= FLOAT_MAX:
            raise SpecError([_number_issue(src)])
        elif kind is float and node - node != 0:
            infinite = True
        if budget < 0 or chars < 0:
            what = (f"{values_cap:,} values ({VALUES.hint()})" if budget < 0
                    else f"{chars_cap:,} characters ({CHARS.hint()})")
            raise SpecError([SpecIssue(
                f"the document expands to more than {what}; YAML aliases that multiply?",
                file=src.name)])
        if depth > limit:
            raise SpecError([_depth_issue(src, limit)])
        if kind is dict:
            stack.extend((v, depth + 1) for v in node.values())
        elif kind is list:
            stack.extend((v, depth + 1) for v in node)
    _check_infinite(infinite, src)


def _check_infinite(infinite: bool, src: Source) -> None:
    # `.inf` and `.nan` as written are the spec's validation's to judge; a literal that
    # overflowed to inf (1.0e400) is refused here
    if infinite and not src.is_json and find_scalar(src.text, bad_number) is not None:
        raise SpecError([_number_issue(src)])


def _depth_issue(src: Source, limit: int) -> SpecIssue:
    if src.is_json:
        return _json_depth_issue(src, limit)
    try:
        check_depth(src.text, limit)
    except DataRefused as exc:
        return SpecIssue(f"invalid YAML: {exc}", file=src.name, line=exc.line, column=exc.column)
    except Exception:  # positions are a nicety: say what is wrong without one
        pass
    return SpecIssue(too_deep(limit) + " (counting what YAML aliases repeat)", file=src.name)


def _load_profile_file(path: Path, main: Source, j: int, roots: list[Path],
                       text: str | None = None) -> tuple[Source, list[Profile]]:
    """A `profiles_from` file, confined to `roots` (or its `text`, given); its content is
    never echoed.

    The file may be anything the spec names (a .env, a key), so its errors give
    positions and types, not values.
    """
    src = Source(str(path), _read_profile_file(path, main, j, roots) if text is None else text)
    try:
        data = parse_data(src)
    except SpecError as exc:
        raise SpecError([replace(i, message=_redact(i.message)) for i in exc.issues]) from None
    prefix: tuple[PathPart, ...] = ()
    if isinstance(data, dict) and set(data) == {"profiles"}:
        data, prefix = data["profiles"], ("profiles",)
    if not isinstance(data, list):
        raise SpecError([SpecIssue(
            f"not a profiles file: expected a list of profiles, or a mapping whose only "
            f"key is 'profiles' (found {_kind(data)})", file=src.name, line=1, column=1)])
    try:
        return src, _profiles_adapter.validate_python(data)
    except ValidationError as exc:
        issues = validation_issues(exc, src, None, prefix, echo_values=False)
        raise SpecError(issues) from None


def _read_profile_file(path: Path, main: Source, j: int, roots: list[Path]) -> str:
    where = ("profiles_from", j)
    if confined(path, roots) is None:
        shown = ", ".join(str(r) for r in roots)
        raise SpecError([_locate(main, where, f"{echo(os.path.normpath(path))} is outside {shown} "
                                 "(the spec's git work tree, else its directory)",
                                 f"move the file there, or allow its directory with "
                                 f"{PROFILES_ROOT_ENV}=DIR")])
    try:
        return read_text_file(path)
    except FileRefused as exc:
        issue = _locate(main, where, f"cannot read {echo(str(path))}: {exc}")
        raise SpecError([issue]) from None


_QUOTED = re.compile(r"\"[^\"\n]*\"|'[^'\n]*'")


def _redact(message: str) -> str:
    """A parser's message without what it quotes from the file (ruamel quotes values)."""
    return _QUOTED.sub("'...'", message)


def _kind(data: Any) -> str:
    names = {dict: "a mapping", str: "a string", type(None): "an empty document",
             bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(data), type(data).__name__)


# --- error locations -------------------------------------------------------


def validation_issues(
    exc: ValidationError,
    src: Source,
    model: type[BaseModel] | None,
    prefix: tuple[PathPart, ...] = (),
    *,
    echo_values: bool = True,
) -> list[SpecIssue]:
    """Pydantic errors as located issues, with 'did you mean' for unknown keys.

    `echo_values=False` leaves out the offending values (files a spec merely names)."""
    issues = []
    errors = exc.errors(include_url=False)
    locs = [prefix + _spec_path(err["loc"]) for err in errors]
    _prefetch((src, loc) for loc in locs[:MAX_ISSUES])
    for n, (err, loc) in enumerate(zip(errors, locs, strict=True)):
        kind = err["type"]
        if n >= MAX_ISSUES:  # counted by `capped`, never shown: not located
            issues.append(SpecIssue(err["msg"], loc, src.name))
        elif loc and loc[-1] == "[key]":  # a mapping's key (a quant's name) is at fault
            issues.append(_locate(src, loc[:-1], _key_message(err, echo_values), at_key=True,
                                  shown=loc[:-1]))
        elif kind == "extra_forbidden":
            key = loc[-1]
            allowed = _fields_at(model, loc[:-1]) if model else _profile_fields(loc[len(prefix):])
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else (
                f"allowed: {', '.join(allowed)}" if allowed else None)
            issues.append(_locate(src, loc, f"unknown key '{echo(key, quote=False)}'", hint,
                                  at_key=True))
        elif kind == "missing":
            issues.append(_locate(src, loc[:-1], f"missing required key '{loc[-1]}'",
                                  shown=loc[:-1]))
        else:
            got = err.get("input")
            msg = err["msg"]
            if echo_values and not isinstance(got, (dict, list)) and kind != "value_error":
                msg += f" (got {echo(got)})"
            issues.append(_locate(src, loc, msg))
    return capped(issues)


def _spec_path(loc: Sequence[PathPart]) -> tuple[PathPart, ...]:
    """A pydantic error's location as a path in the spec: without the tags of the
    discriminated unions (a tag is followed by a field that may share its name)."""
    path: list[PathPart] = []
    after_tag = False
    for part in loc:
        if part in UNION_TAGS and not after_tag:
            after_tag = True
            continue
        after_tag = False
        path.append(part)
    return tuple(path)


def _key_message(err: Any, echo_values: bool) -> str:
    shown = f" {echo(err.get('input'))}" if echo_values else ""
    return f"key{shown}: {err['msg']}"


def echo(value: Any, quote: bool = True) -> str:
    """A value as a message shows it: its repr, cut to MAX_ECHO characters."""
    text = repr(value) if quote else str(value)
    if len(text) <= MAX_ECHO:
        return text
    return f"{text[:MAX_ECHO]}... ({len(text):,} characters)"


def capped(issues: list[SpecIssue]) -> list[SpecIssue]:
    """At most MAX_ISSUES problems, and how many more there were."""
    if len(issues) <= MAX_ISSUES:
        return issues
    more = len(issues) - MAX_ISSUES
    return [*issues[:MAX_ISSUES],
            SpecIssue(f"... and {more:,} more problem{'s' if more > 1 else ''} "
                      "(fix these first)", file=issues[0].file)]


def _profile_fields(loc: tuple[PathPart, ...]) -> list[str]:
    return list(Profile.model_fields) if len(loc) == 2 else []


def _fields_at(model: type[BaseModel] | None, loc: Sequence[PathPart]) -> list[str]:
    """Field names of the model found by walking `loc` through type annotations."""
    tp: Any = model
    for part in loc:
        tp = _step(tp, part)
        if tp is None:
            return []
    tp = _unwrap_model(tp)
    return list(tp.model_fields) if tp is not None else []


def _unwrap_model(tp: Any) -> type[BaseModel] | None:
    for cand in _flatten(tp):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


def _flatten(tp: Any) -> Iterable[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        yield from _flatten(typing.get_args(tp)[0])
    elif origin in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            yield from _flatten(a)
    else:
        yield tp


def _step(tp: Any, part: PathPart) -> Any:
    for cand in _flatten(tp):
        if (isinstance(cand, type) and issubclass(cand, BaseModel) and isinstance(part, str)
                and part in cand.model_fields):
            return cand.model_fields[part].annotation
        origin = typing.get_origin(cand)
        if origin is list and isinstance(part, int):
            return typing.get_args(cand)[0]
        if origin is dict:
            return typing.get_args(cand)[1]
    return None


def _locate(
    src: Source,
    loc: tuple[PathPart, ...],
    message: str,
    hint: str | None = None,
    *,
    at_key: bool = False,
    shown: tuple[PathPart, ...] | None = None,
) -> SpecIssue:
    """Find `loc` in the text (the deepest part of it that is there) and return a
    positioned issue: a value's own position, a collection's or a wanted key's at its
    key."""
    line = col = None
    parent_pos = (_event_position if src.located_by_marks else _rt_position)(src, loc, at_key)
    if parent_pos is not None:
        line, col = parent_pos[0] + 1, parent_pos[1] + 1
    return SpecIssue(message, shown if shown is not None else loc, src.name, line, col, hint)


def _rt_position(src: Source, loc: tuple[PathPart, ...], at_key: bool) -> tuple[int, int] | None:
    node = src.round_trip()
    parent_pos: tuple[int, int] | None = (0, 0)
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        key = _find_key(node, part)
        if key is _MISSING:
            break
        pos = _position(node, key, want_key=at_key and last)
        if pos is not None:
            parent_pos = pos
        node = node[key]
    return parent_pos


def _event_position(src: Source, loc: tuple[PathPart, ...], at_key: bool) -> tuple[int, int]:
    """`_rt_position` from `Source.marks`."""
    parts = tuple(key_text(p) for p in loc)
    marks = src.marks(parts[:i + 1] for i in range(len(parts)))
    position = (0, 0)
    for i in range(len(parts)):
        found = marks.get(parts[:i + 1])
        if found is None:
            break
        wants_key = found.collection or (at_key and i == len(parts) - 1)
        position = found.key if found.key is not None and wants_key else found.node
    return position


def _prefetch(where: Iterable[tuple[Source, tuple[PathPart, ...]]]) -> None:
    """Every path a report is about to locate, found in one pass per long source."""
    by_source: dict[int, tuple[Source, list[tuple[str, ...]]]] = {}
    for src, loc in where:
        if src.located_by_marks:
            parts = tuple(key_text(p) for p in loc)
            by_source.setdefault(id(src), (src, []))[1].extend(
                parts[:i + 1] for i in range(len(parts)))
    for src, paths in by_source.values():
        src.marks(paths)


_MISSING = object()


def _find_key(node: Any, part: PathPart) -> Any:
    if isinstance(node, Mapping):
        for cand in (part, str(part)) + ((int(part),) if str(part).isdecimal() else ()):
            if cand in node:
                return cand
        return _MISSING
    if isinstance(node, Sequence) and not isinstance(node, str) and isinstance(part, int):
        return part if 0 <= part < len(node) else _MISSING
    return _MISSING


def _position(node: Any, key: Any, *, want_key: bool) -> tuple[int, int] | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if isinstance(node, Mapping):
            value = node[key]
            if not want_key and not isinstance(value, (Mapping, list)):
                return tuple(lc.value(key))
            return tuple(lc.key(key))
        return tuple(lc.item(key))
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
