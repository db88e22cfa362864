"""Keys made of Unicode digits are located like any unknown key, in YAML and in JSON.

`str.isdigit` accepts '³' and `int` refuses it: the locator once crashed on
such keys (the HTTP service then had a guard of its own).  The loader must
answer them as ordinary located errors on every path: CLI, HTTP, includes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from configspec_opt.errors import SpecError
from configspec_opt.loader import parse_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llama70b-edge.yaml"
KEYS = ("³", "²²", "½", "٣", "１２", "Ⅻ", "߀", "1e3")
PLACES = (("Q8_0: {size_gb: 1.32}", 'Q8_0: {size_gb: 1.32, "KEY": 1}'),
          ("llama-3.1-70b: {2: 0.70,", 'llama-3.1-70b: {"KEY": 0.1, 2: 0.70,'),
          ("llama-3.1-70b: {per_token: 0.86}", 'llama-3.1-70b: {per_token: 0.86, "KEY": 1}'))


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("place", range(len(PLACES)))
@pytest.mark.parametrize("form", ["yaml", "json"])
def test_digit_keys_are_located(key: str, place: int, form: str) -> None:
    old, new = PLACES[place]
    text = EXAMPLE.read_text()
    assert old in text
    text = text.replace(old, new.replace("KEY", key), 1)
    if form == "json":
        text = json.dumps(YAML(typ="safe").load(text), indent=1)
    with pytest.raises(SpecError) as info:
        parse_spec(text, name="<request>", base_dir=None)
    issues = info.value.issues
    assert issues and all(i.line is not None and i.column is not None for i in issues)
    assert any(key in i.to_dict()["path"] for i in issues), [i.to_dict() for i in issues]
