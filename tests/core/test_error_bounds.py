"""An error message is never what exhausts memory: echoed values, problem counts, expansion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from configspec_opt.errors import SpecError
from configspec_opt.limits import CHARS
from configspec_opt.loader import MAX_ECHO, MAX_ISSUES, load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llama70b-edge.yaml"


def _example() -> dict[str, Any]:
    data = YAML(typ="safe").load(EXAMPLE.read_text())
    assert isinstance(data, dict)
    return data


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "spec.yaml"
    with path.open("w") as fh:
        YAML().dump(data, fh)
    return path


def test_a_huge_bad_value_is_echoed_cut(tmp_path: Path) -> None:
    data = _example()
    data["devices"][0]["count"] = "x" * 100_000
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, data))
    text = str(err.value)
    assert "100,002 characters" in text  # the repr's length, quotes included
    assert len(text) < 2_000
    assert "x" * (MAX_ECHO + 1) not in text


def test_a_huge_unknown_key_is_echoed_cut(tmp_path: Path) -> None:
    data = _example()
    data["devices"][0]["k" * 50_000] = 1
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, data))
    assert len(str(err.value)) < 2_000


def test_many_problems_are_counted_not_listed(tmp_path: Path) -> None:
    data = _example()
    data["profiles"] = [{**data["profiles"][0], "device": f"nowhere-{i}"} for i in range(300)]
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, data))
    issues = err.value.issues
    assert len(issues) == MAX_ISSUES + 1
    assert "more problems" in issues[-1].message
    assert all("nowhere" in i.message for i in issues[:MAX_ISSUES])


def test_aliases_that_expand_to_too_much_text_are_refused(tmp_path: Path) -> None:
    chunk = "y" * 100_000
    refs = ", ".join("*s" for _ in range(CHARS.value // len(chunk) + 10))
    text = EXAMPLE.read_text() + f"\nx-padding: &s {chunk}\nx-more: [{refs}]\n"
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert "characters" in str(err.value)
    assert len(str(err.value)) < 2_000
