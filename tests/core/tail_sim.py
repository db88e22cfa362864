"""Brute force for the tail model: requests simulated one by one, round by round.

The reference `configspec_opt.tail_model` is tested against.  Nothing is shared with it:
acceptance is drawn token by token (each drafted token accepted with probability p until
the first rejection or K), and each round's time from its parts as docs/tails.md
states them (drafting spread and rtt jitter normal, the catch-up step Bernoulli, the wait
for a verifier step uniform when the verifier is busy), in an explicit loop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """One configuration: its round's parts and its workload."""

    k: int
    p: float               # per-token acceptance
    mu: float              # mean round time (s)
    draft_s: float         # K / v_d (s): the part the drafting spread scales
    draft_cv: float
    rtt_jitter_s: float
    full: float            # P(catch-up step) in a round
    step_s: float          # the catch-up step (1 / v_d)
    busy: float            # P(the request waits for a step in progress)
    wait_s: float          # that step's length
    prefill_s: float
    lengths: tuple[tuple[int, float], ...]  # (N, weight)


@dataclass
class Requests:
    """Per simulated request: its TPOT and TTFT (s), output tokens and duration (s)."""

    tpot: list[float]
    ttft: list[float]
    tokens: list[int]
    duration: list[float]


def simulate(case: Case, requests: int, seed: int) -> Requests:
    """`requests` requests of `case`, in order."""
    rng = random.Random(seed)
    ns = [n for n, _ in case.lengths]
    ws = [w for _, w in case.lengths]
    out = Requests([], [], [], [])
    for _ in range(requests):
        n = rng.choices(ns, weights=ws)[0]
        tokens, clock, first = 0, 0.0, 0.0
        while tokens < n:
            accepted = 0
            while accepted < case.k and rng.random() < case.p:
                accepted += 1
            tokens += accepted + 1
            clock += _round_time(case, rng)
            if first == 0.0:
                first = clock
        out.ttft.append(case.prefill_s + first)
        out.tpot.append((clock - first) / (n - 1))
        out.tokens.append(n)
        out.duration.append(case.prefill_s + clock)
    return out


def _round_time(case: Case, rng: random.Random) -> float:
    t = case.mu
    t += rng.gauss(0.0, case.draft_cv * case.draft_s) if case.draft_cv else 0.0
    t += rng.gauss(0.0, case.rtt_jitter_s) if case.rtt_jitter_s else 0.0
    t += ((1.0 if rng.random() < case.full else 0.0) - case.full) * case.step_s
    wait = rng.uniform(0.0, case.wait_s) if rng.random() < case.busy else 0.0
    return t + wait - case.busy * case.wait_s / 2.0
