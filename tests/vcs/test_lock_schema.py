"""A lock is input like a spec: every reader refuses a malformed one, located, with exit 2.

Each case of issue 25 (a string where a number belongs, a string for `fleet`,
NaN and infinity, a row without `device`, `count: [1, 2]`, `assignments: null`)
goes through the real CLI of every command that reads a lock (`diff`, `export`,
`check`): exit 2 (`check`: 1, its one line per failing spec), the lock's
file:line:column, no traceback, nothing written.  A property test mutates a
valid lock at random and asserts the same of whatever comes out, and that an
accepted lock exports files for the pools it names and no others.
"""

from __future__ import annotations

import functools
import io
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from configspec_opt.loader import Source, parse_data
from configspec_opt.vcs.lock import lock_path, parse_lock
from configspec_opt.vcs.lock_schema import lock_issues, lock_json_schema
from tests.cli_helpers import EXAMPLE, ROOT, invoke, run_process
from tests.fuzz.strategies import value_paths

LOCK_NAME = EXAMPLE.name + ".lock"
COMMITTED_LOCKS = sorted(p for top in ("examples", "specs") for p in (ROOT / top).rglob("*.lock"))


def _yaml_text(data: Any) -> str:
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def _line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing `needle`."""
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


SPEC_SHA = "the spec's sha256 line"
# (name, old text, new text, the line the error must point at: a substring of it)
CASES = [
    ("a string count", "    count: 200\n", "    count: '200'\n", "count: '200'"),
    ("a word for a number", "    goodput_tok_s: 4.306620209\n", "    goodput_tok_s: fast\n",
     "goodput_tok_s: fast"),
    ("a string for fleet", "fleet:\n  goodput_tok_s: 1019.221022\n",
     "fleet: everything\nunused:\n  goodput_tok_s: 1019.221022\n", "fleet: everything"),
    ("NaN", "    alpha: 0.52\n", "    alpha: .nan\n", "alpha: .nan"),
    ("infinity", "  value: 1019.221022\n", "  value: .inf\n", "value: .inf"),
    ("minus infinity", "    power_w: 8.3\n", "    power_w: -.inf\n", "power_w: -.inf"),
    ("a row without device", "  - device: rpi5\n    count: 200\n", "  - count: 200\n",
     "- count: 200"),
    ("count: [1, 2]", "    count: 200\n", "    count: [1, 2]\n", "count: [1, 2]"),
    ("assignments: null", "assignments:\n  - device: rpi5\n",
     "assignments: null\nx:\n  - device: rpi5\n", "assignments: null"),
    ("a negative count", "    count: 200\n", "    count: -200\n", "count: -200"),
    ("a boolean count", "    count: 200\n", "    count: true\n", "count: true"),
    ("a misspelt key", "    draft_tok_s: 14.4\n", "    draft_toks: 14.4\n", "draft_toks"),
    ("a missing sha256", SPEC_SHA, "", "spec:"),
    ("a newer format", "lock_version: 1\n", "lock_version: 2\n", "lock_version: 2"),
    ("a string version", "lock_version: 1\n", "lock_version: '1'\n", "lock_version: '1'"),
]
# Broken lines that a misplaced key makes (`unused:`, `x:`) are themselves refused, which
# is fine: the first problem listed must be the case's own.


@functools.cache
def good_lock() -> str:
    """The example's lock as `configspec lock` writes it now (solved once per session)."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / EXAMPLE.name
        shutil.copy(EXAMPLE, spec)
        r = invoke("lock", spec)
        assert r.exit_code == 0, r.stderr
        return lock_path(spec).read_text()


def _case_lock(old: str, new: str) -> str:
    good = good_lock()
    if old == SPEC_SHA:
        return re.sub(r"^  sha256: [0-9a-f]{64}\n", new, good, count=1, flags=re.M)
    assert old in good, old
    return good.replace(old, new, 1)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The example spec and its up-to-date lock, where a test may break the lock."""
    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    (tmp_path / LOCK_NAME).write_text(good_lock())
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / LOCK_NAME).write_text(good_lock())
    return tmp_path


def _located(stderr: str, lock: Path, line: int) -> None:
    lines = [int(m) for m in re.findall(rf"{re.escape(str(lock))}:(\d+):\d+: ", stderr)]
    assert line in lines, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(("name", "old", "new", "at"), CASES, ids=[c[0] for c in CASES])
def test_every_reader_refuses_the_malformed_lock(
        workdir: Path, name: str, old: str, new: str, at: str) -> None:
    lock = workdir / LOCK_NAME
    text = _case_lock(old, new)
    lock.write_text(text)
    line = _line_of(text, at)

    r = invoke("diff", lock, workdir / "good" / LOCK_NAME)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    _located(r.stderr, lock, line)
    assert "invalid lock" in r.stderr and r.stdout == ""

    r = invoke("diff", workdir / "good" / LOCK_NAME, lock, "--json")
    assert r.exit_code == 2
    body = json.loads(r.stdout)
    assert body["status"] == "invalid" and line in [e["line"] for e in body["errors"]]
    assert {e["file"] for e in body["errors"]} == {str(lock)}

    out = workdir / "deploy"
    r = invoke("export", lock, "-o", out)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    _located(r.stderr, lock, line)
    assert not out.exists()

    r = invoke("check", workdir / EXAMPLE.name, "--json")
    assert r.exit_code == 1  # check's contract: one failing line per spec, exit 1
    result = json.loads(r.stdout)["results"][0]
    assert result["status"] == "bad_lock", result
    assert re.search(rf"^invalid lock: {re.escape(str(lock))}:\d+:\d+: ", result["reason"])


def test_the_messages_say_what_is_wrong(workdir: Path) -> None:
    lock = workdir / LOCK_NAME
    for old, new, said in [
        ("    draft_tok_s: 14.4\n", "    draft_toks: 14.4\n", "did you mean 'draft_tok_s'?"),
        ("lock_version: 1\n", "lock_version: 2\n", "written by a newer configspec"),
        ("lock_version: 1\n", "lock_version: 0\n", "there is no lock_version 0"),
        ("lock_version: 1\n", "", "not a configspec lock: no lock_version"),
        ("    count: 200\n", "    count: -200\n", "greater than or equal to 1"),
        ("    alpha: 0.52\n", "    alpha: .nan\n", "finite number"),
        ("  - device: rpi5\n    count: 200\n", "  - count: 200\n", "missing required key "
         "'device'"),
    ]:
        lock.write_text(_case_lock(old, new))
        r = invoke("diff", lock, workdir / "good" / LOCK_NAME)
        assert r.exit_code == 2 and said in r.stderr, (said, r.stderr)
    lock.write_text("- just\n- a list\n")
    r = invoke("export", lock, "-o", workdir / "d")
    assert r.exit_code == 2 and f"{lock}:1:1: a lock is a mapping" in r.stderr
    lock.write_text("lock_version: [1\n")
    r = invoke("export", lock, "-o", workdir / "d")
    assert r.exit_code == 2 and re.search(rf"{re.escape(str(lock))}:\d+:\d+: invalid YAML",
                                          r.stderr), r.stderr
    assert not (workdir / "d").exists()


@pytest.mark.parametrize(("old", "new", "at", "said"), [
    ("    draft: llama-3.2-1b-instruct\n", "    draft: llama-9b\n", "draft: llama-9b",
     "no draft of that name in the spec"),
    ("    quant: Q4_K_M\n", "    quant: Q2_K\n", "quant: Q2_K", "has no such quant"),
    ("    target: llama-3.1-70b\n", "    target: gpt\n", "target: gpt",
     "no target of that name"),
    ("  - device: rpi5\n", "  - device: rpi6\n", "device: rpi6", "no device of that name"),
    ("    k: 6\n", "    k: 40\n", "k: 40", "K outside the spec's search.k"),
    ("    count: 200\n", "    count: 150\n", "assignments:",
     "pool 'rpi5' has 200 devices in the spec and 150 in the lock's assignments"),
])
def test_export_refuses_a_lock_that_does_not_fit_its_spec(
        workdir: Path, old: str, new: str, at: str, said: str) -> None:
    """The hashes say the spec is the one locked; the assignments were edited by hand."""
    lock = workdir / LOCK_NAME
    text = _case_lock(old, new)
    lock.write_text(text)
    out = workdir / "deploy"
    r = invoke("export", lock, "-o", out)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    _located(r.stderr, lock, _line_of(text, at))
    assert said in r.stderr
    assert not out.exists()
    # diff and check (by hashes) have no spec to hold the names against: they read it
    assert invoke("diff", lock, workdir / "good" / LOCK_NAME).exit_code == 0


def test_every_committed_lock_validates() -> None:
    assert len(COMMITTED_LOCKS) >= 6, COMMITTED_LOCKS
    validator = Draft202012Validator(json.loads(
        (ROOT / "schema" / "configspec-lock.schema.json").read_text()))
    for path in COMMITTED_LOCKS:
        text = path.read_text()
        assert parse_lock(text, str(path))["lock_version"] == 1
        data = parse_data(Source(str(path), text))
        errors = [e.message for e in validator.iter_errors(data)]
        assert not errors, (path, errors[:3])


def test_a_lock_written_now_validates_against_its_spec(spec_file: Path) -> None:
    r = invoke("lock", spec_file)
    assert r.exit_code == 0, r.stderr
    from configspec_opt.loader import load_spec

    text = lock_path(spec_file).read_text()
    data = parse_data(Source("x.lock", text))
    assert lock_issues(data, Source("x.lock", text), spec=load_spec(spec_file).spec) == []


def test_a_lock_from_before_mean_round_time_still_reads(workdir: Path) -> None:
    """Locks written before the fleet had `mean_round_time_s` (same lock_version) lack it."""
    lock = workdir / LOCK_NAME
    lock.write_text(re.sub(r"\n  mean_round_time_s: [0-9.]+", "", good_lock()))
    assert "mean_round_time_s" not in lock.read_text()
    r = invoke("diff", lock, workdir / "good" / LOCK_NAME, "--json")
    assert r.exit_code == 0, r.stderr
    moved = {m["metric"]: m for m in json.loads(r.stdout)["fleet"]}
    assert moved["mean_round_time_s"]["old"] is None
    assert invoke("export", lock, "-o", workdir / "d").exit_code == 0


def test_the_committed_lock_schema_is_current() -> None:
    proc = run_process("schema", "--lock")
    assert proc.exit_code == 0, proc.stderr
    schema = json.loads(proc.stdout)
    Draft202012Validator.check_schema(schema)
    assert schema == lock_json_schema()
    committed = json.loads((ROOT / "schema" / "configspec-lock.schema.json").read_text())
    assert committed == schema, "stale: configspec schema --lock --out " \
        "schema/configspec-lock.schema.json"


# --------------------------------------------------------------------------- fuzz




scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["rpi5", "orin", "Q4_K_M", "llama-3.1-70b", "optimal", "goodput",
                              "maximize", "0" * 64]))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3)
                      | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=6)


def _mutate(data: dict[str, Any], path: tuple[Any, ...], op: str, value: Any,
            key: str) -> Any:
    if not path:
        return value if op == "replace" else data
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if op == "replace":
        parent[last] = value
    elif op == "delete":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last][key] = value
    elif isinstance(parent[last], list):
        parent[last].append(value)
    else:
        parent[last] = value
    return data


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(draw=st.data(), op=st.sampled_from(["replace", "delete", "add"]),
       value=values, key=st.text(max_size=10), as_json=st.booleans())
def test_a_randomly_mutated_lock_is_refused_or_read_sanely(
        draw: st.DataObject, op: str, value: Any, key: str, as_json: bool) -> None:
    good = good_lock()
    data = parse_lock(good, "good")
    path = draw.draw(st.sampled_from(value_paths(data)), label="path")
    data = _mutate(data, path, op, value, key)
    try:
        text = json.dumps(data, indent=1) if as_json else _yaml_text(data)
    except (ValueError, TypeError):
        return  # not a document either format writes
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(EXAMPLE, root / EXAMPLE.name)
        lock = root / LOCK_NAME
        lock.write_text(text)
        (root / "good").mkdir()
        (root / "good" / LOCK_NAME).write_text(good)

        r = invoke("diff", lock, root / "good" / LOCK_NAME, "--json")
        assert r.exit_code in (0, 2), r.stdout
        event(f"diff exit {r.exit_code}")
        body = json.loads(r.stdout)
        if r.exit_code == 2:
            assert body["status"] == "invalid" and body["errors"][0]["file"] == str(lock)

        out = root / "deploy"
        r = invoke("export", lock, "-o", out, "--json")
        assert r.exit_code in (0, 1, 2), (r.exit_code, r.stdout)
        event(f"export exit {r.exit_code}")
        assert "Traceback" not in r.stderr
        if r.exit_code:
            assert not out.exists()
        else:
            named = {a["device"] for a in data["assignments"]}
            manifest = json.loads((out / "fleet.json").read_text())
            assert {p["pool"] for p in manifest["pools"]} == named
            assert sorted(f.name for f in out.iterdir()) == sorted(
                [f"{d}.json" for d in named] + ["fleet.json"])
            for device in named:
                doc = json.loads((out / f"{device}.json").read_text())
                counts = sum(c["count"] for c in doc["configurations"])
                assert counts == doc["devices"]  # every device of the pool, once

        r = invoke("check", root / EXAMPLE.name, "--json")
        assert r.exit_code in (0, 1)
        result = json.loads(r.stdout)["results"][0]
        assert result["status"] in ("ok", "bad_lock", "stale"), result
