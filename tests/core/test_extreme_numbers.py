"""Extreme but finite numbers: a located error or finite figures, never inf, NaN or a crash.

The probe of issue 12 found `price_usd_per_mtok: 1e-320` dividing by zero, `1e308`
overflowing into an inf that JSON refuses, and `draft_tok_s: 1e-320` breaking every
evaluate.  Every number of a spec now has a physical range (in the JSON Schema);
inside those ranges every metric is a finite float.  Hypothesis puts extreme values
(subnormals, the largest floats, huge integers, booleans) anywhere a number may
stand in real specs and checks exactly that; real `configspec` processes check the
CLI exits 0, 1 or 2 without a traceback.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configspec_opt import metrics as m
from configspec_opt.candidates import enumerate_candidates
from configspec_opt.errors import NumericError, PathPart, SpecError
from configspec_opt.fleet import fleet_metrics
from configspec_opt.loader import Source, parse_data, parse_spec
from configspec_opt.operations import evaluate_report, spec_schema, validate_report
from configspec_opt.report import candidate_dict, fleet_dict

ROOT = Path(__file__).resolve().parents[2]
BASES = {name: parse_data(Source(str(ROOT / name), (ROOT / name).read_text()))
         for name in ("examples/llama70b-edge.yaml",
                      "examples/fleet-verifier/shared-verifier.yaml")}

EXTREMES: list[Any] = [
    5e-324, 1e-320, 2.2250738585072014e-308, 1e-300, 1e-12, 1e-7, 0.0, -0.0, -1e-320,
    1e12, 1e18, 1e300, 1e308, 1.7976931348623157e308, -1e308,
    0, 1, 2**31, 2**53 + 1, 2**63, 10**30, 10**400, -1, True, False,
]
extreme = st.sampled_from(EXTREMES) | st.floats(allow_nan=False, allow_infinity=False)
SCHEMA: dict[str, Any] = spec_schema()


def _branches(node: dict[str, Any]) -> list[dict[str, Any]]:
    """A schema node with $ref, anyOf and oneOf expanded into its alternatives."""
    if "$ref" in node:
        return _branches(SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]])
    for key in ("anyOf", "oneOf"):
        if key in node:
            return [b for alt in node[key] for b in _branches(alt)]
    return [node]


def range_at(path: tuple[PathPart, ...]) -> tuple[float, float, bool] | None:
    """The [minimum, maximum] the JSON Schema gives the number at `path`, and whether
    it is an integer."""
    nodes = [SCHEMA]
    for part in path:
        nxt = []
        for n in (b for node in nodes for b in _branches(node)):
            if isinstance(part, int) and "items" in n:
                nxt.append(n["items"])
            elif part in n.get("properties", {}):
                nxt.append(n["properties"][part])
            elif isinstance(n.get("additionalProperties"), dict):
                nxt.append(n["additionalProperties"])
        nodes = nxt
    for n in (b for node in nodes for b in _branches(node)):
        if n.get("type") in ("number", "integer") and "minimum" in n and "maximum" in n:
            return float(n["minimum"]), float(n["maximum"]), n["type"] == "integer"
    return None


def in_range_extremes(path: tuple[PathPart, ...]) -> st.SearchStrategy[Any]:
    """The ends of the field's range and the floats just inside: valid, and extreme."""
    bounds = range_at(path)
    if bounds is None:
        return extreme
    lo, hi, integer = bounds
    if integer:
        return st.sampled_from([int(lo), int(hi)])
    return st.sampled_from([lo, hi, math.nextafter(lo, math.inf), math.nextafter(hi, -math.inf)])
# Optional numbers the examples leave out, so they are mutated too.
OPTIONAL: list[tuple[PathPart, ...]] = [
    ("devices", 0, "power_w"), ("devices", 0, "round_overhead_s"),
    ("targets", 0, "verify_latency_per_token_s"), ("constraints", "fleet", "min_goodput_tok_s"),
    ("constraints", "fleet", "min_cost_efficiency_tok_per_usd"),
    ("constraints", "per_device", "max_power_w"), ("objective",),
]


def numeric_paths(data: Any, at: tuple[PathPart, ...] = ()) -> list[tuple[PathPart, ...]]:
    """Where a number stands in the document (values, not keys)."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in numeric_paths(v, (*at, k))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in numeric_paths(v, (*at, i))]
    return [at] if isinstance(data, (int, float)) and not isinstance(data, bool) else []


def put(data: Any, path: tuple[PathPart, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    if path == ("objective",):
        data["objective"] = {"weighted": [{"maximize": "goodput", "weight": value},
                                          {"minimize": "cost", "weight": 1.0}]}
    else:
        node[path[-1]] = value


def assert_finite_numbers(data: Any) -> None:
    """Every number in a JSON-ready structure is finite (json.dumps refuses the rest)."""
    json.dumps(data, allow_nan=False)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(BASES)))
    data = copy.deepcopy(BASES[name])
    paths = numeric_paths(data) + OPTIONAL
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        put(data, path, draw(in_range_extremes(path) | extreme))
    return name, data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_extreme_numbers_give_located_errors_or_finite_metrics(
        case: tuple[str, dict[str, Any]]) -> None:
    name, data = case
    try:
        text = json.dumps(data)  # 10**400 is a JSON number too
    except ValueError:
        return
    try:
        loaded = parse_spec(text, name=f"{name}.json")
    except SpecError as exc:
        assert exc.issues
        for issue in exc.issues:
            if not issue.message.startswith("... and"):
                assert issue.line is not None and issue.column is not None, issue.format()
        return
    pools = enumerate_candidates(loaded.spec)  # no NumericError inside the ranges
    for pc in pools:
        for c in pc.candidates:
            for v in (c.round_time_s, c.goodput_tok_s, c.verifier_load_tok_s,
                      c.cost_usd_per_hour, c.drafting_power_w or 0.0, c.energy_j_per_tok or 0.0):
                assert math.isfinite(v) and v >= 0.0, c
            assert_finite_numbers(candidate_dict(c))
    whole = [(pc.candidates[0], pc.device.count) for pc in pools if pc.candidates]
    assert_finite_numbers(fleet_dict(fleet_metrics(whole, 0.0)))
    assert_finite_numbers(validate_report(loaded))
    assert_finite_numbers(evaluate_report(loaded))


@settings(max_examples=300, deadline=None)
@given(k=st.integers(1, 64), alpha=st.sampled_from(EXTREMES[:16]) | st.floats(0, 1),
       v_d=st.sampled_from(EXTREMES[:16]), price=st.sampled_from(EXTREMES[:16]),
       power=st.sampled_from(EXTREMES[:16]), t=st.sampled_from(EXTREMES[:16]))
def test_the_metric_functions_are_finite_or_say_why(k: int, alpha: float, v_d: float,
                                                     price: float, power: float,
                                                     t: float) -> None:
    """Outside the spec's ranges too: a finite number or a NumericError, never inf/NaN
    or a ZeroDivisionError."""
    try:
        r = m.round_time_s(k, v_d, abs(t))
        values = [r, m.goodput_tok_s(k, alpha, r), m.verifier_load_tok_s(k, r),
                  m.cost_usd_per_hour(k, r, price),
                  m.cost_efficiency_tok_per_usd(k, alpha, price),
                  m.drafting_power_w(power, k, v_d, r), m.energy_j_per_tok(power, k, v_d, alpha)]
    except NumericError as exc:
        assert str(exc)
        return
    assert all(math.isfinite(v) for v in values)


def test_the_values_of_the_issue_are_located_errors() -> None:
    base = (ROOT / "examples" / "llama70b-edge.yaml").read_text()
    for old, new, where in [("price_usd_per_mtok: 0.90", "price_usd_per_mtok: 1e-320",
                             "targets[0].price_usd_per_mtok"),
                            ("price_usd_per_mtok: 0.90", "price_usd_per_mtok: 1e308",
                             "targets[0].price_usd_per_mtok"),
                            ("draft_tok_s: 14.4", "draft_tok_s: 1e-320",
                             "profiles[0].draft_tok_s"),
                            ("count: 200 ", "count: true ", "devices[0].count"),
                            ("count: 200 ", "count: '200' ", "devices[0].count")]:
        with pytest.raises(SpecError) as info:
            parse_spec(base.replace(old, new, 1), name="x.yaml")
        [issue] = info.value.issues
        assert issue.format().startswith("x.yaml:") and where in issue.format(), issue.format()
        assert issue.line is not None


def test_booleans_are_not_numbers_anywhere() -> None:
    data = copy.deepcopy(BASES["examples/llama70b-edge.yaml"])
    for path, value in [(("version",), True), (("search", "k", "min"), True),
                        (("profiles", 0, "acceptance", "llama-3.1-70b"), {True: 0.5}),
                        (("profiles", 0, "draft_tok_s"), False)]:
        bad = copy.deepcopy(data)
        put(bad, path, value)
        with pytest.raises(SpecError) as info:
            parse_spec(_yaml(bad), name="x.yaml")
        assert info.value.issues[0].line is not None


def _yaml(data: Any) -> str:
    import io

    from ruamel.yaml import YAML

    buf = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, buf)
    return buf.getvalue()


def test_ints_still_pass_for_floats_and_the_examples_are_inside_the_ranges() -> None:
    for data in BASES.values():
        parse_spec(json.dumps(data))
    data = copy.deepcopy(BASES["examples/llama70b-edge.yaml"])
    data["targets"][0]["price_usd_per_mtok"] = 1  # an int is a number
    assert parse_spec(json.dumps(data)).spec.targets[0].price_usd_per_mtok == 1.0


# --- the CLI on extreme specs: real processes ------------------------------------------

EDGE = (ROOT / "examples" / "llama70b-edge.yaml").read_text()
SHARED = (ROOT / "examples" / "fleet-verifier" / "shared-verifier.yaml").read_text()
_FREE = EDGE[:EDGE.index("constraints:")]


def _flat_table(text: str, latency: str) -> str:
    import re

    return re.sub(r"(\d+): \{2: [^}]*\}",
                  lambda mt: mt.group(1) + ": {" + ", ".join(f"{k}: {latency}"
                                                             for k in range(2, 9)) + "}", text)


def _edit(text: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


CLI_SPECS = {
    # the issue's values: refused, located
    "tiny-price": (_edit(EDGE, ("price_usd_per_mtok: 0.90", "price_usd_per_mtok: 1e-320")),
                   {2}),
    "huge-price": (_edit(EDGE, ("price_usd_per_mtok: 0.90", "price_usd_per_mtok: 1e308")),
                   {2}),
    "tiny-draft": (_edit(EDGE, ("draft_tok_s: 14.4", "draft_tok_s: 1e-320")), {2}),
    "bool-count": (_edit(EDGE, ("count: 200 ", "count: true ")), {2}),
    # every number at the edge of its range, no constraints: solved
    "low-edges": (_edit(_FREE, ("price_usd_per_mtok: 0.90", "price_usd_per_mtok: 1e-6"),
                        ("draft_tok_s: 14.4", "draft_tok_s: 1e-3"),
                        ("power_w: 8.3", "power_w: 1e6"), ("count: 200 ", "count: 10000000 "),
                        ("verify_latency_s: 0.5 ", "verify_latency_s: 86400 ")), {0}),
    "high-edges": (_edit(_FREE, ("price_usd_per_mtok: 0.90", "price_usd_per_mtok: 1e6"),
                         ("draft_tok_s: 92.6", "draft_tok_s: 1e7"),
                         ("power_w: 44.1", "power_w: 1e-3"), ("count: 20\n", "count: 10000000\n"),
                         ("verify_latency_s: 0.5 ", "verify_latency_s: 0 "),
                         ("capacity_tok_s: 4000", "capacity_tok_s: 1e12")), {0}),
    # the example's constraints against edge values: infeasible, with a diagnosis
    "edges-constrained": (_edit(EDGE, ("price_usd_per_mtok: 0.90", "price_usd_per_mtok: 1e6"),
                                ("count: 20\n", "count: 10000000\n")), {1}),
    # a batched verifier at its edges (flat tables: the load levels stay few)
    "verifier-low": (_edit(_flat_table(SHARED, "1e-6"),
                           ("price_usd_per_replica_hour: 4.10",
                            "price_usd_per_replica_hour: 1e-6"),
                           ("replicas: {min: 1, max: 8}", "replicas: {min: 1, max: 100000}"),
                           ("count: 30,", "count: 10000000,"),
                           ("draft_tok_s: 14.4", "draft_tok_s: 1e7")), {0}),
    "verifier-high": (_edit(_flat_table(SHARED, "86400"),
                            ("price_usd_per_replica_hour: 4.10",
                             "price_usd_per_replica_hour: 1e6"),
                            ("count: 30,", "count: 10000000,"),
                            ("draft_tok_s: 14.4", "draft_tok_s: 1e-3")), {0, 1}),
}


@pytest.mark.parametrize("name", sorted(CLI_SPECS))
def test_the_cli_on_extreme_specs_exits_0_1_or_2_without_a_traceback(
        tmp_path: Path, name: str) -> None:
    text, solve_codes = CLI_SPECS[name]
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(text)
    for command in ("validate", "evaluate", "solve"):
        proc = subprocess.run([sys.executable, "-m", "configspec_opt", command, str(spec),
                               "--json"], capture_output=True, text=True, timeout=300,
                              check=False)
        assert "Traceback" not in proc.stderr, proc.stderr
        data = json.loads(proc.stdout)  # JSON, and json.loads refuses nothing finite
        assert_finite_numbers(data)
        expected = {2} if solve_codes == {2} else ({0} if command != "solve" else solve_codes)
        assert proc.returncode in expected, (command, proc.returncode, proc.stdout[:500])
        if proc.returncode == 2:
            assert data["errors"][0]["line"] is not None
