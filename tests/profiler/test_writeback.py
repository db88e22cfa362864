"""Round-trip writes: byte-level diffs show only the measured entries."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from configspec_opt.errors import SpecError
from configspec_opt.loader import load_spec
from profiler.writeback import guess_indents, upsert_spec_text, write_profiles
from tests.profiler.conftest import TINY_SPEC

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llama70b-edge.yaml"

ENTRY = {
    "device": "here", "draft": "tiny-draft", "quant": "close", "draft_tok_s": 812.5,
    "acceptance": {"tiny-target": {2: 0.8, 3: 0.75}},
    "provenance": {"tool": "test", "per_k": {2: {"ci95": [0.7, 0.9], "rounds": 12}}},
}


def _changed(old: str, new: str) -> tuple[list[str], list[str]]:
    removed, added = [], []
    for line in difflib.ndiff(old.splitlines(keepends=True), new.splitlines(keepends=True)):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


@pytest.mark.parametrize("text", [TINY_SPEC, EXAMPLE.read_text()])
def test_round_trip_without_changes_is_byte_identical(text: str) -> None:
    assert upsert_spec_text(text, []) == text


def test_adding_a_profile_only_adds_lines(tmp_path: Path) -> None:
    new = upsert_spec_text(TINY_SPEC, [ENTRY])
    removed, added = _changed(TINY_SPEC, new)
    assert removed == []
    assert added[0] == "profiles:\n"
    assert "  - device: here\n" in added
    assert "      tiny-target: {2: 0.8, 3: 0.75}\n" in added
    # inserted right after devices, before search
    assert new.index("profiles:") < new.index("search:")
    p = tmp_path / "spec.yaml"
    p.write_text(new)
    for f in ("tiny-target.gguf",):
        (tmp_path / f).write_bytes(b"")
    assert load_spec(p).spec.profiles[0].draft_tok_s == 812.5


def test_updating_an_entry_changes_only_its_numbers() -> None:
    text = EXAMPLE.read_text()
    upd = {"device": "rpi5", "draft": "llama-3.2-1b-instruct", "quant": "Q8_0",
           "draft_tok_s": 9.3, "power_w": 8.6,
           "acceptance": {"llama-3.1-70b": {2: 0.72, 3: 0.68}}}
    new = upsert_spec_text(text, [upd])
    removed, added = _changed(text, new)
    assert removed == ["    draft_tok_s: 9.1\n",
                       "      llama-3.1-70b: {2: 0.72, 3: 0.67, 4: 0.62, 5: 0.565, 6: 0.54, "
                       "7: 0.50, 8: 0.46, 9: 0.43, 10: 0.40}\n"]
    assert added == ["    draft_tok_s: 9.3\n", "      llama-3.1-70b: {2: 0.72, 3: 0.68}\n"]
    # the comment on the first profile's acceptance key is untouched
    assert "acceptance:                     # alpha(K) per target" in new


def test_strings_that_need_quotes_in_flow_style_are_quoted() -> None:
    entry = dict(ENTRY, provenance={"target": {"kind": "remote",
                                               "endpoint": "http://127.0.0.1:8080"}})
    new = upsert_spec_text(TINY_SPEC, [entry])
    assert "{kind: remote, endpoint: 'http://127.0.0.1:8080'}" in new
    from configspec_opt.loader import parse_spec

    assert parse_spec(new).spec.profiles[0].provenance == entry["provenance"]


def test_indent_guess_separates_mapping_and_sequence_styles() -> None:
    assert guess_indents(EXAMPLE.read_text()) == (2, 2)
    assert guess_indents("a:\n    b: 1\nc:\n-   x\n") == (4, 0)


def test_invalid_result_is_refused_and_file_untouched(tmp_path: Path) -> None:
    p = tmp_path / "spec.yaml"
    p.write_text(TINY_SPEC)
    bad = dict(ENTRY, quant="no-such-quant")
    with pytest.raises(SpecError, match="no quant 'no-such-quant'"):
        write_profiles(p, [bad])
    assert p.read_text() == TINY_SPEC
    assert [f.name for f in tmp_path.iterdir()] == ["spec.yaml"]  # no temp file left


def test_out_file_is_created_then_updated(tmp_path: Path) -> None:
    out = tmp_path / "profiles.yaml"
    write_profiles(tmp_path / "unused.yaml", [ENTRY], out)
    first = out.read_text()
    assert first.startswith("profiles:\n- device: here\n")
    write_profiles(tmp_path / "unused.yaml", [dict(ENTRY, draft_tok_s=900.0)], out)
    removed, added = _changed(first, out.read_text())
    assert (removed, added) == (["  draft_tok_s: 812.5\n"], ["  draft_tok_s: 900.0\n"])
