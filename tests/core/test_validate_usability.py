"""`validate` warns, located, about pools without candidates and profiles never usable.

The reasons are the exclusions `enumerate_candidates` records while it builds
the candidates, so validate, solve's diagnosis and the candidates agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from configspec_opt.candidates import enumerate_candidates
from configspec_opt.cli import app
from configspec_opt.loader import load_spec
from configspec_opt.usability import analyse

BASE = """\
version: 1
name: usability
targets:
  - {name: big, family: llama, price_usd_per_mtok: 0.9, verify_latency_s: 0.5}
drafts:
  - name: small
    family: llama
    quants:
      Q4: {size_gb: 1.5}
      Q8: {size_gb: 9.0}
  - name: qwen
    family: qwen
    quants:
      Q4: {size_gb: 1.0}
devices:
  - {name: pi, count: 2, memory_gb: 8}
  - {name: orin, count: 1, memory_gb: 4}
  - {name: lonely, count: 1, memory_gb: 4}
profiles:
  - device: pi
    draft: small
    quant: Q4
    draft_tok_s: 10
    acceptance: {big: {per_token: 0.7}}
"""

PI_Q8 = """\
  - device: pi
    draft: small
    quant: Q8
    draft_tok_s: 9
    acceptance: {big: {per_token: 0.7}}
"""
ORIN_Q8 = PI_Q8.replace("device: pi", "device: orin")


def _line(text: str, needle: str, nth: int = 1) -> int:
    hits = [i for i, t in enumerate(text.splitlines(), 1) if needle in t]
    return hits[nth - 1]


def _cli(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_two_pools_without_profile_are_warned_located_and_strict_refuses(
        tmp_path: Path) -> None:
    spec = _write(tmp_path, BASE)
    code, out, _ = _cli("validate", spec)
    assert code == 0
    for name in ("orin", "lonely"):
        line = _line(BASE, f"name: {name},")
        assert (f"warning: {spec}:{line}:5: devices[{1 if name == 'orin' else 2}]: pool "
                f"'{name}' has no candidates, so no assignment exists: no profile for this "
                f"device (measure one: configspec profile SPEC --device {name})") in out

    code, out, err = _cli("validate", "--strict", spec)
    assert code == 2
    assert "invalid spec (2 problems)" in err
    assert f"{spec}:{_line(BASE, 'name: orin,')}:5: devices[1]: pool 'orin'" in err
    assert "valid (" not in out

    code, out, _ = _cli("validate", "--strict", "--json", spec)
    assert code == 2
    errors = json.loads(out)["errors"]
    assert [(e["path"], e["line"]) for e in errors] == [
        ("devices[1]", _line(BASE, "name: orin,")), ("devices[2]", _line(BASE, "name: lonely,"))]


def test_validate_json_carries_the_warnings(tmp_path: Path) -> None:
    spec = _write(tmp_path, BASE)
    code, out, _ = _cli("validate", "--json", spec)
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "valid"
    assert data["pools_without_candidates"] == ["orin", "lonely"]
    assert any("pool 'orin' has no candidates" in w for w in data["warnings"])
    [orin, lonely] = data["usability"]
    assert lonely["device"] == "lonely" and lonely["hint"].startswith("measure one")
    assert orin["scope"] == "pool" and orin["kind"] == "no_candidates"
    assert orin["device"] == "orin" and orin["line"] == _line(BASE, "name: orin,")
    assert orin["file"] == str(spec) and orin["column"] == 5


def test_an_oversized_draft_is_reported_even_beside_another_candidate(tmp_path: Path) -> None:
    text = BASE + PI_Q8
    spec = _write(tmp_path, text)
    code, out, _ = _cli("validate", spec)
    assert code == 0
    line = _line(text, "device: pi", 2)
    assert (f"warning: {spec}:{line}:5: profiles[1]: pi/small/Q8 can never be a candidate: "
            "small Q8 needs 9 GB, device has 8 GB (memory_gb)") in out
    assert "pool 'pi'" not in out  # pi still has its Q4 candidates


def test_a_pool_whose_only_draft_does_not_fit_has_no_candidates(tmp_path: Path) -> None:
    text = BASE + ORIN_Q8
    spec = _write(tmp_path, text)
    code, out, _ = _cli("validate", spec)
    assert code == 0
    assert (f"{spec}:{_line(text, 'name: orin,')}:5: devices[1]: pool 'orin' has no "
            "candidates, so no assignment exists: small Q8 needs 9 GB, device has 4 GB "
            "(memory_gb)") in out
    assert (f"{spec}:{_line(text, 'device: orin')}:5: profiles[1]: orin/small/Q8 can never "
            "be a candidate") in out
    code, _, err = _cli("validate", "--strict", spec)
    assert code == 2 and "pool 'orin' has no candidates" in err


def test_family_mismatch_k_range_and_pins_are_explained(tmp_path: Path) -> None:
    text = BASE.replace("name: lonely, count: 1", "name: lonely, count: 3") + """\
  - device: pi
    draft: qwen
    quant: Q4
    draft_tok_s: 10
  - device: orin
    draft: small
    quant: Q4
    draft_tok_s: 10
    acceptance: {big: {12: 0.5, 16: 0.4}}
  - device: lonely
    draft: small
    quant: Q4
    draft_tok_s: 10
    acceptance: {big: {per_token: 0.7}}
constraints:
  pinned:
    - {device: lonely, draft: small, k: 3}
    - {device: lonely, quant: Q8}
"""
    spec = _write(tmp_path, text)
    loaded = load_spec(spec)
    by_kind = {(w.scope, w.kind, w.device): w for w in analyse(loaded)}
    family = by_kind[("profile", "family", "pi")]
    assert family.issue.line == _line(text, "draft: qwen") - 1
    assert "qwen (family qwen) matches the family of no target (llama)" in family.format()
    k_range = by_kind[("profile", "k_range", "orin")]
    assert "acceptance is given for big at K=12,16, none in search.k (2..10)" in k_range.format()
    orin = by_kind[("pool", "no_candidates", "orin")]
    assert "none in search.k" in orin.format()
    lonely = by_kind[("pool", "no_candidates", "lonely")]
    assert "excluded by the pins on this pool (draft=small, k=3; quant=Q8)" in lonely.format()
    assert ("pool", "no_candidates", "pi") not in by_kind


def test_a_pin_that_leaves_other_candidates_is_not_reported(tmp_path: Path) -> None:
    text = BASE.replace("memory_gb: 8}", "memory_gb: 16}") + PI_Q8 + """constraints:
  pinned:
    - {device: pi, quant: Q8}
"""
    warnings = analyse(load_spec(_write(tmp_path, text)))
    assert [(w.scope, w.device) for w in warnings] == [("pool", "orin"), ("pool", "lonely")]


def test_a_profile_in_a_profiles_from_file_is_located_in_that_file(tmp_path: Path) -> None:
    more = "profiles:\n" + ORIN_Q8
    _write(tmp_path, more, "more.yaml")
    spec = _write(tmp_path, BASE + "profiles_from: [more.yaml]\n")
    code, out, _ = _cli("validate", spec)
    assert code == 0
    assert (f"{tmp_path / 'more.yaml'}:2:5: profiles[1]: orin/small/Q8 can never be a "
            "candidate: small Q8 needs 9 GB, device has 4 GB") in out


def test_reasons_are_the_ones_the_candidates_and_solve_give(tmp_path: Path) -> None:
    """One truth: every reason solve's diagnosis prints is in validate's pool warning."""
    pytest.importorskip("pyomo")
    text = BASE + ORIN_Q8
    spec = _write(tmp_path, text)
    pools = enumerate_candidates(load_spec(spec).spec)
    assert [pc.device.name for pc in pools if not pc.candidates] == ["orin", "lonely"]
    _, out, _ = _cli("validate", "--json", spec)
    warned = {w["device"]: w["message"] for w in json.loads(out)["usability"]
              if w["scope"] == "pool"}
    code, out, _ = _cli("solve", "--json", spec)
    assert code == 1
    structural = json.loads(out)["diagnosis"]["structural"]
    assert {s["device"] for s in structural} == set(warned)
    for s in structural:
        for reason in s["reasons"]:
            assert reason in warned[s["device"]]


def test_a_solvable_spec_has_no_usability_warnings() -> None:
    root = Path(__file__).resolve().parents[2]
    assert analyse(load_spec(root / "examples" / "llama70b-edge.yaml")) == []
