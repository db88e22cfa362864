"""Usage as a careless or new user meets it, through the real command line.

Nonsense numbers (`--time-limit 0`, `--gap nan`, `--points 0`) are usage errors that
name the option (exit 2) before any work, in every command that takes them; an
infeasible spec's report says what the spec declares and what the diagnosis found;
a template spec says it is one before anything else.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from configspec_opt.cli import app
from tests.cli_helpers import EXAMPLE, ROOT, invoke, parse_html

TEMPLATE = ROOT / "examples" / "smollm2" / "spec.yaml"


def refused(r: Any, option: str) -> None:
    """Exit 2, the option named, no traceback."""
    assert r.exit_code == 2, (r.exit_code, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
    assert f"'{option}'" in r.stderr, r.stderr


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf", "1e9", "ten"])
@pytest.mark.parametrize("command", [["solve", "{spec}"], ["pareto", "{spec}"],
                                     ["report", "{spec}", "-o", "{out}"]],
                         ids=["solve", "pareto", "report"])
def test_a_time_limit_that_cannot_be_kept_is_a_usage_error(
        tmp_path: Path, command: list[str], value: str) -> None:
    """It used to run, search nothing and end "infeasible ... raise time_limit" (exit 1)."""
    out = tmp_path / "r.html"
    args = [a.format(spec=EXAMPLE, out=out) for a in command]
    r = invoke(*args, "--time-limit", value)
    refused(r, "--time-limit")
    assert "above 0" in r.stderr
    assert not out.exists()


def test_the_time_limit_from_the_environment_is_checked_the_same(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIGSPEC_TIME_LIMIT", "0")
    refused(invoke("solve", EXAMPLE), "--time-limit")
    monkeypatch.setenv("CONFIGSPEC_TIME_LIMIT", "30")
    r = invoke("solve", EXAMPLE, "--json", "--no-explain")
    assert r.exit_code == 0 and '"optimal"' in r.stdout


def test_a_time_limit_in_range_still_solves() -> None:
    r = invoke("solve", EXAMPLE, "--time-limit", "0.5", "--no-explain")
    assert r.exit_code == 0, r.stderr


@pytest.mark.parametrize("args, option", [
    (["solve", "{spec}", "--gap", "-0.1"], "--gap"),
    (["solve", "{spec}", "--gap", "2"], "--gap"),
    (["solve", "{spec}", "--gap", "nan"], "--gap"),
    (["solve", "{spec}", "--simulate", "--jitter", "1"], "--jitter"),
    (["solve", "{spec}", "--simulate", "--jitter", "-0.2"], "--jitter"),
    (["pareto", "{spec}", "--points", "0"], "--points"),
    (["pareto", "{spec}", "--points", "1.5"], "--points"),
    (["evaluate", "{spec}", "--top", "0"], "--top"),
    (["report", "{spec}", "-o", "{tmp}/r.html", "--points", "1"], "--points"),
    (["plot", "{spec}", "--kind", "front", "-o", "{tmp}/f.png", "--points", "0"], "--points"),
    (["plot", "{spec}", "--kind", "goodput", "-o", "{tmp}/f.png", "--at-k", "0"], "--at-k"),
    (["import", "vllm-metrics", "{tmp}/m.txt", "{spec}", "-d", "rpi5", "--draft", "x",
      "--timeout", "0"], "--timeout"),
    (["db", "prune", "--db", "{tmp}/none.sqlite", "--older-than", "inf"], "--older-than"),
    (["db", "prune", "--db", "{tmp}/none.sqlite", "--older-than", "1e300"], "--older-than"),
    (["worker", "--db", "{tmp}/none.sqlite", "--poll", "inf"], "--poll"),
    (["serve", "--db", "{tmp}/none.sqlite", "--header-timeout", "inf"], "--header-timeout"),
    (["serve", "--db", "{tmp}/none.sqlite", "--keep-days", "nan"], "--keep-days"),
])
def test_numbers_outside_their_domain_are_usage_errors(tmp_path: Path, args: list[str],
                                                       option: str) -> None:
    """`db prune --older-than inf` was an OverflowError traceback; the others ran."""
    r = invoke(*[a.format(spec=EXAMPLE, tmp=tmp_path) for a in args])
    refused(r, option)
    assert list(tmp_path.iterdir()) == []  # nothing written, no database created


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> Any:
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), cmd


FLOAT_OPTIONS = [(name, cmd, p) for name, cmd in _commands(typer.main.get_command(app))
                 for p in cmd.params
                 if getattr(getattr(p, "type_descriptor", None), "annotation", None) is float]


def test_every_command_with_a_float_option_is_checked() -> None:
    names = {f"{n} {p.name}" for n, _, p in FLOAT_OPTIONS}
    assert {"solve time_limit", "pareto time_limit", "report time_limit", "solve gap",
            "serve header_timeout", "db prune older_than"} <= names


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("name, cmd, param", FLOAT_OPTIONS,
                         ids=[f"{n}-{p.name}" for n, _, p in FLOAT_OPTIONS])
def test_no_float_option_takes_nan_or_infinity(name: str, cmd: Any, param: Any,
                                               value: str) -> None:
    """The class, not the instance: `nan` passes every comparison of a range check and
    `inf` every lower bound, so each float option of every command refuses both as it
    is read (checked on the real option objects; running `serve --x inf` would serve)."""
    ctx = cmd.make_context(name, [], resilient_parsing=True)
    with pytest.raises(Exception) as caught:
        param.process_value(ctx, value)
    assert type(caught.value).__name__ == "BadParameter"
    assert param.opts[0] in caught.value.format_message()  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_the_python_api_and_the_http_parameters_refuse_the_same(value: float) -> None:
    from pydantic import ValidationError

    from configspec_opt import solve
    from configspec_opt.api.params import ParetoParams, SolveParams
    from configspec_opt.errors import UsageError

    with pytest.raises(UsageError, match="time_limit"):
        solve(EXAMPLE, time_limit=value)
    for model in (SolveParams, ParetoParams):
        with pytest.raises(ValidationError):
            model(time_limit=value)


# --- report of an infeasible spec, templates ---------------------------------


def _tight(tmp_path: Path) -> Path:
    """The example cut to 3 devices, with a per-device goodput no configuration reaches."""
    text = EXAMPLE.read_text()
    for old, new in (("count: 200", "count: 2"), ("count: 20\n", "count: 1\n"),
                     ("min_goodput_tok_s: 2.0", "min_goodput_tok_s: 9.0")):
        assert old in text
        text = text.replace(old, new, 1)
    spec = tmp_path / "tight.yaml"
    spec.write_text(text)
    return spec


def _text(page: str) -> str:
    body = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_report_of_an_infeasible_spec_says_what_is_declared_and_what_to_relax(
        tmp_path: Path) -> None:
    spec = _tight(tmp_path)
    solved = invoke("solve", spec)
    assert solved.exit_code == 1
    out = tmp_path / "tight.html"
    r = invoke("report", spec, "-o", out)
    assert r.exit_code == 1, r.stderr
    page = out.read_text()
    parse_html(page)
    text = _text(page)
    assert "No constraints declared" not in text
    assert "large fleet" not in text
    for declared in ("constraints.per_device.min_goodput_tok_s",
                     "constraints.per_device.max_energy_j_per_tok",
                     "constraints.fleet.max_cost_usd_per_hour", "constraints.fleet.max_power_w",
                     "constraints.fleet.max_distinct_variants",
                     "targets[llama-3.1-70b].capacity_tok_s"):
        assert declared in text
    # the smallest relaxation, as `solve` prints it, and marked on its row
    fix = re.search(r"relax constraints\.per_device\.min_goodput_tok_s: 9 -> ([0-9.]+) tok/s",
                    solved.stdout)
    assert fix, solved.stdout
    assert f"relax to {fix.group(1)} tok/s" in text
    assert "No assignment (infeasible), so nothing to explain" in text


def test_report_names_the_constraints_a_relaxation_runs_into(tmp_path: Path) -> None:
    """A fleet limit binds the relaxed answer: the report marks it as `solve` names it."""
    spec = _tight(tmp_path)
    text = spec.read_text().replace("max_distinct_variants: 2", "max_distinct_variants: 1")
    spec.write_text(text.replace("min_goodput_tok_s: 9.0", "min_goodput_tok_s: 30.0"))
    solved = invoke("solve", spec, "--json")
    diag = json.loads(solved.stdout)["diagnosis"]
    out = tmp_path / "r.html"
    assert invoke("report", spec, "-o", out).exit_code == 1
    text = _text(out.read_text())
    assert diag["message"] in text
    # one variant at a limit of one: any relaxed answer is at it
    assert diag["conflicts_with"] == ["constraints.fleet.max_distinct_variants"]
    assert ("constraints.fleet.max_distinct_variants distinct (draft, quant) variants <= 1 "
            "at its limit once relaxed (the relaxation runs into it)") in text
    for relax in diag["relaxations"]:
        assert relax["constraint"] in text


@pytest.mark.parametrize("command", [["validate", "{spec}"], ["solve", "{spec}"],
                                     ["report", "{spec}", "-o", "{out}"]],
                         ids=["validate", "solve", "report"])
def test_a_template_says_it_is_one_first(tmp_path: Path, command: list[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(TEMPLATE.read_text())
    out = tmp_path / "r.html"
    r = invoke(*[a.format(spec=spec, out=out) for a in command])
    first = r.stdout.splitlines()[0]
    assert first.startswith("note: this spec is a template"), r.stdout
    assert f"configspec profile {spec} --device laptop" in first
    assert "then solve" in first
    if command[0] == "report":
        assert "this spec is a template" in out.read_text()


def test_a_template_note_leads_the_json_warnings() -> None:
    r = invoke("solve", TEMPLATE, "--json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["warnings"][0].startswith("this spec is a template")
    ok = invoke("solve", EXAMPLE, "--json", "--no-explain")
    assert not any("template" in w for w in json.loads(ok.stdout).get("warnings", []))


def test_a_profiled_spec_still_marked_a_template_is_told_to_drop_the_mark(
        tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text("# configspec: template\n" + EXAMPLE.read_text())
    r = invoke("solve", spec, "--no-explain")
    assert r.exit_code == 0
    first = r.stdout.splitlines()[0]
    assert "every pool has a profile: delete that line" in first
    assert f"configspec lock {spec}" in first
