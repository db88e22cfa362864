"""The tail model against brute force: enumeration, and requests simulated one by one.

Percentiles are compared with a seeded Monte Carlo (`tests.core.tail_sim`, an explicit
loop over requests and rounds) through distribution-free confidence intervals: for S
draws the q-quantile lies between the order statistics of ranks S q -+ 5 sqrt(S q (1 -
q)) except with probability below 1e-6, whatever the distribution, so a test fails by
chance about once in a million runs per comparison.  The model is exact where its
parts are normal and for one round (TTFT); for the sum of two or more rounds with a
uniform wait or a Bernoulli catch-up it takes the sum as normal, which docs/tails.md
bounds by 3 % of the percentile, and the second simulation test allows that much.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

import numpy as np
import pytest

from configspec_opt import tail_model as tm
from configspec_opt import tails
from configspec_opt.metric_registry import TAILS
from configspec_opt.spec import PerTokenAcceptance
from configspec_opt.verifier_load import latency_at, request_latency
from tests.core.tail_sim import Case, simulate

QS = (0.5, 0.95, 0.99)
Z = 5.0
DRAWS = 6000


def _interval(xs: list[float], q: float) -> tuple[float, float]:
    """The distribution-free interval for the q-quantile from the sorted draws."""
    s = sorted(xs)
    n = len(s)
    h = Z * math.sqrt(n * q * (1 - q))
    return s[max(0, math.floor(n * q - h) - 1)], s[min(n - 1, math.ceil(n * q + h))]


def _within(value: float, interval: tuple[float, float], rel: float) -> bool:
    lo, hi = interval
    slack = rel * max(abs(value), abs(hi)) + 1e-12
    return lo - slack <= value <= hi + slack


def _analytic(c: Case) -> tuple[np.ndarray, np.ndarray]:
    rounds = tm.Rounds(*(np.array([x], dtype=np.float64) for x in (
        c.mu, math.hypot(c.draft_cv * c.draft_s, c.rtt_jitter_s), c.full, c.step_s, c.busy,
        c.wait_s)))
    total = sum(w for _, w in c.lengths)
    work = tm.Workload(tuple(n for n, _ in c.lengths), tuple(w / total for _, w in c.lengths))
    law = tm.tpot_law(rounds, np.array([c.p]), np.array([c.k]), work)
    return (tm.tpot_quantiles(law, QS)[:, 0],
            tm.ttft_quantiles(rounds, np.array([c.prefill_s]), QS)[:, 0])


def _case(rng: random.Random, parts: str) -> Case:
    k, p, vd = rng.randint(1, 8), rng.uniform(0.05, 0.97), rng.uniform(10.0, 80.0)
    draft, rtt, verify = k / vd, rng.uniform(0.0, 0.1), rng.uniform(0.02, 0.3)
    full = busy = 0.0
    if parts == "all":
        full = rng.choice([0.0, p ** k])
        busy = rng.choice([0.0, rng.uniform(0.1, 1.0), 1.0])
    lengths = tuple((rng.randint(2, 40), rng.uniform(0.2, 1.0))
                    for _ in range(rng.randint(1, 3)))
    return Case(k, p, draft + full / vd + rtt + verify, draft, rng.choice([0.0, 0.1, 0.3]),
                rng.choice([0.0, 0.01, 0.03]), full, 1.0 / vd, busy,
                verify / 1.5 if busy == 1.0 else verify, rng.choice([0.0, 0.2]), lengths)


@pytest.mark.parametrize("seed", range(8))
def test_percentiles_match_simulation_where_the_model_is_exact(seed: int) -> None:
    """Normal drafting spread and rtt jitter: TPOT and TTFT percentiles exact."""
    c = _case(random.Random(seed), "normal")
    sim = simulate(c, DRAWS, seed)
    tpot, ttft = sim.tpot, sim.ttft
    a_tpot, a_ttft = _analytic(c)
    for i, q in enumerate(QS):
        assert _within(float(a_tpot[i]), _interval(tpot, q), 1e-7), (c, q)
        assert _within(float(a_ttft[i]), _interval(ttft, q), 1e-7), (c, q)


@pytest.mark.parametrize("seed", range(100, 108))
def test_percentiles_match_simulation_with_every_part(seed: int) -> None:
    """Catch-up steps and verifier waits too: TTFT exact, TPOT within the normal sum's 3 %."""
    c = _case(random.Random(seed), "all")
    sim = simulate(c, DRAWS, seed)
    tpot, ttft = sim.tpot, sim.ttft
    a_tpot, a_ttft = _analytic(c)
    for i, q in enumerate(QS):
        assert _within(float(a_ttft[i]), _interval(ttft, q), 1e-7), (c, q)
        assert _within(float(a_tpot[i]), _interval(tpot, q), 0.03), (c, q)


def test_rounds_after_the_first_match_enumeration() -> None:
    """P(D = d) against every sequence of accepted counts, for small K and N."""
    for k, p in itertools.product((1, 2, 3), (0.0, 0.3, 0.8, 1.0)):
        lengths = (2, 3, 5, 7)
        got = tm.extra_rounds_pmf(np.array([p]), k, lengths)
        pa = [p ** j * (1 - p) for j in range(k)] + [p ** k]
        for j, n in enumerate(lengths):
            want = np.zeros(n)
            _paths(k, pa, n, 0, 0, 1.0, want)
            assert np.allclose(got[j, 0, :n], want, atol=1e-12), (k, p, n)


def _paths(k: int, pa: list[float], n: int, tokens: int, rounds: int, prob: float,
           out: np.ndarray) -> None:
    if tokens >= n:
        out[rounds - 1] += prob
        return
    for a in range(k + 1):
        if pa[a] > 0.0:
            _paths(k, pa, n, tokens + a + 1, rounds + 1, prob * pa[a], out)


def test_per_token_acceptance_keeps_the_mean() -> None:
    rng = random.Random(3)
    alphas = np.array([rng.uniform(0.0, 1.0) for _ in range(200)])
    ks = np.array([rng.randint(1, 64) for _ in range(200)], dtype=np.int64)
    p = tm.per_token_acceptance(alphas, ks)
    for a, k, pp in zip(alphas, ks, p, strict=True):
        assert PerTokenAcceptance(per_token=float(min(pp, 1.0))).alpha(int(k)) == \
            pytest.approx(a, abs=1e-9)


@dataclass(frozen=True)
class Cand:
    k: int
    alpha: float
    draft_tok_s: float
    round_time_s: float
    verify_latency_s: float
    tail: tails.TailInputs | None = None


TABLE = {1: {4: 0.05}, 4: {4: 0.08}, 8: {4: 0.14}}


@pytest.mark.parametrize("m", [0.0, 0.25, 0.5, 1.0, 1.7, 3.2, 5.5])
def test_the_wait_is_read_back_from_the_settled_latency(m: float) -> None:
    """A request that finds m in flight waits for the step in progress: with probability
    min(m, 1), uniformly over a step of T(1, K) (m <= 1) or T((2m + 1) / 3, K)."""
    v = request_latency(TABLE, 4, m)
    busy_s = 0.3
    c = Cand(4, 0.6, 20.0, busy_s + v, v, tails.TailInputs(first_row=((4, 0.05),)))
    rounds = tails._round_law([c])[0]
    step = 0.05 if m <= 1.0 else latency_at(TABLE, (2 * m + 1) / 3, 4)
    assert float(rounds.busy[0]) == pytest.approx(min(m, 1.0), abs=1e-12)
    assert float(rounds.wait_s[0]) == pytest.approx(step, rel=1e-12)
    # the mean seen latency is the step's own time plus the mean wait
    assert step + float(rounds.busy[0] * rounds.wait_s[0]) / 2 == pytest.approx(v, rel=1e-12)


def _candidate(c: Case) -> Cand:
    """The candidate whose tail inputs describe `c` (no verifier wait, no catch-up)."""
    total = sum(w for _, w in c.lengths)
    alpha = 1.0 if c.p >= 1.0 else c.p * (1 - c.p ** c.k) / ((1 - c.p) * c.k)
    return Cand(c.k, alpha, 1.0 / c.step_s, c.mu, 0.0, tails.TailInputs(
        lengths=tuple(n for n, _ in c.lengths),
        weights=tuple(w / total for _, w in c.lengths), rtt_jitter_s=c.rtt_jitter_s,
        draft_time_cv=c.draft_cv, prefill_s=c.prefill_s))


def test_fleet_percentile_mixes_pools_by_request_rate() -> None:
    """Devices run requests back to back: a pool's share of the fleet's requests is its
    count times its rate, one over the mean request duration."""
    rng = random.Random(11)
    cases = [_case(rng, "normal") for _ in range(2)]
    cands = [_candidate(c) for c in cases]
    counts = [3, 1]
    draws: list[list[float]] = []
    for i, (c, cand) in enumerate(zip(cases, cands, strict=True)):
        sim = simulate(c, DRAWS, 20 + i)
        rate = tails.figures(cand).requests_per_s
        mean, sd = float(np.mean(sim.duration)), float(np.std(sim.duration))
        assert abs(1 / rate - mean) <= Z * sd / math.sqrt(DRAWS)
        draws.append(sim.tpot)
    # the mixture: as many requests of each pool as its share of the fleet's
    share = [n * tails.figures(x).requests_per_s for n, x in zip(counts, cands, strict=True)]
    top = max(s / len(d) for s, d in zip(share, draws, strict=True))
    mixed = [x for s, d in zip(share, draws, strict=True) for x in d[:round(s / top)]]
    tpot95 = next(d for d in TAILS if d.key == "tpot_p95_s")
    got = tails.fleet_quantile(list(zip(cands, counts, strict=True)), tpot95)
    assert got is not None
    assert _within(got, _interval(mixed, 0.95), 1e-7)
    # and the mixture's CDF there is the percentile's level
    laws = tails.Laws(cands)
    w = np.array(share) / sum(share)
    assert float(w @ laws.cdf("tpot", got)) >= 0.95 - 1e-9
    assert float(w @ laws.cdf("tpot", got * (1 - 1e-6))) < 0.95


@pytest.mark.parametrize("seed", range(200, 206))
def test_a_mix_of_prompt_classes_matches_the_simulated_mixture(seed: int) -> None:
    """A pool's requests are of one class each: the percentiles of a mixed candidate are
    those of the classes' requests pooled in their shares (each simulated at its own
    per-token acceptance), not of one request at the mix's mean alpha."""
    from configspec_opt.metric_registry import TAILS
    from configspec_opt.metrics import mixed_alpha
    from configspec_opt.tails import TailInputs, _ClassRow, percentiles

    rng = random.Random(seed)
    k, vd = rng.randint(2, 6), rng.uniform(10.0, 80.0)
    draft, rtt, verify = k / vd, rng.uniform(0.0, 0.1), rng.uniform(0.02, 0.3)
    alphas = [rng.uniform(0.15, 0.45), rng.uniform(0.6, 0.95)]
    share = rng.uniform(0.2, 0.8)
    shares = [share, 1.0 - share]
    n = rng.randint(8, 40)
    cv, jitter, prefill = rng.choice([0.0, 0.2]), rng.choice([0.0, 0.02]), rng.choice([0.0, 0.2])
    tail = TailInputs((n,), (1.0,), jitter, cv, (), None, prefill, (),
                      tuple((w, ((k, a),)) for w, a in zip(shares, alphas, strict=True)))
    mu = draft + rtt + verify
    got = percentiles([_ClassRow(k, mixed_alpha(k, alphas, shares), vd, mu, verify, tail)])[0]
    tpot: list[float] = []
    ttft: list[float] = []
    for i, (w, a) in enumerate(zip(shares, alphas, strict=True)):
        p = float(tm.per_token_acceptance(np.array([a]), np.array([k]))[0])
        sim = simulate(Case(k, p, mu, draft, cv, jitter, 0.0, 1.0 / vd, 0.0, verify, prefill,
                            ((n, 1.0),)), round(DRAWS * w), seed * 10 + i)
        tpot += sim.tpot
        ttft += sim.ttft
    for d in TAILS:
        draws = tpot if d.kind == "tpot" else ttft
        assert _within(got[d.key], _interval(draws, d.quantile), 1e-6), (d.key, got[d.key])
