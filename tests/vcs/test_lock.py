"""`configspec lock`: deterministic bytes, the decision the solver makes, nothing volatile."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from configspec_opt.vcs.lock import lock_path
from configspec_opt.vcs.yamldump import FLOAT_DIGITS, dump_yaml, round_float
from tests.cli_helpers import ROOT, Run, replace_in

VOLATILE = {"time_s", "build_s", "stages", "gap", "timestamp", "date"}


def _walk(obj: Any) -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        return [(str(k), v) for k, v in obj.items()] + [x for v in obj.values() for x in _walk(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _walk(v)]
    return []


def test_lock_is_byte_identical_across_runs_and_processes(
        cli: Callable[..., Run], spec_file: Path) -> None:
    assert cli("lock", spec_file).exit_code == 0
    first = lock_path(spec_file).read_bytes()
    lock_path(spec_file).unlink()
    assert cli("lock", spec_file).exit_code == 0
    assert lock_path(spec_file).read_bytes() == first

    # A fresh interpreter with another hash seed must write the same bytes too.
    lock_path(spec_file).unlink()
    env = {**os.environ, "PYTHONHASHSEED": "4711", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", "from configspec_opt.cli import main; main()",
                    "lock", str(spec_file)], check=True, env=env, capture_output=True)
    assert lock_path(spec_file).read_bytes() == first


def test_lock_holds_the_decision_and_no_timings(cli: Callable[..., Run], spec_file: Path) -> None:
    result = cli("lock", spec_file)
    assert result.exit_code == 0, result.stderr
    data = YAML(typ="safe").load(lock_path(spec_file).read_text())
    assert data["status"] == "optimal"
    assert data["solver"]["proven_optimal"] is True
    assert data["objective"]["metric"] == "goodput"
    assert data["tool"].startswith("configspec-opt ")
    assert len(data["spec"]["sha256"]) == 64
    # Table 2 of the paper, max goodput on the RPi 5: 1B-Instruct Q4, K = 6, 4.50 tok/s.
    rpi5 = next(a for a in data["assignments"] if a["device"] == "rpi5")
    assert (rpi5["draft"], rpi5["quant"], rpi5["k"]) == ("llama-3.2-1b-instruct", "Q4_K_M", 6)
    assert math.isclose(rpi5["goodput_tok_s"], 4.50, abs_tol=0.005)
    keys = {k for k, _ in _walk(data)}
    assert not keys & VOLATILE, keys & VOLATILE
    for _, v in _walk(data):
        if isinstance(v, float):
            assert v == round_float(v), v  # every float carries at most 10 digits


def test_lock_is_rewritten_only_when_its_content_changes(
        cli: Callable[..., Run], spec_file: Path) -> None:
    assert "wrote" in cli("lock", spec_file).stdout
    assert "unchanged" in cli("lock", spec_file).stdout


def test_an_infeasible_spec_is_not_locked(cli: Callable[..., Run], spec_file: Path) -> None:
    text = spec_file.read_text() + "constraints:\n  fleet:\n    min_goodput_tok_s: 1000\n"
    spec_file.write_text(text)
    result = cli("lock", spec_file)
    assert result.exit_code == 1
    assert "infeasible" in result.stderr
    assert not lock_path(spec_file).exists()


def test_an_invalid_spec_is_not_locked(cli: Callable[..., Run], spec_file: Path) -> None:
    replace_in(spec_file, "count: 1", "count: many")
    result = cli("lock", spec_file)
    assert result.exit_code == 2
    assert "devices[0].count" in result.stderr
    assert not lock_path(spec_file).exists()


def test_generated_yaml_is_safe_for_yaml_1_1_readers() -> None:
    text = dump_yaml({"a": "yes", "b": "1.5", "c": 1e-05, "d": None, "e": "Q4_K_M"})
    assert "a: 'yes'" in text
    assert "b: '1.5'" in text
    assert "c: 1.0e-05" in text  # YAML 1.1 needs the dot to read a float
    assert "d: null" in text
    assert "e: Q4_K_M" in text


@settings(deadline=None)  # hypothesis' default 200 ms per example fails a loaded 2-core machine
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=5),
       st.text(max_size=12))
def test_generated_yaml_reads_back_as_the_rounded_data(xs: list[float], s: str) -> None:
    data = {"xs": xs, "s": s, "n": len(xs)}
    back = YAML(typ="safe").load(dump_yaml(data))
    assert back["xs"] == [round_float(x) for x in xs]
    assert back["s"] == s


def test_floats_keep_ten_significant_digits() -> None:
    assert FLOAT_DIGITS == 10
    assert round_float(2.439886164063461) == 2.439886164
    assert round_float(1334000.0000000002) == 1334000.0
    assert round_float(0.006584400442749969) == 0.006584400443
