"""`configspec fmt` keeps the quotes a value needs and never writes YAML it cannot read
(issue 25).

ruamel writes YAML 1.2, where `{endpoint: javascript:alert(1)}` is a plain scalar;
libyaml (ruamel's C loader, PyYAML) refuses it, so fmt once dropped those quotes, wrote
invalid YAML and blamed the user's file.  Now the quoting decision (`SafeEmitter`) quotes
what any reader needs, and fmt checks its own output: one that does not read back as
the same data is fmt's bug, said so, and nothing is written.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml.emitter import RoundTripEmitter

from configspec_opt.errors import SpecError
from configspec_opt.loader import Source, parse_data
from configspec_opt.vcs import fmt as fmt_module
from configspec_opt.vcs.fmt import FormatError, format_text
from tests.cli_helpers import EXAMPLE, invoke

FLOW = EXAMPLE.read_text().replace(
    "    capacity_tok_s: 4000            # optional: verifier throughput shared by the whole "
    "fleet\n",
    "    capacity_tok_s: 4000\n"
    '    verifier_hint: {endpoint: "javascript:alert(1)", "a:b": "c:d", q: "?x", r: "x?"}\n')
RPI5 = """\
  - name: rpi5
    platform: raspberry-pi-5
    count: 200                      # identical devices in this pool
    memory_gb: 8
    rtt_s: 0.04                     # optional network round trip, added to every round
"""
TARGET_FLOW = EXAMPLE.read_text().replace(
    RPI5, '  - {name: rpi5, platform: "pi:5", count: 200, memory_gb: 8, rtt_s: 0.04}\n')


def _data(text: str) -> object:
    return parse_data(Source("x.yaml", text))


def test_flow_values_with_a_colon_keep_their_quotes() -> None:
    assert EXAMPLE.read_text() != FLOW
    out = format_text(FLOW, "flow.yaml")
    assert _data(out) == _data(FLOW)
    assert format_text(out, "flow.yaml") == out
    line = next(ln for ln in out.splitlines() if "verifier_hint" in ln)
    assert "javascript:alert(1)" in line
    assert "endpoint: javascript" not in line  # quoted, in whatever style


def test_fmt_on_a_spec_with_a_colon_in_a_flow_mapping_round_trips(tmp_path: Path) -> None:
    assert EXAMPLE.read_text() != TARGET_FLOW
    spec = tmp_path / "spec.yaml"
    spec.write_text(TARGET_FLOW)
    before = _data(spec.read_text())
    assert invoke("validate", spec).exit_code == 0
    run = invoke("fmt", spec)
    assert run.exit_code == 0, run.stderr
    assert _data(spec.read_text()) == before
    assert "pi:5" in spec.read_text()
    assert invoke("validate", spec).exit_code == 0
    assert invoke("fmt", "--check", spec).exit_code == 0


def test_output_fmt_cannot_read_is_fmts_bug_not_the_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ruamel's own emitter (the quoting fmt used before), fmt's output of FLOW does
    not parse: fmt must say that it is its own bug, and leave the file as it was."""
    monkeypatch.setattr(fmt_module, "SafeEmitter", RoundTripEmitter)
    spec = tmp_path / "spec.yaml"
    spec.write_text(FLOW)
    run = invoke("fmt", spec)
    assert run.exit_code == 2
    assert "bug in fmt, not in the file" in run.stderr
    assert "the file is unchanged" in run.stderr
    assert f"{spec}:" not in run.stderr.replace(f"{spec}: not formatted", "")  # no line
    assert spec.read_text() == FLOW
    with pytest.raises(FormatError):
        format_text(FLOW, "flow.yaml")


# Characters YAML gives meaning to, line breaks and controls, and some beyond ASCII.
TRICKY = st.text(st.sampled_from([*":#,'\"[]{}?&*!|>%@`- \t\\=~.0123456789aZ", "\n", "\x00",
                                  "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\ufeff", "é",
                                  "模", "\U0001f600"]), max_size=10)
SPELLINGS = ["double", "single", "plain"]


def _spelled(value: str, how: str) -> str:
    if how == "double":
        return json.dumps(value)  # a JSON string is a YAML double-quoted scalar
    if how == "single":
        return "'" + value.replace("'", "''") + "'"
    return value


def _document(pairs: list[tuple[str, str, str]], flow: bool) -> str:
    items = [(_spelled(k, how), _spelled(v, how)) for k, v, how in pairs]
    if flow:
        return "name: x\nmap: {" + ", ".join(f"{k}: {v}" for k, v in items) + "}\n" \
            "list: [" + ", ".join(v for _, v in items) + "]\n"
    return "name: x\nmap:\n" + "".join(f"  {k}: {v}\n" for k, v in items) + \
        "list:\n" + "".join(f"  - {v}\n" for _, v in items)


DOCUMENTS = st.builds(_document, st.lists(st.tuples(TRICKY, TRICKY, st.sampled_from(
    SPELLINGS)), min_size=1, max_size=3), st.booleans())


@settings(max_examples=400, deadline=None)
@given(DOCUMENTS)
def test_fmt_keeps_the_data_of_any_document_or_refuses_it_as_the_files(text: str) -> None:
    try:
        before = _data(text)
    except SpecError:
        with pytest.raises(SpecError):  # the file's own error, never FormatError
            format_text(text, "x.yaml")
        return
    out = format_text(text, "x.yaml")
    assert _data(out) == before, out
    assert format_text(out, "x.yaml") == out


@settings(max_examples=60, deadline=None)
@given(DOCUMENTS)
def test_the_fmt_command_never_writes_what_it_cannot_read(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        spec = Path(d) / "spec.yaml"
        spec.write_bytes(text.encode())
        run = invoke("fmt", spec)
        after = spec.read_bytes().decode()
        if run.exit_code == 2:
            assert after == text
            assert "bug in fmt" not in run.stderr, run.stderr
            with pytest.raises(SpecError):
                _data(text)
        else:
            assert run.exit_code == 0, run.stderr
            assert _data(after) == _data(text)
