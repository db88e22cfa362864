"""Measured profiles written back into the user's YAML, touching nothing else.

ruamel.yaml's round-trip mode keeps comments, key order, quoting and flow
styles; the file's own indentation is detected and reused, long lines are
never re-wrapped, and an existing entry for the same (device, draft,
quant) is updated key by key so comments attached to it survive.  `git
diff` then shows only the measured numbers.  The new text is validated as
a spec before it replaces the file, atomically.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from configspec_opt.errors import SpecError, SpecIssue
from configspec_opt.files import atomic_write_text
from configspec_opt.loader import parse_spec

KEY_FIELDS = ("device", "draft", "quant")
_FLOW_UNSAFE = re.compile(r"[:#,\[\]{}&*!|>'\"%@`]|^[-?\s]|\s$")
_KEY_ONLY = re.compile(r"^(\s*)[^\s#-][^:#]*:\s*(#.*)?$")


def guess_indents(text: str) -> tuple[int, int]:
    """(mapping indent, dash offset) as the file writes them; (2, 0) when it cannot tell.

    ruamel's own guess returns one indent for both mappings and sequences,
    which turns the common `key:` / `  - item:` / `    field:` style into
    four-space mappings; so the two are measured separately here.
    """
    mapping = offset = None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for prev, line in itertools.pairwise(lines):
        m = _KEY_ONLY.match(prev)
        if not m:
            continue
        step = len(line) - len(line.lstrip()) - len(m.group(1))
        if step < 0:
            continue
        if line.lstrip().startswith("- "):
            offset = step if offset is None else offset
        elif step > 0 and mapping is None:
            mapping = step
        if mapping is not None and offset is not None:
            break
    return mapping or 2, offset or 0


def _rt(text: str) -> tuple[YAML, Any]:
    mapping, offset = guess_indents(text)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 16
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return yaml, yaml.load(text)


def _scalar(v: Any) -> bool:
    return not isinstance(v, (Mapping, list, tuple))


def _leafy(values: Any) -> bool:
    """Only scalars, or lists of scalars: small enough for one flow-style line."""
    return all(_scalar(v) or (isinstance(v, (list, tuple)) and all(map(_scalar, v)))
               for v in values)


def to_yaml_node(value: Any, depth: int = 0) -> Any:
    """Plain data as ruamel nodes; leaf mappings below the entry (alpha tables) in flow style."""
    if isinstance(value, Mapping):
        node = CommentedMap()
        for k, v in value.items():
            node[k] = to_yaml_node(v, depth + 1)
        if depth >= 2 and _leafy(value.values()):
            node.fa.set_flow_style()
        return node
    if isinstance(value, (list, tuple)):
        seq = CommentedSeq(to_yaml_node(v, depth + 1) for v in value)
        if all(map(_scalar, value)):
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, str) and _FLOW_UNSAFE.search(value):
        return SingleQuotedScalarString(value)  # a URL in a flow mapping must be quoted
    return value


def _update_in_place(node: CommentedMap, new: Mapping[str, Any], depth: int) -> None:
    """Change only what differs, recursing into mappings so their comments stay put."""
    for k in [k for k in node if k not in new]:
        del node[k]
    for k, v in new.items():
        old = node.get(k)
        if isinstance(old, CommentedMap) and isinstance(v, Mapping) and not (
                old.fa.flow_style() and not _leafy(v.values())):
            _update_in_place(old, v, depth + 1)
        elif old != v or type(old) is not type(v):
            node[k] = to_yaml_node(v, depth + 1)


def _matches(entry: Any, profile: Mapping[str, Any]) -> bool:
    return isinstance(entry, Mapping) and all(entry.get(f) == profile[f] for f in KEY_FIELDS)


def upsert(seq: CommentedSeq, profiles: Sequence[Mapping[str, Any]]) -> None:
    for prof in profiles:
        for entry in seq:
            if _matches(entry, prof):
                _update_in_place(entry, prof, 1)
                break
        else:
            seq.append(to_yaml_node(dict(prof), 1))


def _is_content(line: str, dash_col: int) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    return not (stripped.startswith("#") and len(line) - len(line.lstrip()) <= dash_col)


def _entry_end(lines: list[str], start: int, dash_col: int) -> int:
    """One past the last line of the sequence item starting at `start` (own lines only)."""
    last = start
    for i in range(start + 1, len(lines)):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        if line.strip() and not line.lstrip().startswith("#") and indent <= dash_col:
            break
        if _is_content(line, dash_col):
            last = i
    return last + 1


def _render_entry(yaml: YAML, entry: Any) -> list[str]:
    """One item rendered as the file's own style would write it under `profiles:`."""
    buf = io.StringIO()
    yaml.dump(CommentedMap([("profiles", CommentedSeq([entry]))]), buf)
    lines = buf.getvalue().splitlines(keepends=True)[1:]
    while lines and not _is_content(lines[-1], 10**6):
        lines.pop()  # comments ruamel attached here belong to the next item: they stay put
    return lines


def upsert_spec_text(text: str, profiles: Sequence[Mapping[str, Any]]) -> str:
    """The spec text with `profiles` added or updated, every other byte left as it was.

    ruamel computes each changed entry (keeping the entry's own comments),
    and only the lines of those entries are spliced into the original text:
    ruamel normalises some spacing (`key:   value`), which must not leak into
    the parts of the file nobody changed.
    """
    yaml, doc = _rt(text)
    if not isinstance(doc, CommentedMap):
        raise SpecError([SpecIssue("a spec is a mapping of keys", file="<spec>")])
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    seq = doc.get("profiles")
    block = isinstance(seq, CommentedSeq) and not (len(seq) == 0 and seq.fa.flow_style())
    if not block or not profiles:
        if not profiles:
            return text
        return _insert_section(yaml, doc, lines, profiles)
    assert isinstance(seq, CommentedSeq)
    n_before = len(seq)
    starts = [seq.lc.item(i)[0] for i in range(n_before)]
    upsert(seq, profiles)
    changed = {i for i in range(n_before) for p in profiles if _matches(seq[i], p)}
    out = list(lines)
    dash_col = len(lines[starts[0]]) - len(lines[starts[0]].lstrip()) if starts else 0
    tail = _entry_end(lines, starts[-1], dash_col) if starts else len(lines)
    appended = [ln for e in list(seq)[n_before:] for ln in _render_entry(yaml, e)]
    out[tail:tail] = appended
    for i in sorted(changed, reverse=True):
        start = starts[i]
        out[start:_entry_end(lines, start, dash_col)] = _render_entry(yaml, seq[i])
    return "".join(out)


def _insert_section(yaml: YAML, doc: CommentedMap, lines: list[str],
                    profiles: Sequence[Mapping[str, Any]]) -> str:
    """No block `profiles:` yet: add one after `devices` (or replace `profiles: []`)."""
    rendered = ["profiles:\n"] + [ln for p in profiles
                                  for ln in _render_entry(yaml, to_yaml_node(dict(p), 1))]
    keys = list(doc)
    if "profiles" in keys:
        at = doc.lc.key("profiles")[0]
        lines[at:at + 1] = rendered
        return "".join(lines)
    after = keys.index("devices") + 1 if "devices" in keys else len(keys)
    at = doc.lc.key(keys[after])[0] if after < len(keys) else len(lines)
    while at > 0 and lines[at - 1].lstrip().startswith("#"):
        at -= 1  # a comment heading the next key stays with it
    lines[at:at] = rendered
    return "".join(lines)


def upsert_profile_file_text(text: str | None, profiles: Sequence[Mapping[str, Any]]) -> str:
    """A separate profile file (`profiles_from`): `{profiles: [...]}` created or updated."""
    yaml, doc = _rt(text) if text and text.strip() else _rt("profiles: []\n")
    if isinstance(doc, CommentedSeq):
        doc = CommentedMap([("profiles", doc)])
    if not isinstance(doc, CommentedMap):
        doc = CommentedMap()
    seq = doc.get("profiles")
    if not isinstance(seq, CommentedSeq) or (len(seq) == 0 and seq.fa.flow_style()):
        seq = CommentedSeq()
        doc["profiles"] = seq
    upsert(seq, profiles)
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


def write_profiles(spec_path: Path, profiles: Sequence[Mapping[str, Any]],
                   out: Path | None = None) -> Path:
    """Write into the spec (or into `out`), validate, replace atomically; returns the path."""
    if out is None:
        new = upsert_spec_text(spec_path.read_text(encoding="utf-8"), profiles)
        parse_spec(new, name=str(spec_path), base_dir=spec_path.parent)
        atomic_write_text(spec_path, new)
        return spec_path
    old = out.read_text(encoding="utf-8") if out.exists() else None
    new = upsert_profile_file_text(old, profiles)
    atomic_write_text(out, new)
    return out
