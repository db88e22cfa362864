"""Eq. 1-3 against the numbers the paper prints."""

from __future__ import annotations

import math

import pytest

from configspec_opt import metrics as m
from configspec_opt.spec import PerTokenAcceptance


@pytest.mark.parametrize(("k", "alpha", "v", "g"), [
    # RPi 5, Llama-3.2-1B-Inst Q4, goodput-optimal row of Table 2: K=6, G=4.50
    (6, 0.52, 14.44, 4.50),
    # Jetson, K=8, G=7.65
    (8, 0.4357, 92.64, 7.65),
])
def test_goodput_eq1(k: int, alpha: float, v: float, g: float) -> None:
    r = m.round_time_s(k, v, 0.5)
    assert m.goodput_tok_s(k, alpha, r) == pytest.approx(g, abs=0.006)


def test_cost_efficiency_eq2_matches_table2() -> None:
    # Llama-3.1-8B-Inst K=2, alpha(2)=0.76 at $0.90/M -> 1401K tok/$ (Table 2)
    assert m.cost_efficiency_tok_per_usd(2, 0.7609, 0.90) == pytest.approx(1401e3, rel=1e-3)
    # eta = G / cost rate, as the issue defines it
    r = m.round_time_s(2, 1.775, 0.5)
    g = m.goodput_tok_s(2, 0.7609, r)
    rate_per_s = m.cost_usd_per_hour(2, r, 0.90) / 3600
    assert g / rate_per_s == pytest.approx(m.cost_efficiency_tok_per_usd(2, 0.7609, 0.90))


def test_energy_eq3_matches_table2() -> None:
    # RPi 5, 1B-Inst, K=2: E = 0.48 J/tok with P = 8.33 W, v = 14.44 tok/s
    assert m.energy_j_per_tok(8.33, 2, 14.44, 0.7006) == pytest.approx(0.48, abs=0.005)


def test_rtt_is_part_of_the_round() -> None:
    assert m.round_time_s(4, 10.0, 0.5, 0.04) == pytest.approx(0.4 + 0.5 + 0.04)


def test_drafting_power_times_round_is_energy_per_round() -> None:
    r = m.round_time_s(5, 20.0, 0.3)
    per_round = m.drafting_power_w(10.0, 5, 20.0, r) * r
    assert per_round == pytest.approx(10.0 * 5 / 20.0)
    assert per_round / m.tokens_per_round(5, 0.6) == pytest.approx(
        m.energy_j_per_tok(10.0, 5, 20.0, 0.6))


@pytest.mark.parametrize("a", [0.0, 0.3, 0.8, 0.999])
def test_per_token_acceptance_is_expected_accepted_over_k(a: float) -> None:
    acc = PerTokenAcceptance(per_token=a)
    for k in range(1, 11):
        expected = sum(a**i for i in range(1, k + 1)) / k
        assert acc.alpha(k) == pytest.approx(expected, abs=1e-12)
    assert PerTokenAcceptance(per_token=1.0).alpha(7) == 1.0
    assert not math.isnan(acc.alpha(10))


def test_measured_extras_lengthen_the_round_and_the_drafting() -> None:
    base = m.round_time_s(4, 20.0, 0.3, 0.02)
    ext = m.round_time_s(4, 20.0, 0.3, 0.02, full_accept=0.5, overhead_s=0.01)
    assert ext - base == pytest.approx(0.5 / 20.0 + 0.01)
    assert m.energy_j_per_tok(10.0, 4, 20.0, 0.6, 0.5) == pytest.approx(
        10.0 * (4.5 / 20.0) / (4 * 0.6 + 1))


def test_spec_extras_reach_the_candidates(tmp_path: object) -> None:
    from pathlib import Path

    from configspec_opt.loader import load_spec
    from configspec_opt.problem import build_problem

    example = Path(__file__).resolve().parents[2] / "examples" / "llama70b-edge.yaml"
    text = example.read_text().replace(
        "    rtt_s: 0.04                     # optional",
        "    rtt_s: 0.04\n    round_overhead_s: 0.05\n    # optional").replace(
        "    power_w: 8.3\n", "    power_w: 8.3\n    full_accept: {llama-3.1-70b: {6: 0.25}}\n", 1)
    spec_file = Path(str(tmp_path)) / "x.yaml"
    spec_file.write_text(text)
    plain = build_problem(load_spec(example).spec, prune=False, apply_slo=False)
    extra = build_problem(load_spec(spec_file).spec, prune=False, apply_slo=False)
    key = ("llama-3.2-1b-instruct", "Q4_K_M", 6)
    c0 = next(c for c in plain.structural[0].candidates if (c.draft, c.quant, c.k) == key)
    c1 = next(c for c in extra.structural[0].candidates if (c.draft, c.quant, c.k) == key)
    assert c1.round_time_s - c0.round_time_s == pytest.approx(0.25 / 14.4 + 0.05)
    assert c1.goodput_tok_s < c0.goodput_tok_s
