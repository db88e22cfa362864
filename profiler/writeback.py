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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from configspec_opt.errors import SpecError, SpecIssue
from configspec_opt.files import write_output
from configspec_opt.loader import parse_spec
from configspec_opt.spec_files import FileRefused, read_text_file

KEY_FIELDS = ("device", "draft", "quant")
_FLOW_UNSAFE = re.compile(r"[:#,?\[\]{}&*!|>'\"%@`]|^[-\s]|\s$")
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
    """Update each profile's entry in `seq` in place (comments and layout kept), else append it.

    Entries are matched on (device, draft, quant); values that did not change
    are left untouched, so their original spelling in the file survives.
    """
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


def _read(path: Path) -> str:
    """A spec or profiles file through the one reader; a refusal is the file's SpecError."""
    try:
        return read_text_file(path)
    except FileRefused as exc:
        raise SpecError([SpecIssue(f"cannot read {path}: {exc}", file=str(path))]) from None


def _validator(spec_path: Path) -> Callable[[str], None]:
    """The spec's new text must load before the writer touches the file."""
    def validate(text: str) -> None:
        parse_spec(text, name=str(spec_path), base_dir=spec_path.parent)
    return validate


def write_profiles(spec_path: Path, profiles: Sequence[Mapping[str, Any]],
                   out: Path | None = None) -> Path:
    """Write into the spec (or into `out`), validated first, replaced atomically by the
    one writer; returns the path."""
    if out is None:
        new = upsert_spec_text(_read(spec_path), profiles)
        write_output(spec_path, new, validate=_validator(spec_path))
        return spec_path
    old = _read(out) if out.exists() else None
    write_output(out, upsert_profile_file_text(old, profiles))
    return out


# --------------------------------------------------------------------------- targets[].verifier


def _block_end(lines: list[str], start: int, col: int) -> int:
    """One past the last non-comment line of the block whose key line is `start`.

    The block is the key's line and every following line indented deeper than
    `col`; comment lines at its end stay where they are (they head what follows).
    """
    last = start
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        if not stripped:
            continue
        indent = len(lines[i]) - len(lines[i].lstrip())
        if indent <= col and not stripped.startswith("#"):
            break
        if not stripped.startswith("#"):
            last = i
    return last + 1


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types (1 is not 1.0), mappings compared key by key."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b) and _kind(a) == _kind(b)


def _kind(v: Any) -> type:
    """bool, int, float or str for ruamel's scalar subclasses (ScalarFloat is a float)."""
    for t in (bool, int, float, str):
        if isinstance(v, t):
            return t
    return type(v)


def _render_key(yaml: YAML, key: Any, node: Any, col: int) -> list[str]:
    """`key: node` as the file's style writes it, indented to column `col`."""
    buf = io.StringIO()
    yaml.dump(CommentedMap([(key, node)]), buf)
    lines = buf.getvalue().splitlines(keepends=True)
    while lines and not _is_content(lines[-1], 10**6):
        lines.pop()
    return [(" " * col + ln) if ln.strip() else ln for ln in lines]


def _find_target(doc: CommentedMap, name: str) -> tuple[CommentedSeq, int]:
    targets = doc.get("targets")
    if isinstance(targets, CommentedSeq):
        for i, item in enumerate(targets):
            if isinstance(item, Mapping) and item.get("name") == name:
                return targets, i
    raise SpecError([SpecIssue(f"no target named '{name}'", path=("targets",),
                               file="<spec>")])


def upsert_verifier_text(text: str, target: str, verifier: Mapping[str, Any]) -> str:
    """The spec text with `targets[name=target].verifier` updated from `verifier`, minimally.

    The keys of `verifier` are set (a mapping given replaces the old one whole, its
    rows updated in place); keys it does not name are kept.  In an existing block
    `verifier:` only the lines of values that changed are replaced, so comments on
    unchanged lines survive byte for byte; a missing `verifier:` is appended to the
    target's entry.  Flow-style targets fall back to a full round-trip dump.
    """
    yaml, doc = _rt(text)
    if not isinstance(doc, CommentedMap):
        raise SpecError([SpecIssue("a spec is a mapping of keys", file="<spec>")])
    seq, idx = _find_target(doc, target)
    item = seq[idx]
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if seq.fa.flow_style() or item.fa.flow_style():
        old = item.get("verifier")
        if isinstance(old, CommentedMap):
            _update_in_place(old, {**old, **verifier}, 2)
        else:
            item["verifier"] = to_yaml_node(dict(verifier), 1)
        buf = io.StringIO()
        yaml.dump(doc, buf)
        return buf.getvalue()
    old = item.get("verifier")
    if isinstance(old, CommentedMap) and not old.fa.flow_style() and len(old):
        return _splice_mapping(yaml, lines, old, verifier, depth=2)
    if isinstance(old, CommentedMap):
        verifier = {**old, **verifier}
    # no verifier (or a flow/empty one): (re)write the whole `verifier:` key
    node = to_yaml_node(dict(verifier), 1)
    if "verifier" in item:
        line, col = item.lc.key("verifier")
        end = _block_end(lines, line, col)
        lines[line:end] = _render_key(yaml, "verifier", node, col)
        return "".join(lines)
    first = next(iter(item))
    col = item.lc.key(first)[1]
    start = seq.lc.item(idx)[0]
    dash_col = len(lines[start]) - len(lines[start].lstrip())
    end = _entry_end(lines, start, dash_col)
    lines[end:end] = _render_key(yaml, "verifier", node, col)
    return "".join(lines)


def _splice_mapping(yaml: YAML, lines: list[str], node: CommentedMap,
                    new: Mapping[str, Any], depth: int) -> str:
    """Replace, remove or append the lines of `node`'s keys that differ from `new`."""
    edits: list[tuple[int, int, int, list[str]]] = []  # (start, -depth, end, new lines)
    _mapping_edits(yaml, lines, node, new, depth, edits, keep_missing=True)
    # bottom up; at one line, outer edits first, so that an inner mapping's appended
    # lines land before what its parent replaces or appends there
    for start, _, end, repl in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        lines[start:end] = repl
    return "".join(lines)


def _mapping_edits(yaml: YAML, lines: list[str], node: CommentedMap, new: Mapping[str, Any],
                   depth: int, edits: list[tuple[int, int, int, list[str]]],
                   keep_missing: bool = False) -> None:
    """(start, end, new lines) edits of the original lines, recursing into block mappings
    so that a key line whose value only changed below it stays byte for byte."""
    col = node.lc.key(next(iter(node)))[1]
    last_end = 0
    for key in list(node):
        line, _ = node.lc.key(key)
        end = _block_end(lines, line, col)
        last_end = max(last_end, end)
        if key not in new:
            if not keep_missing:
                edits.append((line, -depth, end, []))
            continue
        value = new[key]
        cur = node[key]
        if _same(cur, value):
            continue
        if isinstance(cur, CommentedMap) and isinstance(value, Mapping) and len(cur) \
                and not cur.fa.flow_style() and node.lc.value(key)[0] > line:
            _mapping_edits(yaml, lines, cur, value, depth + 1, edits)
            continue
        if isinstance(cur, CommentedMap) and isinstance(value, Mapping) and not (
                cur.fa.flow_style() and not _leafy(value.values())):
            _update_in_place(cur, value, depth + 1)
            rendered_node: Any = cur
        else:
            rendered_node = to_yaml_node(value, depth)
        edits.append((line, -depth, end, _render_key(yaml, key, rendered_node, col)))
    added = [ln for key, value in new.items() if key not in node
             for ln in _render_key(yaml, key, to_yaml_node(value, depth), col)]
    if added:
        edits.append((last_end, -depth, last_end, added))


def write_verifier(spec_path: Path, target: str, verifier: Mapping[str, Any]) -> Path:
    """Set `targets[name=target].verifier` in the spec file: validate, replace atomically."""
    new = upsert_verifier_text(_read(spec_path), target, verifier)
    write_output(spec_path, new, validate=_validator(spec_path))
    return spec_path
