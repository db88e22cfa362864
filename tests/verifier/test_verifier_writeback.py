"""`targets[].verifier` written back into a spec: minimal diff, comments kept, valid."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest

from configspec_opt.errors import SpecError
from configspec_opt.loader import load_spec, parse_spec
from profiler.writeback import upsert_verifier_text, write_verifier

SPEC = """\
version: 1
name: wb   # keep me
targets:
  - name: big
    family: f
    price_usd_per_mtok: 0.90      # odd   spacing
    verify_latency_s: 0.5
  - name: other
    family: f
    price_usd_per_mtok: 1
    verify_latency_s: 0.5
drafts:
  - name: d
    family: f
    quants:
      Q4: {size_gb: 1}
devices:
  - name: dev
    count: 1
    memory_gb: 8
objective:
  maximize: goodput
"""

VERIFIER: dict[str, Any] = {
    "replicas": {"min": 1, "max": 4},
    "price_usd_per_replica_hour": 2.5,
    "max_batch": 16,
    "latency_s": {1: {2: 0.031, 4: 0.045}, 2: {2: 0.04, 4: 0.06}},
    "provenance": {"endpoint": "http://127.0.0.1:8080", "date": "2026-01-02T03:04:05+00:00",
                   "repeats": {1: {2: 10, 4: 10}, 2: {2: 12, 4: 12}}},
}


def _changed(old: str, new: str) -> tuple[list[str], list[str]]:
    removed, added = [], []
    for line in difflib.ndiff(old.splitlines(), new.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def test_creates_the_section_inside_the_right_target() -> None:
    new = upsert_verifier_text(SPEC, "big", VERIFIER)
    removed, added = _changed(SPEC, new)
    assert removed == []
    assert added[0] == "    verifier:" and "      latency_s:" in added
    assert "        1: {2: 0.031, 4: 0.045}" in added
    spec = parse_spec(new).spec
    assert spec.targets[0].verifier is not None and spec.targets[1].verifier is None
    assert spec.targets[0].verifier.latency_s == {1: {2: 0.031, 4: 0.045}, 2: {2: 0.04, 4: 0.06}}
    # the new block sits right after the target's last line, before the next target
    lines = new.splitlines()
    assert lines[lines.index("    verifier:") - 1] == "    verify_latency_s: 0.5"


def test_updates_only_changed_rows_and_keeps_comments() -> None:
    first = upsert_verifier_text(SPEC, "big", VERIFIER)
    first = first.replace("      latency_s:\n", "      latency_s:   # measured\n")
    first = first.replace("        1: {2: 0.031, 4: 0.045}\n",
                          "        1: {2: 0.031, 4: 0.045}   # row one\n")
    first = first.replace("      max_batch: 16\n", "      max_batch: 16   # per replica\n")
    new = {**VERIFIER,
           "latency_s": {1: {2: 0.031, 4: 0.045}, 2: {2: 0.041, 4: 0.06},
                         4: {2: 0.05, 4: 0.07}},
           "provenance": {**VERIFIER["provenance"], "date": "2026-02-02T00:00:00+00:00"}}
    second = upsert_verifier_text(first, "big", new)
    removed, added = _changed(first, second)
    assert removed == ["        2: {2: 0.04, 4: 0.06}",
                       "        date: '2026-01-02T03:04:05+00:00'"]
    assert added == ["        2: {2: 0.041, 4: 0.06}",
                     "        4: {2: 0.05, 4: 0.07}",
                     "        date: '2026-02-02T00:00:00+00:00'"]
    for kept in ("# measured", "# row one", "# per replica", "# odd   spacing", "# keep me"):
        assert kept in second
    assert upsert_verifier_text(second, "big", new) == second  # idempotent


def test_rows_appended_to_a_nested_table_stay_in_it() -> None:
    """A row added to the last table of `provenance` and a key added after it."""
    first = upsert_verifier_text(SPEC, "big", VERIFIER)
    prov = {**VERIFIER["provenance"], "repeats": {1: {2: 10, 4: 10}, 2: {2: 12, 4: 12},
                                                  4: {2: 3, 4: 3}},
            "warnings": ["b=4 K=2: not stable"]}
    second = upsert_verifier_text(first, "big", {"provenance": prov})
    removed, added = _changed(first, second)
    assert removed == []
    assert added == ["          4: {2: 3, 4: 3}", "        warnings: ['b=4 K=2: not stable']"]
    ver = parse_spec(second).spec.targets[0].verifier
    assert ver is not None and ver.provenance == prov


def test_keys_not_given_are_kept() -> None:
    first = upsert_verifier_text(SPEC, "big", VERIFIER)
    second = upsert_verifier_text(first, "big", {"latency_s": {1: {2: 0.5, 4: 0.6}}})
    spec = parse_spec(second).spec
    ver = spec.targets[0].verifier
    assert ver is not None and ver.max_batch == 16 and ver.provenance
    assert ver.latency_s == {1: {2: 0.5, 4: 0.6}}


def test_write_is_validated_and_atomic(tmp_path: Path) -> None:
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC)
    write_verifier(p, "big", VERIFIER)
    assert load_spec(p).spec.targets[0].verifier is not None
    before = p.read_bytes()
    ragged = {**VERIFIER, "latency_s": {1: {2: 0.1}, 2: {2: 0.1, 4: 0.2}}}
    with pytest.raises(SpecError):
        write_verifier(p, "big", ragged)
    assert p.read_bytes() == before
    with pytest.raises(SpecError):
        write_verifier(p, "nope", VERIFIER)
    assert p.read_bytes() == before
