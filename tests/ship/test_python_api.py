"""`from configspec_opt import load_spec, solve`: the CLI's answer, as Python objects."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import EXAMPLE, ROOT, invoke, parse_html

VOLATILE = ("time_s", "build_s", "stages")


def _stable(report: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(report)
    out["solver"] = {k: v for k, v in report["solver"].items() if k not in VOLATILE}
    return out


def test_solve_returns_what_the_cli_prints() -> None:
    from configspec_opt import load_spec, solve
    from configspec_opt.fleet import FleetMetrics

    cli = json.loads(invoke("solve", EXAMPLE, "--json").stdout)
    for spec in (EXAMPLE, str(EXAMPLE), load_spec(EXAMPLE)):
        result = solve(spec)
        assert result.status == "optimal" and result.solved
        assert result.assignments == cli["assignments"]
        assert _stable(result.report) == _stable(cli)
    # the typed objects behind the dict
    assert isinstance(result.fleet, FleetMetrics)
    assert [(c.device, c.k, n) for c, n in result.solution.assignment] == \
        [(a["device"], a["k"], a["count"]) for a in cli["assignments"]]
    assert result.objective_value == pytest.approx(cli["objective"]["value"])


def test_options_are_the_cli_options() -> None:
    from configspec_opt import load_spec, solve

    cli = json.loads(invoke("solve", EXAMPLE, "--json", "--objective", "min:energy",
                            "--device", "rpi5").stdout)
    result = solve(load_spec(EXAMPLE).spec, objective="min:energy", devices=["rpi5"])
    assert result.assignments == cli["assignments"]
    from configspec_opt.errors import UsageError

    with pytest.raises(UsageError, match="unknown device nope"):
        solve(EXAMPLE, devices=["nope"])


def test_infeasible_is_a_status_with_its_diagnosis(tmp_path: Path) -> None:
    from configspec_opt import solve

    spec = tmp_path / "tight.yaml"
    spec.write_text(EXAMPLE.read_text().replace("min_goodput_tok_s: 2.0",
                                                "min_goodput_tok_s: 9.0"))
    result = solve(spec)
    assert result.status == "infeasible" and not result.solved
    assert result.report["diagnosis"]["relaxations"][0]["constraint"] == \
        "constraints.per_device.min_goodput_tok_s"


def test_notebook_display_is_html() -> None:
    from configspec_opt import solve

    html = solve(EXAMPLE)._repr_html_()
    page = parse_html("<!DOCTYPE html><html><body>" + html + "</body></html>")
    assert "rpi5" in " ".join(page.text) and "<script" not in html


def test_importing_the_package_stays_light() -> None:
    code = ("import sys, configspec_opt\n"
            "heavy = [m for m in ('pydantic', 'pyomo', 'highspy', 'fastapi', 'matplotlib')"
            " if m in sys.modules]\n"
            "from configspec_opt import load_spec, solve\n"
            "print(heavy, 'pyomo' in sys.modules, callable(solve))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=True)
    assert proc.stdout.strip() == "[] False True"
