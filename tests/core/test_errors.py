"""Every kind of spec mistake gets file, line, column and a useful message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from configspec_opt.errors import SpecError, SpecIssue
from configspec_opt.loader import load_spec, parse_spec

Write = Callable[..., Path]


def _issues(path: Path) -> list[SpecIssue]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value.issues


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_misspelt_key_has_position_and_suggestion(write: Write, example_text: str) -> None:
    text = example_text.replace("    count: 200", "    cuont: 200")
    issues = _issues(write(text))
    unknown = next(i for i in issues if "unknown key" in i.message)
    assert unknown.line == _line_of(text, "cuont: 200")
    assert unknown.column == 5
    assert unknown.hint == "did you mean 'count'?"
    assert unknown.file and unknown.file.endswith("spec.yaml")
    assert "spec.yaml:" in unknown.format() and "devices[0].cuont" in unknown.format()
    missing = next(i for i in issues if "missing" in i.message)
    assert "'count'" in missing.message


def test_wrong_type_points_at_value(write: Write, example_text: str) -> None:
    text = example_text.replace("memory_gb: 64", "memory_gb: lots")
    [issue] = _issues(write(text))
    assert issue.line == _line_of(text, "memory_gb: lots")
    assert issue.column == text.splitlines()[issue.line - 1].index("lots") + 1
    assert issue.path == ("devices", 1, "memory_gb")
    assert "lots" in issue.message


def test_negative_and_out_of_range(write: Write, example_text: str) -> None:
    text = example_text.replace("5: 0.546", "5: 1.546", 1)
    [issue] = _issues(write(text))
    assert issue.line == _line_of(text, "5: 1.546")
    assert "less than or equal to 1" in issue.message


def test_dangling_profile_reference(write: Write, example_text: str) -> None:
    text = example_text.replace("  - device: orin\n", "  - device: oirn\n", 1)
    [issue] = _issues(write(text))
    assert issue.message == "unknown device 'oirn'"
    assert issue.hint == "did you mean 'orin'?"
    assert issue.line == _line_of(text, "device: oirn")


def test_unknown_quant_and_target(write: Write, example_text: str) -> None:
    text = example_text.replace("    quant: Q8_0\n", "    quant: Q8_1\n", 1)
    text = text.replace("      llama-3.1-70b: {per_token: 0.86}",
                        "      llama-3.1-7b: {per_token: 0.86}", 1)
    messages = {i.message for i in _issues(write(text))}
    assert "draft 'llama-3.2-1b-instruct' has no quant 'Q8_1'" in messages
    assert "unknown target 'llama-3.1-7b'" in messages


def test_family_mismatch(write: Write, example_text: str) -> None:
    text = example_text.replace("    family: llama                   # a draft",
                                "    family: qwen                   # a draft")
    issues = _issues(write(text))
    assert any("cannot pair" in i.message for i in issues)


def test_yaml_syntax_error_has_line(write: Write) -> None:
    [issue] = _issues(write("version: 1\nname: x\ntargets:\n  - name: a\n   bad: [\n"))
    assert issue.line is not None and issue.line >= 5
    assert issue.message.startswith("invalid YAML")


def test_json_syntax_error_has_line_and_column(write: Write) -> None:
    [issue] = _issues(write('{"version": 1,\n "name": }', "spec.json"))
    assert (issue.line, issue.column) == (2, 10)


def test_nan_is_rejected(write: Write, example_text: str) -> None:
    text = example_text.replace("price_usd_per_mtok: 0.90", "price_usd_per_mtok: .nan")
    [issue] = _issues(write(text))
    assert issue.path == ("targets", 0, "price_usd_per_mtok")


def test_alias_bomb_is_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    prev = "a"
    for i in range(1, 8):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}," \
                f" *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        prev = chr(97 + i)
    with pytest.raises(SpecError) as info:
        parse_spec(bomb)
    assert "expands to more than" in info.value.issues[0].message


def test_energy_objective_without_power(write: Write, example_text: str) -> None:
    text = example_text.replace("    power_w: 8.3\n", "")
    text = text.replace("  maximize: goodput                 #", "  minimize: energy  #")
    issues = _issues(write(text))
    assert any("no power data for device rpi5" in i.message for i in issues)
    obj = next(i for i in issues if i.path == ("objective", "minimize"))
    assert obj.line == _line_of(text, "minimize: energy")


def test_ratio_in_weighted_objective(write: Write, example_text: str) -> None:
    text = example_text.replace(
        "  maximize: goodput                 #",
        "  weighted: [{maximize: goodput}, {maximize: cost_efficiency}]\n  #")
    [issue] = _issues(write(text))
    assert "ratio" in issue.message and issue.hint and "lexicographic" in issue.hint


def test_profiles_from_are_loaded_and_located(write: Write, example_text: str,
                                              tmp_path: Path) -> None:
    head, _, tail = example_text.partition("profiles:")
    body, _, rest = tail.partition("search:")
    (tmp_path / "profiles.yaml").write_text("profiles:" + body)
    spec = write(head + "profiles_from: [profiles.yaml]\nsearch:" + rest)
    loaded = load_spec(spec)
    assert len(loaded.spec.profiles) == 6 and len(loaded.sources) == 2
    (tmp_path / "profiles.yaml").write_text(("profiles:" + body).replace("device: orin",
                                                                         "device: orni", 1))
    [issue] = _issues(spec)
    assert issue.file and issue.file.endswith("profiles.yaml")
    assert issue.message == "unknown device 'orni'"


def test_http_bodies_cannot_name_files(example_text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(example_text.replace("search:", "profiles_from: [/etc/passwd]\nsearch:"))
    assert "not allowed" in info.value.issues[0].message
