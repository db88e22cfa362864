"""The single-pass arithmetic against an independent, naive replay of greedy rounds."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.acceptance import (
    agreement_runs,
    estimate,
    expected_rounds,
    greedy_alpha,
    greedy_rounds,
    sampled_alpha,
)


def naive_rounds(matches: list[bool], k: int) -> list[int]:
    """Replay the loop literally: draft K, accept the agreeing prefix, add the bonus."""
    out, pos = [], 0
    while pos + k + 1 <= len(matches):
        accepted = 0
        for j in range(k):
            if not matches[pos + j]:
                break
            accepted += 1
        out.append(accepted)
        pos += accepted + 1
    return out


def test_runs_and_rounds_on_a_hand_example() -> None:
    m = [True, True, False, True, True, True, False, False, True, True]
    assert agreement_runs(m) == [2, 1, 0, 3, 2, 1, 0, 0, 2, 1]
    # K=2: round@0 accepts 2 (bonus at 2) -> @3 accepts 2 -> @6 accepts 0 -> @7 accepts 0
    assert greedy_rounds(m, 2) == [2, 2, 0, 0]
    assert greedy_rounds(m, 9) == [2]  # only one round fits
    assert greedy_rounds(m, 10) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), max_size=80), st.integers(1, 12))
def test_rounds_equal_a_literal_replay(matches: list[bool], k: int) -> None:
    assert greedy_rounds(matches, k) == naive_rounds(matches, k)


def test_alpha_is_accepted_over_drafted_and_mal_is_one_plus_accepted_per_round() -> None:
    est = greedy_alpha([2], [[True, True, False, True, False, False, True]])[2]
    # rounds: @0 accepts 2, @3 accepts 1; @5 would need the token at index 7: not counted
    assert (est.accepted, est.drafted, est.rounds) == (3, 4, 2)
    assert est.alpha == 0.75
    assert est.mean_acceptance_length == 2.5


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=12, max_size=40), min_size=1, max_size=6),
       st.integers(1, 8))
def test_ci_brackets_alpha_and_stays_in_unit_interval(prompts: list[list[bool]], k: int) -> None:
    est = greedy_alpha([k], prompts)[k]
    assert 0.0 <= est.ci_low <= est.alpha <= est.ci_high <= 1.0


def test_ci_narrows_with_more_prompts() -> None:
    one = [[True, False, True, True, False, True] * 4]
    many = one * 16
    narrow, wide = estimate(3, [greedy_rounds(m, 3) for m in many]), estimate(
        3, [greedy_rounds(m, 3) for m in [*one, [False] * 24]])
    assert narrow.ci_high - narrow.ci_low < wide.ci_high - wide.ci_low


def test_sampled_with_certain_acceptance_is_one_and_with_none_is_zero() -> None:
    assert sampled_alpha([4], [[1.0] * 20])[4].alpha == 1.0
    assert sampled_alpha([4], [[0.0] * 20])[4].alpha == 0.0


def test_sampled_matches_the_geometric_formula() -> None:
    beta, k = 0.7, 5
    rounds = expected_rounds([beta] * 30, k)
    want = sum(beta**j for j in range(1, k + 1))
    assert all(math.isclose(r, want) for r in rounds)
    est = sampled_alpha([k], [[beta] * 30])[k]
    assert math.isclose(est.alpha, want / k)


def test_the_interval_of_alpha_agrees_with_a_bootstrap_over_prompts() -> None:
    """The cluster-robust 95 % interval against an explicit percentile bootstrap that
    resamples whole prompts (rounds of one prompt are correlated): on 40 prompts of
    different difficulty the two agree on the centre and, within a quarter, on the width."""
    import random

    rng = random.Random(11)
    k = 4
    per_prompt: list[list[float]] = []
    for _ in range(40):
        p = rng.uniform(0.3, 0.9)  # this prompt's per-token acceptance
        rounds = []
        for _ in range(rng.randint(8, 30)):
            a = 0
            while a < k and rng.random() < p:
                a += 1
            rounds.append(float(a))
        per_prompt.append(rounds)
    est = estimate(k, per_prompt)
    boot = []
    for _ in range(4000):
        pick = [per_prompt[rng.randrange(len(per_prompt))] for _ in per_prompt]
        acc = sum(sum(r) for r in pick)
        drafted = sum(k * len(r) for r in pick)
        boot.append(acc / drafted)
    boot.sort()
    lo, hi = boot[int(0.025 * len(boot))], boot[int(0.975 * len(boot)) - 1]
    assert lo < est.alpha < hi
    assert abs((est.ci_low + est.ci_high) / 2 - (lo + hi) / 2) < 0.1 * (hi - lo)
    width, bwidth = est.ci_high - est.ci_low, hi - lo
    assert 0.75 * bwidth < width < 1.25 * bwidth, (width, bwidth)
