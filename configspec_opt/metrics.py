"""The speculative-round model of the ConfigSpec paper (Eq. 1-3), as pure functions.

One round: the draft proposes K tokens at v_d tokens/s, the target verifies
them in T_verify, the network adds rtt; the round yields K*alpha(K) accepted
drafted tokens plus the target's bonus token.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

from configspec_opt.errors import NumericError

SECONDS_PER_HOUR = 3600.0


def _ratio(num: float, den: float, what: str) -> float:
    """num/den as a finite float, or a NumericError naming the quantity.

    The spec's ranges keep every input where this cannot fail; the check is the
    backstop that turns a zero, subnormal or overflowing input into an error a
    user can read instead of a ZeroDivisionError or an inf in a JSON answer.
    """
    if not den > 0.0:
        raise NumericError(f"{what}: division by {den!r}")
    try:
        value = num / den
    except OverflowError:
        value = math.inf
    return _finite(value, what)


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise NumericError(f"{what} is not a finite number ({value!r})")
    return value


def drafting_time_s(k: int, draft_tok_s: float, full_accept: float = 0.0) -> float:
    """(K + f_K)/v_d: K drafted tokens, plus the catch-up step after a fully accepted round."""
    return _ratio(k + full_accept, draft_tok_s, "drafting time (K/draft_tok_s)")


def round_time_s(k: int, draft_tok_s: float, verify_latency_s: float, rtt_s: float = 0.0,
                 full_accept: float = 0.0, overhead_s: float = 0.0) -> float:
    """R = K/v_d + T_verify + rtt (Eq. 1's denominator), plus the measured extras if given."""
    return _finite(drafting_time_s(k, draft_tok_s, full_accept) + verify_latency_s + rtt_s
                   + overhead_s, "round time")


def tokens_per_round(k: int, alpha: float) -> float:
    """Accepted tokens per round: K*alpha(K) drafted plus one bonus token."""
    return k * alpha + 1.0


def written_precision(x: float) -> float:
    """Half a unit in the last decimal place of `x` as written (0.39: 0.005, 0.5775: 5e-5):
    how far a value typed or rounded to that many digits may be from the one measured."""
    exponent = Decimal(repr(x)).as_tuple().exponent
    return 0.5 * 10.0**exponent if isinstance(exponent, int) else 0.0


def falling_expectation(table: Mapping[int, float]) -> list[tuple[int, int]]:
    """The (K', K) steps of an acceptance table where K*alpha(K) falls: K' < K successive
    keys with K*alpha(K) < K'*alpha(K'), by more than the digits the two values are written
    with can explain.

    K*alpha(K) is the expected number of drafted tokens a round of K accepts.  Drafting
    one more token cannot lower it: the first K' tokens are accepted exactly as before and
    the extra ones only add, so it never falls as K grows.  A table where it does is not a
    measurement of one draft against one target (K values measured on different prompts,
    by different tools, or extrapolated); the solver would trust it anyway.
    """
    ks = sorted(table)
    return [(a, b) for a, b in itertools.pairwise(ks)
            if b * table[b] < a * table[a]
            - a * written_precision(table[a]) - b * written_precision(table[b])]


def mixed_alpha(k: int, alphas: Sequence[float], shares: Sequence[float]) -> float:
    """alpha(K) of a traffic mix: requests of class c (share w_c, the same length N) take
    N/(K alpha_c + 1) rounds each, so tokens over rounds is 1 / sum w_c/(K alpha_c + 1) per
    round, and the mix drafts like one class with K alpha + 1 equal to that harmonic mean.
    Goodput, energy per token and cost per token all follow from it exactly."""
    per_round = 1.0 / sum(w / (k * a + 1.0) for a, w in zip(alphas, shares, strict=True))
    return (per_round - 1.0) / k


def goodput_tok_s(k: int, alpha: float, round_s: float) -> float:
    """Eq. 1: G = (K*alpha + 1) / R."""
    return _ratio(tokens_per_round(k, alpha), round_s, "goodput")


def verifier_load_tok_s(k: int, round_s: float) -> float:
    """Tokens per second the verifier processes (and bills) for one device."""
    return _ratio(k, round_s, "verifier load")


def cost_usd_per_hour(k: int, round_s: float, price_usd_per_mtok: float) -> float:
    """Verifier cost of one device in USD per hour, at `price_usd_per_mtok` USD per million tokens.

    Raises
    ------
    NumericError
        The figure would not be finite.
    """
    return _finite(price_usd_per_mtok * 1e-6 * verifier_load_tok_s(k, round_s)
                   * SECONDS_PER_HOUR, "cost per hour")


def cost_efficiency_tok_per_usd(k: int, alpha: float, price_usd_per_mtok: float) -> float:
    """Eq. 2: eta = (alpha + 1/K) / p, accepted tokens per dollar."""
    return _ratio(alpha + 1.0 / k, price_usd_per_mtok * 1e-6, "cost efficiency")


def drafting_power_w(power_w: float, k: int, draft_tok_s: float, round_s: float,
                     full_accept: float = 0.0) -> float:
    """Average power spent drafting over a round: P * (K/v_d) / R (J/s)."""
    return _ratio(power_w * drafting_time_s(k, draft_tok_s, full_accept), round_s,
                  "drafting power")


def energy_j_per_tok(power_w: float, k: int, draft_tok_s: float, alpha: float,
                     full_accept: float = 0.0) -> float:
    """Eq. 3: E = P * (K/v_d) / (K*alpha + 1), drafting energy per accepted token."""
    return _ratio(power_w * drafting_time_s(k, draft_tok_s, full_accept),
                  tokens_per_round(k, alpha), "energy per token")


def mean_acceptance_length(k: int, alpha: float) -> float:
    """vLLM's figure: tokens emitted per verification round (1 + accepted)."""
    return tokens_per_round(k, alpha)
