"""Your own files load however large; what is received keeps its limits (docs/limits.md).

The limits are lowered through their environment variables so that a few-kilobyte
spec stands for a 30 MB fleet.  The fast paths that make a large fleet load in
seconds (JSON without hooks, the YAML alphabet check) are held to the reference
they replace: same data, or the reference's refusal.
"""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from ruamel.yaml.error import YAMLError

from configspec_opt.errors import SpecError
from configspec_opt.limits import CHARS, FILE_BYTES, NO_LIMIT, VALUES, allowance
from configspec_opt.loader import Source, _check_data, _load_json, parse_data, parse_spec
from configspec_opt.yaml_data import BLOCK_COLUMNS, _fast_path_safe
from tests.api.conftest import YAML_CT, settings_for
from tests.api.helpers import assert_problem
from tests.cli_helpers import EXAMPLE, invoke

EXAMPLE_TEXT = EXAMPLE.read_text()
LOW = {VALUES.env: "50"}


def values_in(data: Any) -> int:
    if isinstance(data, dict):
        return 1 + sum(values_in(v) for v in data.values())
    if isinstance(data, list):
        return 1 + sum(values_in(v) for v in data)
    return 1


@pytest.fixture
def low_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for env, value in LOW.items():
        monkeypatch.setenv(env, value)


# --- the policy ------------------------------------------------------------------------


def test_your_file_may_hold_what_its_text_writes_received_text_only_its_limit(
        low_limits: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert values_in(parse_data(Source("x.yaml", EXAMPLE_TEXT))) > 50
    loaded = parse_spec(EXAMPLE_TEXT, name="spec.yaml")  # a file of yours: loads
    assert loaded.spec.name
    with pytest.raises(SpecError) as info:
        parse_spec(EXAMPLE_TEXT, name="<request>", base_dir=None, received=True)
    message = info.value.issues[0].message
    assert "more than 50 values" in message and f"{VALUES.env}=N raises this limit" in message
    monkeypatch.delenv(VALUES.env)
    monkeypatch.setenv(CHARS.env, "200")
    assert parse_spec(EXAMPLE_TEXT, name="spec.yaml").spec.name
    with pytest.raises(SpecError, match=rf"more than 200 characters \({CHARS.env}=N raises"):
        parse_spec(EXAMPLE_TEXT, name="<request>", base_dir=None, received=True)
    monkeypatch.setenv(VALUES.env, "50")
    assert allowance(VALUES, 10, received=True) == 50
    assert allowance(VALUES, 10_000, received=False) == 10_001


def test_aliases_that_multiply_your_own_file_are_still_refused(low_limits: None) -> None:
    plain = "a: [" + ", ".join(["x"] * 60) + "]\n"  # 60 values, written out: loads
    assert len(parse_data(Source("plain.yaml", plain))["a"]) == 60
    aliased = "x: &x [y, y, y, y, y, y, y, y]\na: [" + ", ".join(["*x"] * 12) + "]\n"
    assert values_in(reference_yaml(aliased)) > len(aliased) + 1  # 96 values from 75 characters
    with pytest.raises(SpecError, match=rf"expands to more than \d+ values \({VALUES.env}=N"):
        parse_data(Source("aliased.yaml", aliased))


def reference_yaml(text: str) -> Any:
    """The reference parse (ruamel, no limits), to compare the limited one with."""
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text)


def test_no_size_cap_on_your_files_unless_you_set_one(tmp_path: Path, low_limits: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert FILE_BYTES.default == NO_LIMIT
    spec = tmp_path / "fleet.yaml"
    spec.write_text(EXAMPLE_TEXT)
    assert invoke("validate", spec).exit_code == 0
    monkeypatch.setenv(FILE_BYTES.env, "1_000")
    refused = invoke("validate", spec)
    assert refused.exit_code == 2
    assert "larger than 1,000 bytes" in refused.stderr
    assert f"{FILE_BYTES.env}=N raises this limit" in refused.stderr
    monkeypatch.setenv(FILE_BYTES.env, "none")
    bad = invoke("validate", spec)
    assert bad.exit_code == 2 and "(default none)" in bad.stderr


def test_a_spec_past_the_services_limits_loads_on_the_cli_and_is_refused_over_http(
        tmp_path: Path, low_limits: None) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(EXAMPLE_TEXT)
    assert len(EXAMPLE_TEXT.encode()) > 1024
    assert invoke("validate", spec).exit_code == 0
    as_json = tmp_path / "fleet.json"
    as_json.write_text(json.dumps(reference_yaml(EXAMPLE_TEXT)))
    assert invoke("validate", as_json).exit_code == 0

    with TestClient(_app(tmp_path, max_body_bytes=1024)) as small:
        body = assert_problem(small.post("/v1/validate", content=EXAMPLE_TEXT,
                                         headers=YAML_CT), 413, "body-too-large")
        assert "1,024 bytes" in body["detail"] and "--max-body" in body["detail"]
    with TestClient(_app(tmp_path / "b")) as roomy:  # the body fits; its 50 values do not
        for text, kind in ((EXAMPLE_TEXT, YAML_CT),
                           (as_json.read_text(), {"Content-Type": "application/json"})):
            body = assert_problem(roomy.post("/v1/validate", content=text, headers=kind),
                                  422, "invalid-spec")
            assert f"{VALUES.env}=N raises this limit" in body["errors"][0]["message"]


def _app(where: Path, **overrides: Any) -> Any:
    from configspec_opt.api import create_app

    where.mkdir(parents=True, exist_ok=True)
    return create_app(settings_for(where / "api.sqlite3", **overrides))


def test_parsing_leaves_the_garbage_collector_as_it_found_it() -> None:
    assert gc.isenabled()
    parse_spec(EXAMPLE_TEXT, name="spec.yaml")
    assert gc.isenabled()
    with pytest.raises(SpecError):
        parse_spec("version: 1\nname: [", name="bad.yaml")
    assert gc.isenabled()
    gc.disable()
    try:
        parse_spec(EXAMPLE_TEXT, name="spec.yaml")
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- the fast paths equal their references -----------------------------------------------


def reference_json(text: str) -> Any:
    """What `parse_json` returned before its fast path: the hooks, then the walk."""
    src = Source("x.json", text)
    data = _load_json(src)
    _check_data(data, src)
    return data


def outcome(read: Any, text: str) -> tuple[str, Any]:
    try:
        return "ok", read(text)
    except SpecError as exc:
        return "refused", [(i.message, i.line, i.column) for i in exc.issues]


json_keys = st.text(st.sampled_from(list("ab:\\\"é")), max_size=3)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**400), 10**400)
    | st.floats(allow_nan=False, allow_infinity=False) | json_keys,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_keys, inner, max_size=3),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(json_values, st.data())
@example({"a": "x:y"}, None)
def test_json_reads_as_the_hooks_read_it_or_is_refused_as_they_refuse_it(
        value: Any, data: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    if data is not None and isinstance(value, dict) and value:  # repeat a key, maybe
        key = data.draw(st.sampled_from(sorted(value)))
        text = text[:-1] + f", {json.dumps(key)}: {data.draw(st.sampled_from(['1', '{}']))}}}"
    assert outcome(lambda t: parse_data(Source("x.json", t)), text) == outcome(reference_json,
                                                                               text)


@pytest.mark.parametrize("text", [
    '{"a": 1, "a": 2}',
    '{"a": "x:y", "a": 1}',
    '{"a": 1, "a": 2, "b": "\\u003a"}',          # an escaped colon must not stand in
    '{"b": ["\\u003A"], "c": {"a": 1, "a": {}}}',
    '{"a:": 1, "a:": 2}',
])
def test_a_repeated_key_is_refused_however_the_colons_fall(text: str) -> None:
    with pytest.raises(SpecError, match="duplicate key"):
        parse_data(Source("dup.json", text))


@pytest.mark.parametrize(("text", "why"), [
    ('{"a": 1e400}', "too large"),
    ('{"a": ' + "1" * 401 + "}", "digits"),
    ('{"a": 0.' + "1" * 400 + "}", "digits"),
    ('{"a": NaN}', "NaN is not a number"),
])
def test_numbers_the_hooks_refuse_are_refused_at_their_place(text: str, why: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_data(Source("n.json", text))
    issue = info.value.issues[0]
    assert why in issue.message and (issue.line, issue.column) == (1, 7)


REFERENCE_DEFER = re.compile(
    r"""[^-A-Za-z0-9 \n\r_.,:/{}\[\]#'"+=()~]"""
    r"|:(?!\s)"
    r"|\d{4}-\d\d?-\d\d?"
    r"""|(?:^|[\s\[{,:'"])[-+.]?(?:_|[0-9][0-9A-Za-z.+-]*_)"""
    rf"|[\n\r][ -]{{{BLOCK_COLUMNS}}}",
    re.MULTILINE)
HEADER = re.compile(r"(?:[ \t]*(?:#[^\n]*)?(?:\n|$))*")


def reference_safe(text: str) -> bool:
    """yaml_data's check as one alternation (2.5 s on 17 MB), before it was split."""
    head = HEADER.match(text)
    start = head.end() if head else 0
    return REFERENCE_DEFER.search(text, start) is None \
        and re.compile(rf"[ -]{{{BLOCK_COLUMNS}}}").match(text, start) is None


@settings(max_examples=2000, deadline=None)
@given(st.text(st.sampled_from(list("-_.:+ \n\r\t{}[],#'\"0129aZe/=~!é")), max_size=16),
       st.sampled_from(["", "# head\n", "# é\n\n"]))
@example("1_0", "")
@example("_3", "# head\n")
@example("x: 2026-1-1", "")
@example("- " * (BLOCK_COLUMNS // 2) + "x", "")
@example("a:\n" + " " * BLOCK_COLUMNS + "x", "")
def test_the_yaml_fast_path_check_is_the_reference_check(body: str, head: str) -> None:
    assert _fast_path_safe(head + body) == reference_safe(head + body)


# --- errors in a large file: located without the round-trip parse -------------------------


doc_keys = st.text(st.sampled_from(list("ab_:- 1é")), min_size=1, max_size=3)
doc_values = st.recursive(
    st.none() | st.booleans() | st.integers(-99, 99) | st.floats(-1e3, 1e3)
    | st.text(st.sampled_from(list("xy: -1'\"é")), max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(doc_keys, inner, max_size=3),
    max_leaves=15)


def every_place(data: Any) -> set[tuple[Any, ...]]:
    from tests.fuzz.strategies import value_paths

    return {p for path in value_paths(data) for p in (path, (*path, "missing"))}


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(doc_keys, doc_values, min_size=1, max_size=4),
       st.sampled_from(["block", "flow", "json", "json-indented"]))
def test_positions_from_events_and_the_json_walk_are_the_round_trip_parses(
        data: dict[str, Any], style: str) -> None:
    from ruamel.yaml import YAML
    from ruamel.yaml.compat import StringIO

    from configspec_opt.loader import _event_position, _rt_position

    if style.startswith("json"):
        text = json.dumps(data, indent=2 if style == "json-indented" else None,
                          ensure_ascii=False)
        name = "x.json"
    else:
        out = StringIO()
        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = None if style == "flow" else False  # flow inside a block
        yaml.dump({"fleet": data} if style == "flow" else data, out)
        text, name = out.getvalue(), "x.yaml"
    try:
        parsed = reference_yaml(text)
    except YAMLError:  # ruamel's emitter writes a few keys its own reader refuses
        assume(False)
    rt, marks = Source(name, text), Source(name, text)
    assert marks.is_json == style.startswith("json")
    for place in every_place(parsed):
        for at_key in (False, True):
            assert _event_position(marks, place, at_key) == _rt_position(rt, place, at_key), \
                (place, at_key)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_long_files_errors_are_located_as_a_short_files(
        suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import configspec_opt.loader as loader

    data = reference_yaml(EXAMPLE_TEXT)
    data["devices"][0]["memory_gbb"] = data["devices"][0].pop("memory_gb")
    data["profiles"][-1]["draft_tok_s"] = -1.0
    data["profiles"][0]["acceptance"]["nope"] = {"per_token": 0.5}
    text = EXAMPLE_TEXT if suffix == ".yaml" else json.dumps(data, indent=1)
    if suffix == ".yaml":
        text = text.replace("memory_gb:", "memory_gbb:", 1).replace(
            "draft_tok_s: 9.5", "draft_tok_s: -1", 1)

    def issues() -> list[str]:
        with pytest.raises(SpecError) as info:
            parse_spec(text, name=f"fleet{suffix}")
        return [i.format() for i in info.value.issues]

    by_round_trip = issues()
    assert any(":" in line.split(" ")[0][len("fleet"):] for line in by_round_trip)
    monkeypatch.setattr(loader, "ROUND_TRIP_MAX_CHARS", 0)
    assert Source(f"fleet{suffix}", text).located_by_marks
    assert issues() == by_round_trip
