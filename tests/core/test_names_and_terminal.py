"""Control characters in what a user's files hold (issue 25): refused in names, escaped
wherever text reaches a terminal, and never able to break a file configspec writes.

- every name (and the one-line identifiers beside them: platform, GGUF paths,
  endpoints, profiles_from) refuses C0, DEL, C1 and Unicode line breaks: exit 2 with
  file:line:column, on the command line and over HTTP (one rule, `spec.OneLine`);
- every command prints such characters as visible escapes (`\\x1b`), whatever the
  string is (an unknown key quoted by an error, a file name found in a directory);
- locks and exports stay readable whatever the strings are: YAML and JSON keep them
  exactly, an env file refuses a value it cannot hold on one line.
"""

from __future__ import annotations

import io
import json
import logging
import re
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from ruamel.yaml import YAML

from configspec_opt.cli.app import SafeConsole, _SafeFormatter
from configspec_opt.errors import SpecError
from configspec_opt.loader import parse_spec
from configspec_opt.safe_text import one_line, one_line_problem, terminal_safe
from configspec_opt.spec import Spec
from configspec_opt.vcs.yamldump import dump_yaml
from configspec_opt.yaml_data import load_yaml
from tests.cli_helpers import EXAMPLE, Run, invoke

TEXT = EXAMPLE.read_text()
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what must never be printed


def _spec(tmp_path: Path, old: str, new: str, name: str = "spec.yaml") -> Path:
    assert old in TEXT, old
    path = tmp_path / name
    path.write_text(TEXT.replace(old, new, 1))
    return path


def _at(path: Path, token: str) -> tuple[int, int]:
    """1-based line and column of `token`'s first character in the file."""
    text = path.read_text()
    i = text.index(token)
    return text.count("\n", 0, i) + 1, i - text.rfind("\n", 0, i)


def _printed(run: Run) -> str:
    return run.stdout + run.stderr


# (what, text in the example, its replacement, the quoted token an error points at)
NAMES = [
    ("device name", "  - name: rpi5\n", '  - name: "rpi5\\e]0;pwned\\a"\n', '"rpi5'),
    ("draft name", "  - name: llama-3.2-1b-instruct\n", '  - name: "tiny\\0"\n', '"tiny'),
    ("target name", "  - name: llama-3.1-70b\n", '  - name: "big\\x7f"\n', '"big'),
    ("family", "    family: llama\n", '    family: "llama\\x9b2J"\n', '"llama\\x9b'),
    ("quant (a key)", "      Q8_0: {size_gb: 1.32}", '      "Q8\\e[2J": {size_gb: 1.32}', '"Q8'),
    ("acceptance target (a key)", "      llama-3.1-70b: {2: 0.70,",
     '      "llama\\n70b": {2: 0.70,', '"llama\\n'),
    ("spec name", "name: llama70b-edge", 'name: "edge\\u2028"', '"edge'),
    ("profile device", "  - device: rpi5\n", '  - device: "rpi5\\t"\n', '"rpi5'),
    ("platform", "platform: raspberry-pi-5", 'platform: "pi\\r"', '"pi'),
    ("gguf", "Q4_K_M: {size_gb: 0.81}", 'Q4_K_M: {size_gb: 0.81, gguf: "m\\e.gguf"}', '"m\\e'),
    ("endpoint", "    verify_latency_s: 0.5 ",
     '    endpoint: "http://h/\\x85"\n    verify_latency_s: 0.5 ', '"http'),
]


@pytest.mark.parametrize(("what", "old", "new", "token"), NAMES, ids=[n[0] for n in NAMES])
def test_a_control_character_in_a_name_is_refused_with_its_place(
        tmp_path: Path, what: str, old: str, new: str, token: str) -> None:
    path = _spec(tmp_path, old, new)
    line, column = _at(path, token)
    run = invoke("validate", path)
    assert run.exit_code == 2, _printed(run)
    assert f"{path}:{line}:{column}: " in run.stderr, (what, run.stderr)
    assert "control character" in run.stderr
    assert not RAW_CONTROL.search(_printed(run))
    data = json.loads(invoke("validate", path, "--json").stdout)
    assert data["status"] == "invalid"
    assert [(e["line"], e["column"]) for e in data["errors"]] == [(line, column)]


def test_a_json_spec_is_held_to_the_same_rule(tmp_path: Path) -> None:
    data = YAML(typ="safe").load(TEXT)
    data["devices"][1]["name"] = "orin\x1b[2J"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data, indent=2))
    line, column = _at(path, '"orin\\u001b')
    run = invoke("validate", path)
    assert run.exit_code == 2
    assert f"{path}:{line}:{column}: devices[1].name: " in run.stderr
    assert "U+001B at character 5" in run.stderr
    assert "'orin\\x1b[2J'" in run.stderr  # the value, echoed escaped
    assert not RAW_CONTROL.search(_printed(run))


def test_every_string_field_of_a_spec_is_a_name_or_declared_free_text() -> None:
    """A str field added later must choose: the name rule, or free text shown escaped."""
    free: set[str] = set()
    seen: set[type] = set()

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for field_name, field in model.model_fields.items():
            walk(f"{model.__name__}.{field_name}", field.annotation, field.metadata)

    def walk(where: str, tp: Any, metadata: list[Any]) -> None:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            args = typing.get_args(tp)
            walk(where, args[0], [*metadata, *tp.__metadata__])
        elif tp is str:
            if not any(type(m).__name__ == "_OneLineSchema" for m in metadata):
                free.add(where)
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            visit(tp)
        else:
            for i, arg in enumerate(typing.get_args(tp)):
                walk(f"{where}[{i}]" if origin is dict else where, arg, [])

    visit(Spec)
    assert free == {"Spec.description", "Verifier.provenance[0]", "Profile.provenance[0]"}


def test_names_are_refused_over_http_too(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from configspec_opt.api import create_app
    from configspec_opt.api.settings import Settings

    text = TEXT.replace("  - name: rpi5\n", '  - name: "rpi5\\e]2;x\\a"\n', 1)
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path / 'api.sqlite3'}", workers=1,
                              backlog=2))
    with TestClient(app) as client:
        r = client.post("/v1/validate", content=text,
                        headers={"Content-Type": "application/yaml"})
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["path"] == "devices[0].name"
    assert "control character" in error["message"]
    i = text.index('"rpi5')
    assert (error["line"], error["column"]) == (text.count("\n", 0, i) + 1,
                                                i - text.rfind("\n", 0, i))


def test_the_rule() -> None:
    assert one_line_problem("llama-3.1-70b Q4_K_M ünïcödé 模型") is None
    for c in ["\x00", "\t", "\n", "\x1b", "\x7f", "\x80", "\x9b", "\x9f", "\u2028", "\u2029"]:
        assert one_line_problem(f"ab{c}") is not None, repr(c)
    assert "U+009B at character 3" in (one_line_problem("ab\x9b") or "")
    with pytest.raises(SpecError):
        parse_spec(TEXT.replace("name: llama70b-edge", 'name: "x\\0"', 1))
    parse_spec(TEXT.replace("name: llama70b-edge", "name: 'llama [edge] :x: #1'", 1))


# --------------------------------------------------------------------------- terminal


@given(st.text())
def test_terminal_safe_leaves_no_control_and_is_idempotent(text: str) -> None:
    shown = terminal_safe(text)
    assert not RAW_CONTROL.search(shown)
    assert terminal_safe(shown) == shown
    assert shown.count("\n") == text.count("\n")
    if not RAW_CONTROL.search(text):
        assert shown == text
    assert "\n" not in one_line(text) and not RAW_CONTROL.search(one_line(text))


HOSTILE_KEY = '"bogus\\e]0;pwned\\a\\e[2J\\x9b31m": 1\n'


@pytest.mark.parametrize("args", [
    ["validate"], ["evaluate"], ["solve"], ["pareto"], ["lock"], ["check"],
    ["report", "-o", "{tmp}/r.html"], ["export", "-o", "{tmp}/out"], ["diff", "{spec}"],
], ids=lambda a: a[0])
def test_an_error_quoting_a_file_prints_no_control_character(tmp_path: Path,
                                                            args: list[str]) -> None:
    pytest.importorskip("highspy")
    path = tmp_path / "spec.yaml"
    path.write_text(TEXT + HOSTILE_KEY)
    rest = [a.format(tmp=tmp_path, spec=path) for a in args[1:]]
    run = invoke(args[0], path, *rest)
    assert run.exit_code == (1 if args[0] == "check" else 2), _printed(run)
    assert "unknown key 'bogus\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m'" in run.stderr
    assert not RAW_CONTROL.search(_printed(run))


@pytest.mark.parametrize("command", ["validate", "solve", "evaluate", "lock"])
def test_json_output_escapes_every_control_character(tmp_path: Path, command: str) -> None:
    pytest.importorskip("highspy")
    data = YAML(typ="safe").load(TEXT)
    data["bogus\x7f\x1b\x9b"] = 1
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data, ensure_ascii=False))  # DEL and C1 raw in the file
    assert "\x7f" in path.read_text()
    run = invoke(command, path, "--json")
    assert run.exit_code == 2
    assert not RAW_CONTROL.search(run.stdout)
    assert "\\u007f" in run.stdout
    assert any("bogus\x7f\x1b\x9b" in s for s in _strings(json.loads(run.stdout)))


def _strings(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [s for v in data.values() for s in _strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return [data] if isinstance(data, str) else []


def test_file_names_found_or_written_are_printed_escaped(tmp_path: Path) -> None:
    pytest.importorskip("highspy")
    folder = tmp_path / "specs"
    folder.mkdir()
    evil = folder / "fleet\x1b]0;pwned\x07.yaml"
    evil.write_text(TEXT)
    runs = [invoke("check", folder), invoke("fmt", "--check", folder),
            invoke("lock", evil), invoke("check", folder), invoke("solve", tmp_path / "no\x1bpe"),
            invoke("diff", evil, evil), invoke("report", evil, "--no-pareto",
                                                "-o", tmp_path / "r\x9b.html")]
    assert [r.exit_code for r in runs] == [1, 0, 0, 0, 2, 0, 0], [_printed(r) for r in runs]
    for run in runs:
        assert not RAW_CONTROL.search(_printed(run)), _printed(run)
    assert "fleet\\x1b]0;pwned\\x07.yaml" in runs[0].stderr
    assert "fleet\\x1b]0;pwned\\x07.yaml.lock" in runs[2].stdout
    assert "r\\x9b.html" in runs[6].stdout
    html = (tmp_path / "r\x9b.html").read_text()
    assert "fleet\\x1b]0;pwned\\x07.yaml" in html
    assert not RAW_CONTROL.search(html)


def test_the_console_escapes_text_tables_and_markup_but_keeps_its_own_colours() -> None:
    buf = io.StringIO()
    console = SafeConsole(file=buf, force_terminal=True, color_system="standard", width=100,
                          highlight=False, markup=False, emoji=False)
    table = Table("pool")
    table.add_row("rpi\x1b[2J")
    console.print("[red]error:[/red] " + escape("bad\x1b]0;t\x07"), markup=True)
    console.print(table)
    console.print(Text("text object\x9b6n"))
    console.print("plain\x00\x7f")
    shown = buf.getvalue()
    assert "\x1b[31m" in shown  # rich's own colour survives
    for part in ["bad\\x1b]0;t\\x07", "rpi\\x1b[2J", "text object\\x9b6n", "plain\\x00\\x7f"]:
        assert part in shown, shown
    assert not re.search("[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f]", shown)
    assert "\x1b]" not in shown and "\x1b[2J" not in shown


def test_log_lines_are_escaped() -> None:
    record = logging.LogRecord("configspec", logging.WARNING, __file__, 1,
                               "pool %s is odd", ("rpi\x1b[2J",), None)
    line = _SafeFormatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING pool rpi\\x1b[2J is odd"


# --------------------------------------------------------------------------- files written


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.text(max_size=12) | st.lists(
    st.text(max_size=6), max_size=3), max_size=4), st.text(max_size=20))
def test_a_generated_yaml_file_reads_back_whatever_its_strings(data: dict[str, Any],
                                                               header: str) -> None:
    text = dump_yaml({"pools": data}, header)
    assert not RAW_CONTROL.search(text), text
    comments = len(header.removesuffix("\n").split("\n")) if header else 0
    assert all(line.startswith("#") for line in text.split("\n")[:comments]), text
    for reader in (YAML(typ="safe", pure=True).load, YAML(typ="safe", pure=False).load,
                   load_yaml):
        assert reader(text) == {"pools": data}, (reader, text)


def test_exports_and_locks_of_a_spec_with_a_hostile_file_name(tmp_path: Path) -> None:
    pytest.importorskip("highspy")
    name = "fleet\x1b]0;t\x07\n# not a comment\nX=1 .yaml"
    spec = tmp_path / name
    spec.write_text(TEXT)
    assert invoke("lock", spec).exit_code == 0
    lock_text = (tmp_path / f"{name}.lock").read_text()
    assert not RAW_CONTROL.search(lock_text)
    assert load_yaml(lock_text)["spec"]["file"] == name
    assert invoke("check", spec).exit_code == 0
    for fmt in ("yaml", "json"):
        out = tmp_path / fmt
        run = invoke("export", spec, "-o", out, "--format", fmt)
        assert run.exit_code == 0, _printed(run)
        for f in out.iterdir():
            text = f.read_text()
            data = json.loads(text) if fmt == "json" else load_yaml(text)
            assert data["spec"]["file"] == name
            assert not RAW_CONTROL.search(text)
    run = invoke("export", spec, "-o", tmp_path / "env", "--format", "env")
    assert run.exit_code == 2
    assert "CONFIGSPEC_DEPLOY_" in run.stderr and "control characters" in run.stderr
    assert not RAW_CONTROL.search(_printed(run))
