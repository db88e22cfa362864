"""`solve --simulate`: an answer's batched verifiers played forward step by step.

Real HiGHS solves small random fleets; the simulation of each answer is checked against
what is guaranteed: a lone device without jitter runs exactly the model's round, no
device beats its lone round, none does worse than waiting for one full step and running
in the next, and the figures reported are the ones computed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from configspec_opt.cli import app
from configspec_opt.spec import Spec
from configspec_opt.verifier_check import simulate_verifiers
from configspec_opt.verifier_load import b_limit, latency_at
from solvers.solve import solve

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet-verifier" / \
    "shared-verifier.yaml"


def _spec(table: dict[int, dict[int, float]], pools: list[dict[str, Any]],
          replicas_max: int = 2, max_batch: int = 8) -> Spec:
    return Spec.model_validate({
        "version": 1, "name": "sim-check",
        "targets": [{"name": "big", "family": "llama", "price_usd_per_mtok": 1.0,
                     "verify_latency_s": table[min(table)][min(table[min(table)])],
                     "verifier": {"replicas": {"min": 1, "max": replicas_max},
                                  "price_usd_per_replica_hour": 2.0, "max_batch": max_batch,
                                  "latency_s": table}}],
        "drafts": [{"name": "small", "family": "llama", "quants": {"Q4": {"size_gb": 0.5}}}],
        "devices": [{"name": p["name"], "count": p["count"], "memory_gb": 8,
                     "rtt_s": p["rtt"]} for p in pools],
        "profiles": [{"device": p["name"], "draft": "small", "quant": "Q4",
                      "draft_tok_s": p["v_d"], "acceptance": {"big": {"per_token": p["a"]}}}
                     for p in pools],
        "search": {"k": {"min": 2, "max": 4}},
        "objective": {"maximize": "goodput"},
    })


def test_a_lone_device_without_jitter_runs_exactly_the_models_round() -> None:
    table = {1: {2: 0.1, 3: 0.12, 4: 0.14}, 4: {2: 0.2, 3: 0.25, 4: 0.3}}
    spec = _spec(table, [{"name": "pi", "count": 1, "rtt": 0.03, "v_d": 12.0, "a": 0.7}])
    sol = solve(spec)
    (sim,) = simulate_verifiers(sol.assignment, sol.problem.verifiers, sol.verifiers,
                                jitter=0.0, seeds=3)
    assert sim.devices == 1
    assert math.isclose(sim.simulated_goodput_tok_s, sim.model_goodput_tok_s, rel_tol=1e-9)
    assert math.isclose(sim.low_tok_s, sim.high_tok_s, rel_tol=1e-9)
    assert sim.mean_step == 1.0


_TABLE = st.lists(st.floats(0.02, 0.3), min_size=3, max_size=3).flatmap(
    lambda base: st.lists(st.floats(1.0, 3.0), min_size=3, max_size=3).map(
        lambda growth: {1: {k: base[i] for i, k in enumerate((2, 3, 4))},
                        4: {k: base[i] * growth[i] for i, k in enumerate((2, 3, 4))},
                        8: {k: base[i] * growth[i] * 1.5 for i, k in enumerate((2, 3, 4))}}))
_POOL = st.fixed_dictionaries({"count": st.integers(1, 6), "rtt": st.floats(0.0, 0.1),
                               "v_d": st.floats(5.0, 80.0), "a": st.floats(0.3, 0.95)})


@settings(max_examples=25, deadline=None)
@given(table=_TABLE, pools=st.lists(_POOL, min_size=1, max_size=3),
       jitter=st.floats(0.0, 0.9))
def test_every_simulated_device_lies_between_its_lone_round_and_one_wasted_step(
        table: dict[int, dict[int, float]], pools: list[dict[str, Any]],
        jitter: float) -> None:
    spec = _spec(table, [{**p, "name": f"pool{i}"} for i, p in enumerate(pools)])
    sol = solve(spec)
    assert sol.assignment and sol.verifiers
    (sim,) = simulate_verifiers(sol.assignment, sol.problem.verifiers, sol.verifiers,
                                jitter=jitter, seeds=4)
    (state,) = sol.verifiers
    devices = sum(n for _, n in sol.assignment)
    per_replica = -(-devices // state.replicas)
    n_max = min(per_replica, int(b_limit(table, 8)))
    step_max = max(latency_at(table, n_max, k) for k in (2, 3, 4))
    best = worst = 0.0
    for c, n in sol.assignment:
        tokens = c.goodput_tok_s * c.round_time_s
        drafting = c.k / c.draft_tok_s
        rest = c.busy_s - drafting
        # a step mixing K lasts the mean of its members' T: a K = 4 request may run in
        # less than T(1, 4) beside K = 2 ones, never in less than the least T(1, K)
        lone = drafting * (1 - jitter) + rest + min(table[1].values())
        best += n * tokens / lone
        if per_replica <= 8:  # every request fits the step after the one in progress
            worst += n * tokens / (drafting * (1 + jitter) + rest + 2 * step_max)
    tol = 1 + 1e-9
    assert sim.devices == devices
    assert sim.low_tok_s <= sim.simulated_goodput_tok_s * tol
    assert sim.simulated_goodput_tok_s <= sim.high_tok_s * tol
    assert sim.high_tok_s <= best * tol
    assert sim.low_tok_s * tol >= worst
    assert 1.0 <= sim.mean_step <= n_max + 1e-9
    model = sum(c.goodput_tok_s * n for c, n in sol.assignment)
    assert math.isclose(sim.model_goodput_tok_s, model, rel_tol=1e-12)
    assert math.isclose(sim.model_error, (model - sim.simulated_goodput_tok_s)
                        / sim.simulated_goodput_tok_s, rel_tol=1e-12)


def test_solve_simulate_reports_each_verifier_next_to_the_model() -> None:
    res = runner.invoke(app, ["solve", str(EXAMPLE), "--json", "--no-explain", "--simulate",
                              "--jitter", "0.3"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    (ver,) = data["fleet"]["verifiers"]
    sim = ver["simulated"]
    assert sim["jitter"] == 0.3 and sim["seeds"] >= 1 and sim["rounds"] >= 1
    assert sim["devices"] == sum(a["count"] for a in data["assignments"])
    lo, hi = sim["goodput_range_tok_s"]
    assert lo <= sim["goodput_tok_s"] * (1 + 1e-9) and sim["goodput_tok_s"] <= hi * (1 + 1e-9)
    assert math.isclose(sim["model_goodput_tok_s"], data["fleet"]["goodput_tok_s"],
                        rel_tol=1e-9)  # one target: the fleet's goodput is its devices'
    text = runner.invoke(app, ["solve", str(EXAMPLE), "--no-explain", "--simulate"])
    assert text.exit_code == 0, text.output
    assert "simulated step by step (50 devices, drafting +-20%" in " ".join(text.output.split())
    plain = json.loads(runner.invoke(app, ["solve", str(EXAMPLE), "--json",
                                           "--no-explain"]).output)
    assert "simulated" not in plain["fleet"]["verifiers"][0]


@pytest.mark.parametrize(("args", "message"), [
    (["--simulate", "--load-blind"], "a load-blind solve models none"),
    (["--simulate", "--jitter", "1.5"], "1.5 is not a number from 0 to below 1"),
])
def test_simulate_refuses_what_it_cannot_play(args: list[str], message: str) -> None:
    res = runner.invoke(app, ["solve", str(EXAMPLE), "--no-explain", *args])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
