"""`configspec fmt`: one layout for every spec, comments kept.

Canonical YAML here means what ruamel.yaml's round trip writes with these
settings: two-space mappings, sequences indented under their key
(`  - name:`), no line folding, quotes only where YAML needs them, no
trailing whitespace, one final newline.  Key order, flow style (`{2: 0.7}`),
number spelling (`0.90` stays `0.90`), anchors and comments are kept as
written: reordering keys would move comments away from what they describe.
JSON specs get `json.dumps(indent=2)` order-preserving output.

Formatting never changes meaning: the result is parsed again (by the reader
every other command uses) and compared with the input's data.  Output that
does not parse, or parses to other data, is fmt's own bug: it is reported as
such (FormatError), never blamed on the user's file, and nothing is written.
Quotes are written where any YAML reader needs them (`SafeEmitter`: `a:b` in
a flow mapping keeps its quotes).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from configspec_opt.errors import ConfigspecError, SpecError, SpecIssue
from configspec_opt.loader import Source, parse_data
from configspec_opt.spec_files import FileRefused, read_text_file, write_through
from configspec_opt.vcs.yamldump import SafeEmitter

MAX_PASSES = 3


class FormatError(ConfigspecError):
    """The formatter would change what the spec means (a bug: please report it)."""

    exit_code = 2


def _own_bug(what: str) -> FormatError:
    """fmt's own failure: said as such, never as a problem of the user's file."""
    return FormatError(f"not formatted, the file is unchanged: configspec fmt {what}. This "
                       "is a bug in fmt, not in the file; please report it with the file")


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Emitter = SafeEmitter
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = False
    return yaml


def _yaml_once(text: str, name: str) -> str:
    try:
        docs = list(_yaml().load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SpecError([SpecIssue(f"invalid YAML: {exc.problem or exc}", file=name,
                                   line=mark.line + 1 if mark else None,
                                   column=mark.column + 1 if mark else None)]) from None
    except YAMLError as exc:
        raise SpecError([SpecIssue(f"invalid YAML: {exc}", file=name)]) from None
    if len(docs) != 1:
        raise SpecError([SpecIssue(f"a spec is one YAML document (found {len(docs)})",
                                   file=name)])
    buf = io.StringIO()
    _yaml().dump(docs[0], buf)
    return buf.getvalue()


def _tidy(text: str) -> str:
    """No trailing whitespace, no trailing blank lines, one final newline."""
    body = "\n".join(line.rstrip() for line in text.splitlines()).rstrip("\n")
    return body + "\n" if body else ""


def format_text(text: str, name: str = "<spec>") -> str:
    """The canonical form of a spec's text; raises SpecError on a syntax error."""
    src = Source(name, text)
    before = parse_data(src)  # located syntax errors, and the meaning to preserve
    if src.is_json:
        out = json.dumps(before, indent=2, ensure_ascii=False) + "\n"
    else:
        out = _tidy(_yaml_once(text, name))
        for _ in range(MAX_PASSES):  # ruamel settles comment spacing in at most one pass
            again = _tidy(_own_output(_yaml_once, out, name))
            if again == out:
                break
            out = again
        else:
            raise _own_bug("does not settle on one layout")
    if _own_output(lambda text, name: parse_data(Source(name, text)), out, name) != before:
        raise _own_bug("would change the spec's data")
    return out


T = TypeVar("T")


def _own_output(parse: Callable[[str, str], T], text: str, name: str) -> T:
    """Parse what fmt produced; a syntax error there is fmt's, not the user's file's."""
    try:
        return parse(text, name)
    except SpecError as exc:
        found = "; ".join(i.message for i in exc.issues)
        raise _own_bug(f"produced YAML that does not parse ({found})") from None


@dataclass(frozen=True)
class FormatResult:
    """A spec's text before and after formatting."""

    path: Path
    original: str
    formatted: str

    @property
    def changed(self) -> bool:
        """Whether formatting changes the text (what `fmt --check` fails on)."""
        return self.original != self.formatted


def format_file(path: Path, *, write: bool) -> FormatResult:
    """Format one spec; written (atomically, through a symlink to its target) only when
    `write` and the text changes."""
    try:
        text = read_text_file(path)
    except FileRefused as exc:
        raise SpecError([SpecIssue(str(exc), file=str(path))]) from None
    result = FormatResult(path, text, format_text(text, str(path)))
    if write and result.changed:
        write_through(path, result.formatted)
    return result
