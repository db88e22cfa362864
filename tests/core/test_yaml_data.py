"""The fast YAML path builds exactly what ruamel's safe loader builds, or defers to it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.compat import StringIO
from ruamel.yaml.error import YAMLError

from configspec_opt.errors import SpecError
from configspec_opt.loader import parse_spec
from configspec_opt.yaml_data import load_yaml, ruamel_load

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted(p for d in ("examples", "specs") for p in (ROOT / d).rglob("*.yaml"))


def same(a: Any, b: Any) -> bool:
    """Equal data, types included (1 and 1.0 and True are three different spec values)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def test_the_committed_specs_exist() -> None:
    assert len(COMMITTED) >= 5


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_committed_spec_parses_as_ruamel_parses_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert same(load_yaml(text), ruamel_load(text))


ascii_text = st.text(st.one_of(st.characters(min_codepoint=32, max_codepoint=126),
                               st.sampled_from(list("-_.,:/{}[]#'\"+=()~ 0aZ_1e"))), max_size=20)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False), ascii_text, st.text(max_size=20),
    st.sampled_from(["yes", "no", "on", "off", "1_000", "017", "0x1F", "0o17", "1e3",
                     ".5", "1.", "~", "null", "True", "2024-01-01", "12:30", "-0.0",
                     "# not a comment", "a: b", "- x", "&anchor", "*alias", "%", "@", "`"]))
documents = st.dictionaries(
    ascii_text.filter(bool),
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                 | st.dictionaries(ascii_text.filter(bool), inner, max_size=4),
                 max_leaves=20),
    min_size=1, max_size=6)


def dump(data: Any, flow: bool) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = flow
    buf = StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


@settings(max_examples=400, deadline=None)
@example({"_0": None}, False)  # yaml-rs read the key as the integer 0 (found by this test)
@given(documents, st.booleans())
def test_generated_documents_parse_as_ruamel_parses_them(data: dict[str, Any],
                                                         flow: bool) -> None:
    """Same data where ruamel reads its own dump; refused too where it cannot."""
    text = dump(data, flow)
    try:
        expected = ruamel_load(text)
    except YAMLError:
        with pytest.raises(YAMLError):
            load_yaml(text)
    else:
        assert same(load_yaml(text), expected)


@pytest.mark.parametrize("text", [
    "a: &x {b: 1}\nc:\n  <<: *x\n  d: 2\n",   # merge key
    "a: !!binary aGVsbG8=\n",                  # a tag
    "a: 1\n---\nb: 2\n",                       # two documents
    "- 1\n- 2\n",                              # not a mapping
    "a: '2026-11-27T03:21:33+00:00'\nb: 2024-01-01\n",  # quoted and plain dates
])
def test_where_the_parsers_could_differ_ruamel_decides(text: str) -> None:
    try:
        expected: Any = ruamel_load(text)
    except YAMLError as exc:
        with pytest.raises(type(exc)):
            load_yaml(text)
    else:
        assert same(load_yaml(text), expected)


@pytest.mark.parametrize("text", ["a: 1\na: 2\n", "\ta: 1\n", "a: [1, 2\n", "a: b: c\n"])
def test_bad_yaml_is_refused_with_ruamels_location(text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text, name="bad.yaml")
    issue = info.value.issues[0]
    assert issue.file == "bad.yaml" and issue.line is not None


def test_an_alias_bomb_is_refused_not_expanded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(SpecError, match="expands to more than"):
        parse_spec("\n".join(lines) + "\n", name="bomb.yaml")
