"""Prompt files: plain text, JSONL, Dolly 15K as published; bundled set; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from configspec_opt.errors import UsageError
from profiler.plan import parse_k
from profiler.prompts import bundled_prompts, load_prompts


def test_bundled_prompts_cover_dolly_categories() -> None:
    ps = bundled_prompts()
    assert len(ps) == 32
    assert {p.category for p in ps} == {
        "open_qa", "general_qa", "brainstorming", "creative_writing", "classification",
        "information_extraction", "summarization", "closed_qa"}
    assert len({p.text for p in ps}) == 32


def test_plain_text_one_prompt_a_line(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("first prompt\n\n  second prompt  \n")
    assert [p.text for p in load_prompts(f)] == ["first prompt", "second prompt"]


def test_dolly_jsonl_joins_instruction_and_context(tmp_path: Path) -> None:
    f = tmp_path / "dolly.jsonl"
    rows = [{"instruction": "Summarize.", "context": "A long text.", "response": "x",
             "category": "summarization"},
            {"instruction": "Name a colour.", "context": "", "response": "red",
             "category": "open_qa"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ps = load_prompts(f, limit=5)
    assert [p.text for p in ps] == ["Summarize.\n\nA long text.", "Name a colour."]
    assert ps[0].category == "summarization"


def test_jsonl_prompt_field_and_limit(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "a"}\n{"text": "b"}\n"c"\n')
    assert [p.text for p in load_prompts(f)] == ["a", "b", "c"]
    assert [p.text for p in load_prompts(f, limit=2)] == ["a", "b"]


@pytest.mark.parametrize("content, message", [
    ('{"prompt": "a"}\n{"oops": 1}\n', r"p.jsonl:2: no 'prompt', 'text' or 'instruction'"),
    ('{"prompt": "a"}\n{not json\n', r"p.jsonl:2:2: invalid JSON"),
    ('"a"\n' + "[" * 100_000 + "]" * 100_000 + "\n", r"p.jsonl:2:65: invalid JSON: nested deeper"),
    ("", "no prompts"),
])
def test_bad_prompt_files(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_prompts(f)


def test_missing_prompt_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        load_prompts(tmp_path / "nope.txt")
    with pytest.raises(UsageError, match="not a regular file"):
        load_prompts(Path("/dev/zero"))


@pytest.mark.parametrize("text, want", [("2..5", [2, 3, 4, 5]), ("2-4", [2, 3, 4]),
                                        ("8,2,4", [2, 4, 8]), ("5", [5]), (None, [2, 3])])
def test_parse_k(text: str | None, want: list[int]) -> None:
    assert parse_k(text, range(2, 4)) == want


def test_parse_k_rejects_nonsense() -> None:
    with pytest.raises(UsageError):
        parse_k("0..3", range(2, 4))
