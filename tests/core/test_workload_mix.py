"""A traffic mix over prompt classes: candidates against an explicit loop over requests."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configspec_opt.candidates import enumerate_candidates
from configspec_opt.consistency import check_consistency
from configspec_opt.errors import SpecError
from configspec_opt.loader import load_spec, parse_spec
from configspec_opt.spec import PerTokenAcceptance, Spec
from tests.core.conftest import EXAMPLE


def _edge() -> dict[str, Any]:
    return load_spec(EXAMPLE).spec.model_dump(mode="json")


def _with_classes(rates: dict[str, float], mix: dict[str, float] | None,
                  device_mix: dict[str, float] | None = None) -> Spec:
    data = _edge()
    for p in data["profiles"]:
        t = next(iter(p["acceptance"]))
        p["acceptance_by_class"] = {c: {t: {"per_token": a}} for c, a in rates.items()}
    data["workload"]["mix"] = mix
    if device_mix is not None:
        data["devices"][0]["mix"] = device_mix
    return Spec.model_validate(data)


def _by_requests(k: int, rates: dict[str, float], mix: dict[str, float], n: int,
                 busy_s: float, verify_s: float) -> tuple[float, float]:
    """Goodput and rounds per token of one device serving `mix` request by request: a
    request of class c emits n tokens in n / (K alpha_c + 1) rounds of R seconds."""
    total = sum(mix.values())
    tokens = rounds = 0.0
    for c, w in mix.items():
        alpha = PerTokenAcceptance(per_token=rates[c]).alpha(k)
        share = w / total
        tokens += share * n
        rounds += share * n / (k * alpha + 1.0)
    r = busy_s + verify_s
    return tokens / (rounds * r), rounds / tokens


@settings(max_examples=40, deadline=None)
@given(code=st.floats(0.3, 0.95), chat=st.floats(0.3, 0.95), w=st.floats(0.05, 0.95))
def test_a_mix_drafts_as_its_requests_do(code: float, chat: float, w: float) -> None:
    rates = {"code": round(code, 4), "chat": round(chat, 4)}
    mix = {"code": w, "chat": 1.0 - w}
    spec = _with_classes(rates, mix)
    for pc in enumerate_candidates(spec):
        for c in pc.candidates:
            want, per_token = _by_requests(c.k, rates, mix, 256, c.busy_s, c.verify_latency_s)
            assert c.goodput_tok_s == pytest.approx(want, rel=1e-9)
            if c.energy_j_per_tok is not None and c.power_w is not None:
                drafting = c.busy_s - pc.device.rtt_s - pc.device.round_overhead_s
                assert c.energy_j_per_tok == pytest.approx(
                    c.power_w * drafting * per_token, rel=1e-9)


def test_a_simulated_mix_of_requests_meets_the_formula() -> None:
    """Monte Carlo: requests drawn by the mix, rounds drawn token by token (each drafted
    token accepted with the class's rate until the first miss, K at most)."""
    rng = random.Random(5)
    rates, mix, k = {"code": 0.9, "chat": 0.55}, {"code": 0.3, "chat": 0.7}, 5
    tokens = rounds = 0
    for _ in range(4000):
        c = "code" if rng.random() < mix["code"] else "chat"
        emitted = 0
        while emitted < 200:
            a = 0
            while a < k and rng.random() < rates[c]:
                a += 1
            emitted += a + 1
            rounds += 1
        tokens += emitted
    _, per_token = _by_requests(k, rates, mix, 200, 0.1, 0.1)
    assert rounds / tokens == pytest.approx(per_token, rel=0.02)


def test_a_pools_own_mix_overrides_the_fleets() -> None:
    rates = {"code": 0.9, "chat": 0.5}
    spec = _with_classes(rates, {"chat": 1.0}, device_mix={"code": 1.0})
    pools = enumerate_candidates(spec)
    own, fleet = pools[0].candidates[0], pools[1].candidates[0]
    assert own.alpha == pytest.approx(PerTokenAcceptance(per_token=0.9).alpha(own.k))
    assert fleet.alpha == pytest.approx(PerTokenAcceptance(per_token=0.5).alpha(fleet.k))


def test_a_class_nobody_measured_takes_the_plain_acceptance_and_says_so() -> None:
    plain = enumerate_candidates(Spec.model_validate(_edge()))
    spec = _with_classes({"code": 0.9}, {"poetry": 1.0})
    assert [c.alpha for pc in enumerate_candidates(spec) for c in pc.candidates] == \
        pytest.approx([c.alpha for pc in plain for c in pc.candidates])
    _, warnings = check_consistency(spec)
    assert any("no profile measured class 'poetry'" in w for w in warnings)


def test_per_class_acceptance_for_an_unknown_target_is_located() -> None:
    text = EXAMPLE.read_text().replace(
        "    acceptance:\n", "    acceptance_by_class: {code: {nope-70b: {4: 0.5}}}\n"
        "    acceptance:\n", 1)
    with pytest.raises(SpecError) as exc:
        parse_spec(text)
    issue = exc.value.issues[0]
    assert "unknown target 'nope-70b'" in issue.message and issue.line is not None
