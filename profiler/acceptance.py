"""alpha(K) for every K from one pass: pure arithmetic on per-position agreement.

Greedy speculative decoding is deterministic given the target's greedy
sequence t_1..t_N and, per position i, whether the draft's argmax after
t_<i equals t_i.  A round starting after `pos` emitted tokens accepts
a = min(run of agreements from pos, K) drafted tokens and then the target's
bonus token, so the next round starts at pos + a + 1.  Replaying that for
each K on the agreement vector gives exactly what a speculative loop run
once per K would count, at the cost of one draft pass (the tests check the
equality against a real loop).

A round is counted only while it fits inside the known sequence
(pos + K + 1 <= N): the K drafted positions and the bonus all have a
target token.  alpha(K) is accepted / drafted (llama.cpp's "accept %", the
paper's alpha); vLLM's mean acceptance length is 1 + accepted per round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Z95 = 1.959963984540054


def agreement_runs(matches: Sequence[bool]) -> list[int]:
    """run[i] = number of consecutive agreements starting at position i."""
    run = [0] * (len(matches) + 1)
    for i in range(len(matches) - 1, -1, -1):
        run[i] = run[i + 1] + 1 if matches[i] else 0
    return run[:-1]


def greedy_rounds(matches: Sequence[bool], k: int) -> list[int]:
    """Accepted drafted tokens of each complete round of a greedy K-token loop."""
    runs = agreement_runs(matches)
    n, pos, out = len(matches), 0, []
    while pos + k + 1 <= n:
        a = min(runs[pos], k)
        out.append(a)
        pos += a + 1
    return out


@dataclass(frozen=True)
class KEstimate:
    """alpha at one K, with what it rests on."""

    k: int
    accepted: float
    drafted: int
    rounds: int
    prompts: int
    ci_low: float
    ci_high: float
    full: float = 0.0  # rounds that accepted all K drafts (the draft then owes one step)

    @property
    def alpha(self) -> float:
        """Accepted / drafted tokens (0 when nothing was drafted)."""
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def mean_acceptance_length(self) -> float:
        """Tokens emitted per round: 1 + accepted per round (vLLM's figure; the bonus counts)."""
        return 1.0 + self.accepted / self.rounds if self.rounds else 1.0

    def record(self) -> dict[str, object]:
        """The estimate as a profile's provenance keeps it, rounded for a readable diff."""
        return {
            "alpha": round(self.alpha, 4),
            "ci95": [round(self.ci_low, 4), round(self.ci_high, 4)],
            "rounds": self.rounds,
            "accepted": round(self.accepted, 3),
            "drafted": self.drafted,
            "mean_acceptance_length": round(self.mean_acceptance_length, 3),
            "full_accept_rate": round(self.full / self.rounds, 4) if self.rounds else 0.0,
        }


def estimate(k: int, per_prompt: Sequence[Sequence[float]]) -> KEstimate:
    """Pool per-prompt round outcomes (accepted per round) into alpha(K) and a 95 % CI.

    Rounds of one prompt are correlated (a hard passage lowers all of them),
    so the interval is the cluster-robust (per-prompt) standard error of the
    ratio estimator; with a single prompt, rounds are treated as independent.
    """
    clusters = [(float(sum(r)), k * len(r)) for r in per_prompt if r]
    rounds = sum(len(r) for r in per_prompt)
    acc = sum(a for a, _ in clusters)
    drafted = sum(d for _, d in clusters)
    if drafted == 0:
        return KEstimate(k, 0.0, 0, 0, len(clusters), 0.0, 1.0)
    alpha = acc / drafted
    if len(clusters) >= 2:
        g = len(clusters)
        resid = sum((a - alpha * d) ** 2 for a, d in clusters)
        se = math.sqrt(g / (g - 1) * resid) / drafted
    else:
        fr = [a / k for r in per_prompt for a in r]
        se = float(np.std(fr, ddof=1)) / math.sqrt(len(fr)) if len(fr) > 1 else 0.5
    full = float(sum(1 for r in per_prompt for a in r if a >= k))
    return KEstimate(k, acc, drafted, rounds, len(clusters),
                     max(0.0, alpha - Z95 * se), min(1.0, alpha + Z95 * se), full)


def greedy_alpha(ks: Sequence[int], matches_per_prompt: Sequence[Sequence[bool]]
                 ) -> dict[int, KEstimate]:
    """alpha(K) for every K in `ks` from the agreement vectors of all prompts."""
    return {k: estimate(k, [greedy_rounds(m, k) for m in matches_per_prompt]) for k in ks}


# --- sampled acceptance (temperature > 0) ----------------------------------


def softmax(logits: npt.NDArray[np.floating], temperature: float) -> npt.NDArray[np.float64]:
    """Probabilities of `logits` at `temperature` (> 0), over the last axis, in float64."""
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: npt.NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
    return out


def overlap(p: npt.NDArray[np.floating], q: npt.NDArray[np.floating]) -> float:
    """sum_x min(p(x), q(x)): probability that rejection sampling accepts a drafted token."""
    return float(np.minimum(p, q).sum())


def expected_rounds(betas: Sequence[float], k: int) -> list[float]:
    """Expected accepted tokens of a K-round started at every position (independent accepts).

    Under rejection sampling drafted token j of a round is kept with
    probability beta_j given all before it were kept, so a round started at s
    accepts sum_{j<=K} prod_{i<j} beta_{s+i} in expectation.  Every start
    position that fits is used: the sampled rounds' boundaries are random,
    so no single partition is the right one.
    """
    b = list(betas)
    out: list[float] = []
    for s in range(0, len(b) - k):
        total, prod = 0.0, 1.0
        for j in range(k):
            prod *= b[s + j]
            total += prod
        out.append(total)
    return out


def sampled_alpha(ks: Sequence[int], betas_per_prompt: Sequence[Sequence[float]]
                  ) -> dict[int, KEstimate]:
    """alpha(K) for every K in `ks` under sampling, from per-position acceptance probabilities.

    The counterpart of `greedy_alpha` at temperature > 0: `betas_per_prompt`
    are `overlap` values per target position (see `expected_rounds`).
    """
    return {k: estimate(k, [expected_rounds(b, k) for b in betas_per_prompt]) for k in ks}
