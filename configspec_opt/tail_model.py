"""Percentiles of time per output token (TPOT) and time to first token (TTFT), batched.

Why: the optimiser's figures are means; an SLO is signed on a tail.  This module turns
what the mean model already knows about one configuration into the distribution over
requests of a request's TPOT and TTFT, for many configurations at once (numpy arrays,
one entry per configuration).  The model, its assumptions and its tests are in
docs/tails.md; in short:

* a round drafts K tokens and yields Y = A + 1 tokens, A truncated geometric in the
  per-token acceptance p (P(A = j) = p^j (1 - p) for j < K, P(A = K) = p^K), p solved
  from alpha(K) so that E[A] = K alpha(K), the mean model's figure;
* a round lasts mu (the mean model's round time) plus independent noise: drafting
  (normal, relative spread `draft_cv` of K/v_d), rtt jitter (normal), the catch-up
  step after a full accept (Bernoulli f_K times 1/v_d) and, at a batched verifier, the
  wait for the step in progress (none with probability 1 - busy, else uniform on
  [0, wait_s]), each centred, since mu already holds its mean;
* a request of N output tokens: its first token arrives at the end of round 1, so
  TTFT = prefill + one round, and TPOT = (tau_2 + ... + tau_M) / (N - 1) where M is
  the first round count whose yields reach N.  D = M - 1 is computed exactly by dynamic
  programming over the yields; given D = d, the sum of d round times is the exact
  single-round law for d = 1 and normal (mean d mu, variance d sigma^2) for d >= 2.

numpy only (no scipy): the normal CDF is Numerical Recipes' erfc (fractional error
below 1.2e-7).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

# Distinct per-token acceptances up to this many are computed exactly; beyond it
# (a fleet where every device measured its own alpha) on a grid of 1/P_GRID steps,
# the pmf of D interpolated linearly between the two grid points around p.
EXACT_MAX = 256
P_GRID = 1024
PMF_EPS = 1e-13  # probabilities of D below this are dropped (and so is their mass)
_BISECT = 64
_STAGE = 8
_REL_TOL = 1e-10  # percentiles to 1e-10 relative: far below any difference an SLO makes
_CHUNK = 8192
_DP_CHUNK = 128


def erfc_cdf(z: F64) -> F64:
    """Phi(z), vectorised (Numerical Recipes erfcc: fractional error < 1.2e-7)."""
    x = np.abs(z) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * x)
    poly = -x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (
        0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (
            1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    half_erfc = 0.5 * t * np.exp(poly)
    return np.asarray(np.where(z >= 0.0, 1.0 - half_erfc, half_erfc), dtype=np.float64)


_Z_MAX = 10.0
_Z_STEP = 1.0 / 1024.0
_PHI = erfc_cdf(np.arange(-_Z_MAX, _Z_MAX + 2 * _Z_STEP, _Z_STEP))


def norm_cdf(z: F64) -> F64:
    """Phi(z) from a table at 1/1024 steps, linearly interpolated (error below 3e-8,
    Phi(-10) = 0 and Phi(10) = 1): three times faster than `erfc_cdf`, and the search
    for a percentile evaluates it a few hundred million times on a large fleet."""
    pos = (np.clip(z, -_Z_MAX, _Z_MAX) + _Z_MAX) * (1.0 / _Z_STEP)
    i = pos.astype(np.intp)
    frac = pos - i
    lo = _PHI[i]
    return lo + frac * (_PHI[i + 1] - lo)


def _step_or_norm(y: F64, s: F64) -> F64:
    """P(G <= y), G ~ Normal(0, s^2); a step at 0 where s is 0."""
    safe = np.where(s > 0.0, s, 1.0)
    return np.where(s > 0.0, norm_cdf(y / safe), (y >= 0.0).astype(np.float64))


def _uniform_plus_norm(y: F64, s: F64, w: F64) -> F64:
    """P(U + G <= y), U ~ Uniform(0, w), G ~ Normal(0, s^2) (w > 0 where it matters)."""
    w_safe = np.where(w > 0.0, w, 1.0)
    plain = np.clip(y / w_safe, 0.0, 1.0)
    s_safe = np.where(s > 0.0, s, 1.0)

    def psi(z: F64) -> F64:
        return np.asarray(z * norm_cdf(z) + np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi),
                          dtype=np.float64)

    smooth = np.clip(s_safe / w_safe * (psi(y / s_safe) - psi((y - w_safe) / s_safe)), 0.0, 1.0)
    out = np.where(s > 0.0, smooth, plain)
    return np.where(w > 0.0, out, _step_or_norm(y, s))


@dataclass(frozen=True)
class Rounds:
    """One round's time law per configuration (arrays of equal length).

    mu: mean round time (s); draft_sd: sd of the normal part (drafting spread and rtt
    jitter together); full: P(a catch-up step), step_s: its length (1/v_d); busy: P(the
    request waits for a step in progress), wait_s: that step's length (the wait is
    uniform on [0, wait_s]).
    """

    mu: F64
    normal_sd: F64
    full: F64
    step_s: F64
    busy: F64
    wait_s: F64

    @property
    def variance(self) -> F64:
        """Var(round time): the sum of its independent parts' variances."""
        return (self.normal_sd ** 2 + self.full * (1.0 - self.full) * self.step_s ** 2
                + self.busy * self.wait_s ** 2 / 3.0 - (self.busy * self.wait_s / 2.0) ** 2)

    def take(self, idx: NDArray[np.intp]) -> Rounds:
        """The rows `idx`."""
        return Rounds(self.mu[idx], self.normal_sd[idx], self.full[idx], self.step_s[idx],
                      self.busy[idx], self.wait_s[idx])

    def cdf(self, x: F64, rows: NDArray[np.intp] | None = None) -> F64:
        """P(round time <= x), element by element: x[i] against row rows[i] (rows
        omitted: x has one value per row, or one row of values per row after it)."""
        if rows is None:
            rows = np.broadcast_to(np.arange(len(self.mu)).reshape(
                (-1,) + (1,) * (x.ndim - 1)), x.shape) if x.ndim else np.zeros((), np.intp)
        mu, s, f, step, busy, wait = (a[rows] for a in (
            self.mu, self.normal_sd, self.full, self.step_s, self.busy, self.wait_s))
        total = np.zeros(x.shape)
        catch_up = bool(np.any(f > 0.0))
        queued = bool(np.any(busy > 0.0))
        for b, pb in ((0.0, 1.0 - f), (1.0, f)) if catch_up else ((0.0, 1.0 - f),):
            y = x - (mu + (b - f) * step - busy * wait / 2.0)
            part = (1.0 - busy) * _step_or_norm(y, s)
            if queued:
                part += busy * _uniform_plus_norm(y, s, wait)
            total += pb * part
        return total


def per_token_acceptance(alpha: F64, k: NDArray[np.int64]) -> F64:
    """p with p + p^2 + ... + p^K = K alpha(K): the truncated geometric of the same mean."""
    target = np.clip(alpha, 0.0, 1.0) * k
    lo, hi = np.zeros_like(target), np.ones_like(target)
    kk = k.astype(np.float64)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        safe = np.where(mid < 1.0, mid, 0.5)
        g = np.where(mid < 1.0, safe * (1.0 - safe ** kk) / (1.0 - safe), kk)
        below = g < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return np.where(alpha >= 1.0, 1.0, np.where(alpha <= 0.0, 0.0, 0.5 * (lo + hi)))


def yield_pmf(p: F64, k: int) -> F64:
    """P(Y = y) for y = 1..K+1, one row per p (Y = accepted + the bonus token)."""
    j = np.arange(k + 1, dtype=np.float64)
    pj = p[:, None] ** j[None, :]
    out = pj * (1.0 - p[:, None])
    out[:, k] = p ** k
    return np.asarray(out, dtype=np.float64)


def extra_rounds_pmf(p: F64, k: int, lengths: Sequence[int]) -> F64:
    """P(D = d), d = 0..max(N)-1, per length N and p: shape (len(lengths), len(p), max N).

    D = M - 1, M the first m with Y_1 + ... + Y_m >= N (the rounds after the first
    token's).  v[c] = P(C_m = c) for c below max N, C_m the tokens of m rounds, so
    P(M <= m) = P(C_m >= N).  Rows go in chunks of neighbouring p, and each step
    keeps only the columns where some row of the chunk has mass above 1e-30, so the
    work follows the spread of C_m, not max N.
    """
    out = np.zeros((len(lengths), len(p), max(lengths)))
    order = np.argsort(p, kind="stable")
    for start in range(0, len(p), _DP_CHUNK):
        rows = order[start:start + _DP_CHUNK]
        out[:, rows] = _rounds_chunk(p[rows], k, lengths)
    return out


def _rounds_chunk(p: F64, k: int, lengths: Sequence[int]) -> F64:
    n_max = max(lengths)
    out = np.zeros((len(lengths), len(p), n_max))
    py = yield_pmf(p, k)
    v = np.ones((len(p), 1))  # columns [off, off + width): C_0 = 0
    off = 0
    below_prev = np.ones((len(lengths), len(p)))
    for m in range(1, n_max + 1):
        new_off = off + 1
        end = min(n_max, off + v.shape[1] + k + 1)
        if new_off >= end:  # every path passes max N in this round
            out[:, :, m - 1] = below_prev
            break
        new = np.zeros((len(p), end - new_off))
        for y in range(1, k + 2):
            a = off + y - new_off  # column of c = off + y in `new`
            if a >= new.shape[1]:
                break
            n = min(v.shape[1], new.shape[1] - a)
            new[:, a:a + n] += py[:, y - 1:y] * v[:, :n]
        v, off = new, new_off
        for j, n in enumerate(lengths):
            below = v[:, :max(0, n - off)].sum(axis=1)
            out[j, :, m - 1] = np.maximum(below_prev[j] - below, 0.0)
            below_prev[j] = below
        if float(below_prev.max()) < 1e-15:
            break
        live = np.flatnonzero(v.max(axis=0) > 1e-16)
        if not len(live):
            break
        v, off = v[:, live[0]:live[-1] + 1], off + int(live[0])
    return out


@dataclass(frozen=True)
class Workload:
    """Output lengths N (tokens, >= 2) and their weights (normalised, summing to 1)."""

    lengths: tuple[int, ...]
    weights: tuple[float, ...]


@dataclass
class TpotLaw:
    """The TPOT of each configuration's requests as a mixture: component (row, i) has
    probability prob, D = d rounds after the first, over n1 = N - 1 tokens."""

    rounds: Rounds
    prob: F64
    d: F64
    n1: F64
    mean_rounds: F64  # E[M] = 1 + E[D], weighted over the lengths
    base: F64 | None = None  # per row, probability of components left out below (narrowed)
    ends: tuple[F64, F64] | None = None  # `ranges`, once computed

    def cdf(self, t: F64) -> F64:
        """P(TPOT <= t) per row; t has the rows on its last axis ((B,) or (Q, B))."""
        x = t[..., None] * self.n1
        mu = self.rounds.mu[:, None]
        sd = np.sqrt(np.maximum(self.rounds.variance, 0.0))[:, None]
        dd = np.maximum(self.d, 1.0)
        part = _step_or_norm(x - dd * mu, np.sqrt(dd) * sd)
        part = np.where(self.d == 0.0, (x >= 0.0).astype(np.float64), part)
        one = np.broadcast_to(self.d == 1.0, x.shape)
        if one.any():
            rows = np.broadcast_to(np.arange(len(mu))[:, None], x.shape)
            part[one] = self.rounds.cdf(x[one], rows[one])
        total = np.sum(self.prob * part, axis=-1)
        return np.asarray(total if self.base is None else total + self.base, dtype=np.float64)

    def ranges(self) -> tuple[F64, F64]:
        """Per component, an interval of TPOT holding all but ~1e-20 of its probability."""
        if self.ends is None:
            self.ends = self._ranges()
        return self.ends

    def _ranges(self) -> tuple[F64, F64]:
        r = self.rounds
        mu, s = r.mu[:, None], r.normal_sd[:, None]
        sd = np.sqrt(np.maximum(r.variance, 0.0))[:, None]
        dd = np.maximum(self.d, 1.0)
        lo, hi = dd * mu - 9.5 * np.sqrt(dd) * sd, dd * mu + 9.5 * np.sqrt(dd) * sd
        f, step, busy, wait = (a[:, None] for a in (r.full, r.step_s, r.busy, r.wait_s))
        centre = mu - f * step - busy * wait / 2.0
        one_lo = centre - 9.5 * s
        one_hi = centre + np.where(f > 0.0, step, 0.0) + np.where(busy > 0.0, wait, 0.0) + 9.5 * s
        lo = np.where(self.d == 0.0, 0.0, np.where(self.d == 1.0, one_lo, lo)) / self.n1
        hi = np.where(self.d == 0.0, 0.0, np.where(self.d == 1.0, one_hi, hi)) / self.n1
        return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)

    def bracket(self, q: float) -> tuple[F64, F64]:
        """Per row, [lo, hi] holding the q-quantile: the q-quantiles of the components'
        lower and upper ends (the CDF is at most the mass of components begun by t, at
        least the mass of those ended by t)."""
        lo, hi = self.ranges()
        return _weighted_quantile(lo, self.prob, q), _weighted_quantile(hi, self.prob, q)

    def narrowed(self, lo: F64, hi: F64) -> TpotLaw:
        """The same CDF on [lo, hi] per row, from the components that overlap it: those
        ended below lo count whole (`base`), those begun above hi not at all."""
        a, b = self.ranges()
        lo_, hi_ = lo[:, None], hi[:, None]
        below = np.where(b <= lo_, self.prob, 0.0).sum(axis=1)
        active = (self.prob > 0.0) & (b > lo_) & (a <= hi_)
        width = max(1, int(active.sum(axis=1).max()))
        cols = np.argsort(~active, axis=1, kind="stable")[:, :width]
        keep = np.take_along_axis(active, cols, axis=1)
        prob = np.where(keep, np.take_along_axis(self.prob, cols, axis=1), 0.0)
        base = below if self.base is None else below + self.base
        return TpotLaw(self.rounds, prob, np.take_along_axis(self.d, cols, axis=1),
                       np.take_along_axis(self.n1, cols, axis=1), self.mean_rounds, base,
                       (np.take_along_axis(a, cols, axis=1), np.take_along_axis(b, cols, axis=1)))

    def mu_rows(self) -> F64:
        """The rows' mean round times (one per row)."""
        return self.rounds.mu

    def upper(self) -> F64:
        """A TPOT above every row's distribution's support but for 1e-20 or so."""
        sd = np.sqrt(np.maximum(self.rounds.variance, 0.0))[:, None]
        spread = (self.d * self.rounds.mu[:, None] + 10.0 * np.sqrt(np.maximum(self.d, 1.0))
                  * sd + (self.rounds.wait_s + self.rounds.step_s)[:, None])
        return np.asarray(np.max(np.where(self.prob > 0.0, spread / self.n1, 0.0), axis=1),
                          dtype=np.float64)


def _distinct_p(p: F64) -> tuple[F64, NDArray[np.intp], NDArray[np.intp], F64]:
    """Grid points to run the DP on, and per p its two points and interpolation weight."""
    uniq, inv = np.unique(p, return_inverse=True)
    if len(uniq) <= EXACT_MAX:
        idx = inv.astype(np.intp)
        return uniq, idx, idx, np.zeros_like(p)
    pos = p * P_GRID
    i0 = np.clip(np.floor(pos), 0, P_GRID - 1).astype(np.intp)
    w = pos - i0
    used, back = np.unique(np.concatenate([i0, i0 + 1]), return_inverse=True)
    n = len(p)
    return used / P_GRID, back[:n].astype(np.intp), back[n:].astype(np.intp), w


_DP_CACHE: dict[tuple[int, tuple[int, ...]], dict[float, F64]] = {}
_DP_CACHE_MAX = 100_000


def _cached_pmf(p: F64, k: int, lengths: tuple[int, ...]) -> F64:
    """`extra_rounds_pmf`, remembering each row for the life of the process (a server
    solving the same fleet again, or a solve settling its answer, needs the same rows)."""
    cache = _DP_CACHE.setdefault((k, lengths), {})
    todo = [x for x in dict.fromkeys(p.tolist()) if x not in cache]
    if todo:
        if sum(len(c) for c in _DP_CACHE.values()) + len(todo) > _DP_CACHE_MAX:
            for c in _DP_CACHE.values():
                c.clear()
        got = extra_rounds_pmf(np.asarray(todo), k, lengths)
        for i, x in enumerate(todo):
            cache[x] = got[:, i]
    return np.stack([cache[x] for x in p.tolist()], axis=1)


def tpot_law(rounds: Rounds, p: F64, k: NDArray[np.int64], work: Workload) -> TpotLaw:
    """The mixture of every row (one configuration each), its D exact per p and K."""
    b = len(p)
    mean_d = np.zeros(b)
    pieces: list[tuple[NDArray[np.intp], F64, F64, F64]] = []
    for kv in np.unique(k):
        rows = np.flatnonzero(k == kv).astype(np.intp)
        grid, i0, i1, w = _distinct_p(p[rows])
        table = _cached_pmf(grid, int(kv), work.lengths)
        for j, (n, wt) in enumerate(zip(work.lengths, work.weights, strict=True)):
            pmf = (1.0 - w)[:, None] * table[j, i0] + w[:, None] * table[j, i1]
            pmf[pmf < PMF_EPS] = 0.0
            pmf /= pmf.sum(axis=1, keepdims=True)
            ds = np.arange(pmf.shape[1], dtype=np.float64)
            mean_d[rows] += wt * (pmf @ ds)
            nz = pmf > 0.0
            lo = np.argmax(nz, axis=1)
            hi = pmf.shape[1] - np.argmax(nz[:, ::-1], axis=1)
            span = int((hi - lo).max())
            idx = np.minimum(lo[:, None] + np.arange(span)[None, :], pmf.shape[1] - 1)
            got = np.take_along_axis(pmf, idx, axis=1)
            got[np.arange(span)[None, :] >= (hi - lo)[:, None]] = 0.0
            pieces.append((rows, wt * got, idx.astype(np.float64),
                           np.full(got.shape, float(n - 1))))
    width = sum(piece[1].shape[1] for piece in pieces)
    prob = np.zeros((b, width))
    d = np.zeros((b, width))
    n1 = np.ones((b, width))
    col = np.zeros(b, dtype=np.intp)
    for rows, pr, dv, nv in pieces:
        span = pr.shape[1]
        cols = col[rows][:, None] + np.arange(span)[None, :]
        prob[rows[:, None], cols] = pr
        d[rows[:, None], cols] = dv
        n1[rows[:, None], cols] = nv
        col[rows] += span
    used = int(col.max()) if b else 0
    return TpotLaw(rounds, prob[:, :used], d[:, :used], n1[:, :used], 1.0 + mean_d)


def bisect_quantile(cdf: Callable[[F64], F64], lo: F64, hi: F64, q: F64 | float) -> F64:
    """inf{t: F(t) >= q} per entry by bisection on [lo, hi] (F(hi) >= q assumed); `q`
    broadcasts against lo (several levels at once: lo of shape (Q, B), q of (Q, 1))."""
    at_lo = cdf(lo) >= q
    lo, hi = lo.copy(), hi.copy()
    for _ in range(_BISECT):
        mid = 0.5 * (lo + hi)
        ok = cdf(mid) >= q
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
        if bool(np.all((hi - lo <= _REL_TOL * hi) | at_lo)):
            break
    return np.where(at_lo, lo, hi)


def _weighted_quantile(values: F64, prob: F64, q: float) -> F64:
    """Per row, the smallest value whose probability mass at or below it reaches q."""
    order = np.argsort(values, axis=1, kind="stable")
    cum = np.cumsum(np.take_along_axis(prob, order, axis=1), axis=1)
    idx = np.minimum(np.argmax(cum >= q - 1e-12, axis=1), values.shape[1] - 1)
    return np.asarray(np.take_along_axis(np.take_along_axis(values, order, axis=1),
                                         idx[:, None], axis=1)[:, 0], dtype=np.float64)


def tpot_quantiles(law: TpotLaw, qs: Sequence[float]) -> F64:
    """TPOT quantiles per row: shape (len(qs), rows).  Each is searched on its bracket
    (`TpotLaw.bracket`) with only the components that overlap it: a request's TPOT is
    spread over many rounds counts, but its percentile sits among a few."""
    out = np.empty((len(qs), len(law.mu_rows())))
    for i, q in enumerate(qs):
        lo, hi = law.bracket(q)
        out[i] = staged_search(lambda a, b: law.narrowed(a, b).cdf, lo, hi, q)
    return out


def staged_search(narrow: Callable[[F64, F64], Callable[[F64], F64]], lo: F64, hi: F64,
                  q: float) -> F64:
    """`bisect_quantile`, re-narrowing the CDF to the shrinking bracket every 8 halvings
    (each time most components fall out of it, and their cost with them)."""
    at_lo = narrow(lo, lo)(lo) >= q
    lo, hi = lo.copy(), hi.copy()
    for _ in range(_BISECT // _STAGE):
        cdf = narrow(lo, hi)
        for _ in range(_STAGE):
            mid = 0.5 * (lo + hi)
            ok = cdf(mid) >= q
            hi = np.where(ok, mid, hi)
            lo = np.where(ok, lo, mid)
        if bool(np.all((hi - lo <= _REL_TOL * hi) | at_lo)):
            break
    return np.asarray(np.where(at_lo, lo, hi), dtype=np.float64)


def ttft_upper(rounds: Rounds, prefill: F64) -> F64:
    """A TTFT above (almost) all of each row's distribution."""
    return np.asarray(prefill + rounds.mu + 10.0 * np.sqrt(np.maximum(rounds.variance, 0.0))
                      + rounds.wait_s + rounds.step_s, dtype=np.float64)


def ttft_quantiles(rounds: Rounds, prefill: F64, qs: Sequence[float]) -> F64:
    """TTFT quantiles per row (prefill + one round): shape (len(qs), rows)."""
    hi = np.tile(ttft_upper(rounds, prefill), (len(qs), 1))
    rows = np.broadcast_to(np.arange(len(prefill)), hi.shape)
    return bisect_quantile(lambda t: rounds.cdf(t - prefill, rows), np.zeros_like(hi), hi,
                           np.asarray(qs, dtype=np.float64)[:, None])
