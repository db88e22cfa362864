"""`configspec fmt`: canonical layout, comments kept, idempotent, meaning unchanged."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from configspec_opt.errors import SpecError
from configspec_opt.loader import Source, parse_data
from configspec_opt.vcs.fmt import format_text
from tests.cli_helpers import ROOT, Run

MESSY = """\
---
# yaml-language-server: $schema=../schema/configspec.schema.json
# the fleet of the lab

version:   1
name:    "lab"   # trailing comment
targets:
- name: 'llama-3.1-70b'
  family: llama
  price_usd_per_mtok: 0.90       # keep the spelling of numbers
  verify_latency_s: 5e-1
drafts:
    -   name: llama-3.2-1b-instruct
        family: llama
        quants: {Q4_K_M: {size_gb: 0.81}}
devices:
  - {name: rpi5, count: 2, memory_gb: 8}

# measured on 2025-01-10
profiles:
  - device: rpi5
    draft: llama-3.2-1b-instruct
    quant: Q4_K_M
    draft_tok_s: 14.44
    power_w: 8.3
    acceptance:
      llama-3.1-70b: {2: 0.70, 3: 0.61}
search:
  k: {min: 2, max: 3}
# the end


""".replace("of the lab\n", "of the lab   \n")  # trailing blanks (kept out of the source)


def _comments(text: str) -> list[str]:
    return [m.strip() for m in re.findall(r"#[^\n]*", text)]


def test_fmt_keeps_every_comment_and_the_data() -> None:
    out = format_text(MESSY, "messy.yaml")
    assert _comments(out) == _comments(MESSY)
    assert parse_data(Source("a.yaml", out)) == parse_data(Source("b.yaml", MESSY))
    assert "  - name: llama-3.1-70b\n" in out  # sequences indented, quotes dropped
    assert "name: lab" in out
    assert "price_usd_per_mtok: 0.90" in out
    assert "llama-3.1-70b: {2: 0.70, 3: 0.61}" in out  # flow style kept
    assert not any(line != line.rstrip() for line in out.splitlines())
    assert out.endswith("# the end\n")


def test_fmt_is_idempotent() -> None:
    once = format_text(MESSY, "messy.yaml")
    assert once != MESSY
    assert format_text(once, "messy.yaml") == once


@pytest.mark.parametrize("path", ["examples/llama70b-edge.yaml", "examples/paper/llama70b.yaml",
                                  "examples/paper/qwen32b.yaml"])
def test_the_examples_are_already_canonical(path: str) -> None:
    text = (ROOT / path).read_text()
    assert format_text(text, path) == text


def test_json_specs_are_formatted_as_json() -> None:
    out = format_text('{"version": 1,  "name": "x"}', "spec.json")
    assert out == '{\n  "version": 1,\n  "name": "x"\n}\n'


def test_a_syntax_error_is_located() -> None:
    with pytest.raises(SpecError) as info:
        format_text("version: 1\nname: [unclosed\n", "bad.yaml")
    assert info.value.issues[0].file == "bad.yaml"
    assert info.value.issues[0].line is not None


def test_fmt_check_changes_nothing_and_fails_until_formatted(
        cli: Callable[..., Run], tmp_path: Path) -> None:
    spec = tmp_path / "lab.yaml"
    spec.write_text(MESSY)
    check = cli("fmt", "--check", "--diff", spec)
    assert check.exit_code == 1
    assert f"would reformat {spec}" in check.stderr
    assert "-version:   1" in check.stdout  # the unified diff
    assert spec.read_text() == MESSY

    assert cli("fmt", spec).exit_code == 0
    assert spec.read_text() == format_text(MESSY)
    assert cli("fmt", "--check", spec).exit_code == 0
    assert "already formatted" in cli("fmt", spec).stdout


def test_fmt_reports_an_invalid_file_with_exit_2(cli: Callable[..., Run], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    result = cli("fmt", bad)
    assert result.exit_code == 2
    assert "invalid YAML" in result.stderr
    assert bad.read_text() == "a: [1, 2\n"


def test_fmt_diff_prints_the_diff_and_writes_nothing(
        cli: Callable[..., Run], tmp_path: Path) -> None:
    spec = tmp_path / "lab.yaml"
    spec.write_text(MESSY)
    result = cli("fmt", "--diff", spec)
    assert result.exit_code == 1  # like `ruff format --diff`: a difference fails
    assert "-version:   1" in result.stdout and "+version: 1" in result.stdout
    assert f"would reformat {spec}" in result.stderr
    assert spec.read_text() == MESSY

    spec.write_text(format_text(MESSY))
    clean = cli("fmt", "--diff", spec)
    assert clean.exit_code == 0
    assert "---" not in clean.stdout and "already formatted" in clean.stdout
