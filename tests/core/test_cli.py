"""The `configspec` command as a user runs it: a real process, exit codes, output."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llama70b-edge.yaml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "configspec_opt", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, check=False)


def test_solve_json_is_only_json_and_matches_contract() -> None:
    proc = run("solve", str(EXAMPLE), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # nothing but JSON on stdout
    assert data["status"] == "optimal"
    assert data["objective"] == {"sense": "maximize", "metric": "goodput",
                                 "value": pytest.approx(data["fleet"]["goodput_tok_s"])}
    a = data["assignments"][0]
    for key in ("device", "count", "target", "draft", "quant", "k", "goodput_tok_s",
                "cost_tok_per_usd", "energy_j_per_tok"):
        assert key in a
    assert sum(x["count"] for x in data["assignments"]) == 220
    assert data["fleet"]["goodput_tok_s"] == pytest.approx(
        sum(x["count"] * x["goodput_tok_s"] for x in data["assignments"]))
    assert set(data["fleet"]) >= {"goodput_tok_s", "cost_usd_per_hour", "verifier_load_tok_s",
                                  "power_w"}
    assert data["solver"]["name"] == "highs" and data["solver"]["proven_optimal"] is True
    assert data["fleet"]["cost_usd_per_hour"] <= 40 and data["fleet"]["power_w"] <= 3000
    assert len({(x["draft"], x["quant"]) for x in data["assignments"]}) <= 2


def test_infeasible_exits_1_with_diagnosis(tmp_path: Path) -> None:
    spec = tmp_path / "tight.yaml"
    spec.write_text(EXAMPLE.read_text().replace("min_goodput_tok_s: 2.0",
                                                "min_goodput_tok_s: 9.0"))
    proc = run("solve", str(spec), "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["status"] == "infeasible"
    [r] = data["diagnosis"]["relaxations"]
    assert r["constraint"] == "constraints.per_device.min_goodput_tok_s"
    human = run("solve", str(spec))
    assert human.returncode == 1 and "relax constraints.per_device.min_goodput_tok_s" in \
        human.stdout


def test_invalid_spec_exits_2_with_location(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    text = EXAMPLE.read_text().replace("    rtt_s: 0.04", "    rtt: 0.04")
    spec.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "rtt: 0.04" in t)
    for cmd in ("validate", "solve", "evaluate"):
        proc = run(cmd, str(spec))
        assert proc.returncode == 2
        assert f"bad.yaml:{line}:5: devices[0].rtt: unknown key 'rtt' (did you mean " \
               "'rtt_s'?)" in proc.stderr
        assert "Traceback" not in proc.stderr
    proc = run("validate", str(spec), "--json")
    assert json.loads(proc.stdout)["errors"][0]["line"] == line


def test_missing_file_is_a_clear_error() -> None:
    proc = run("solve", "nope.yaml")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_objective_override_and_device_filter() -> None:
    proc = run("solve", str(ROOT / "examples/paper/llama70b.yaml"), "-d", "rpi5",
               "--objective", "min:energy", "--json")
    data = json.loads(proc.stdout)
    [a] = data["assignments"]
    assert (a["device"], a["k"], a["draft"]) == ("rpi5", 2, "llama-3.2-1b-instruct")
    proc = run("solve", str(ROOT / "examples/paper/llama70b.yaml"), "--objective", "min:energy")
    assert proc.returncode == 2 and "rpi4" in proc.stderr and "no power data" in proc.stderr


def test_evaluate_sorts_and_marks_slo() -> None:
    proc = run("evaluate", str(EXAMPLE), "--json", "--sort", "energy", "-d", "rpi5")
    rows = json.loads(proc.stdout)["candidates"]
    energies = [r["energy_j_per_tok"] for r in rows]
    assert energies == sorted(energies)
    assert {r["device"] for r in rows} == {"rpi5"}
    assert any(not r["meets_slo"] for r in rows)


def test_pareto_csv_is_non_dominated() -> None:
    proc = run("pareto", str(ROOT / "examples/paper/llama70b.yaml"), "-d", "rpi5",
               "-d", "jetson-orin", "--x", "goodput", "--y", "energy", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    pts = [(float(r["goodput"]), float(r["energy"]))
           for r in csv.DictReader(io.StringIO(proc.stdout))]
    assert len(pts) >= 3
    for g, e in pts:
        assert not any(g2 >= g and e2 <= e and (g2, e2) != (g, e) for g2, e2 in pts)


def test_schema_is_json_schema_of_the_spec() -> None:
    proc = run("schema")
    schema = json.loads(proc.stdout)
    assert schema["title"] == "configspec-opt deployment spec"
    assert {"targets", "drafts", "devices", "profiles"} <= set(schema["properties"])
    committed = json.loads((ROOT / "schema" / "configspec.schema.json").read_text())
    assert committed == schema, "schema/configspec.schema.json is stale: configspec schema --out"


def test_repository_fleet_spec_solves() -> None:
    proc = run("solve", str(ROOT / "specs" / "retail-fleet.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["status"] == "optimal"
    assert data["fleet"]["cost_usd_per_hour"] <= 12.0 + 1e-6


def test_committed_locks_follow_from_their_specs() -> None:
    """CI fails when a committed decision no longer follows from its committed spec."""
    proc = run("check", "--resolve", "specs", "examples/llama70b-edge.yaml", "examples/paper")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "specs/retail-fleet.yaml: ok" in proc.stdout


def test_large_front_is_sampled_across_its_range() -> None:
    proc = run("pareto", str(EXAMPLE), "--x", "goodput", "--y", "cost", "--points", "5",
               "--json")
    data = json.loads(proc.stdout)
    assert data["complete"] is False and 2 <= len(data["points"]) <= 5
    xs = [p["x"] for p in data["points"]]
    ys = [p["y"] for p in data["points"]]
    assert xs == sorted(xs, reverse=True) and ys == sorted(ys, reverse=True)
    full = json.loads(run("solve", str(EXAMPLE), "--json", "--objective", "min:cost").stdout)
    # the sample reaches the cheap end of the front, not just the neighbourhood of the start
    assert ys[-1] == pytest.approx(full["fleet"]["cost_usd_per_hour"], rel=1e-6)


def test_evaluate_json_has_the_warnings_the_table_shows(tmp_path: Path) -> None:
    spec = tmp_path / "warned.yaml"
    text = EXAMPLE.read_text()
    assert "k: {min: 2, max: 10}" in text and "memory_gb: 8\n" in text
    spec.write_text(text.replace("k: {min: 2, max: 10}", "k: {min: 2, max: 11}")
                    .replace("memory_gb: 8\n", "memory_gb: 4\n"))
    proc = run("evaluate", str(spec), "--json")
    assert proc.returncode == 0, proc.stderr
    warnings = json.loads(proc.stdout)["warnings"]
    assert any("no acceptance for llama-3.1-70b at K=11" in w for w in warnings)
    assert any("rpi5/llama-3.1-8b-instruct/Q4_K_M can never be a candidate: "
               "llama-3.1-8b-instruct Q4_K_M needs 4.92 GB, device has 4 GB" in w
               for w in warnings)
    table = run("evaluate", str(spec))
    assert table.returncode == 0
    shown = [line.removeprefix("warning: ") for line in table.stdout.splitlines()
             if line.startswith("warning: ")]
    assert shown == warnings


def test_pareto_of_one_metric_against_itself_is_a_usage_error() -> None:
    from typer.testing import CliRunner

    from configspec_opt.cli import app

    res = CliRunner().invoke(app, ["pareto", str(EXAMPLE), "--x", "goodput",
                                   "--y", "max:goodput"])
    assert res.exit_code == 2 and "two different metrics" in res.output


def test_cli_conventions() -> None:
    """--version, -q/-v, -o always an output file, --json never contradicts --format."""
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("configspec ")
    quiet = run("-q", "solve", str(ROOT / "examples/llama70b-edge.yaml"), "--json")
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["status"] == "optimal"
    both = run("pareto", str(ROOT / "examples/llama70b-edge.yaml"), "--json", "--format", "csv")
    assert both.returncode == 2 and "two outputs" in both.stderr + both.stdout
    legacy = run("solve", str(ROOT / "examples/llama70b-edge.yaml"), "-o", "min:energy")
    assert legacy.returncode == 2  # -o is not the objective any more


def test_fmt_accepts_a_directory(tmp_path: Path) -> None:
    import shutil

    shutil.copy(ROOT / "examples/llama70b-edge.yaml", tmp_path / "a.yaml")
    proc = run("fmt", "--check", str(tmp_path))
    assert proc.returncode in (0, 1), proc.stderr
    assert "a.yaml" in proc.stdout + proc.stderr or "already formatted" in proc.stdout


def test_hard_stop_ends_a_solve_that_does_not_return() -> None:
    """`--time-limit` holds even when the solver cannot be interrupted (HiGHS presolve):
    a watchdog reports it (JSON with --json) and exits 1.  The blocked call here is a
    sleep of 600 s; the process must end long before it would return."""
    code = ("import time\n"
            "from configspec_opt.cli.app import hard_stop\n"
            "with hard_stop(0.1, as_json=True):\n"
            "    time.sleep(600)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1, r.stderr
    answer = json.loads(r.stdout)
    assert answer["status"] == "time_limit"
    assert "0.1 s" in answer["error"]
