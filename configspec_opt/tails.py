"""Tail-latency figures of candidates: TPOT and TTFT percentiles over their requests.

A candidate's figures need more than its own numbers: the workload's output lengths,
the device's rtt jitter, the profile's drafting spread and catch-up rates, a batched
verifier's single-request latency, the prefill and the fleet's tail limits.  They are
collected once per (pool, profile, target) into a `TailInputs` that the candidate
carries (`candidates.enumerate_candidates`), so a candidate copied at another verifier
latency (`candidates.at_verify_latency`) keeps them.  Figures are computed in batches
by `tail_model` and cached on what determines them, so filtering 100,000 candidates
is one vectorised pass (`warm`).  numpy is imported only when figures are computed: a
spec without tail SLOs validates without it.  The model is in docs/tails.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from configspec_opt.errors import SolverUnavailableError
from configspec_opt.metric_registry import BY_TAIL_SLO, TAILS, TailDef
from configspec_opt.spec import DEFAULT_OUTPUT_TOKENS, Device, Profile, Spec, Target

_CHUNK = 8192

if TYPE_CHECKING:
    from configspec_opt.tail_model import F64, Rounds, TpotLaw


class HasTail(Protocol):
    """What the figures read of a candidate (`candidates.Candidate` has it)."""

    @property
    def k(self) -> int: ...
    @property
    def alpha(self) -> float: ...
    @property
    def draft_tok_s(self) -> float: ...
    @property
    def round_time_s(self) -> float: ...
    @property
    def verify_latency_s(self) -> float: ...
    @property
    def tail(self) -> TailInputs | None: ...


@dataclass(frozen=True)
class TailInputs:
    """What a candidate's tail figures read beyond its own numbers (see the module doc).

    `first_row` is a batched verifier's T(1, K) per K (None: a fixed-latency target, no
    queueing); `points` are the fleet's tail limits, (kind, seconds), at which each
    candidate's CDF is kept for the fleet's rows.
    """

    lengths: tuple[int, ...] = (DEFAULT_OUTPUT_TOKENS,)
    weights: tuple[float, ...] = (1.0,)
    rtt_jitter_s: float = 0.0
    draft_time_cv: float = 0.0
    full_accept: tuple[tuple[int, float], ...] = ()
    first_row: tuple[tuple[int, float], ...] | None = None
    prefill_s: float = 0.0
    points: tuple[tuple[str, float], ...] = ()
    # A traffic mix (docs/workload-mix.md): per prompt class, its share of requests and
    # its alpha per K.  A request is of one class, so the figures are the mixture of the
    # classes' laws, each at its own alpha; () without a mix.
    classes: tuple[tuple[float, tuple[tuple[int, float], ...]], ...] = ()


DEFAULT_INPUTS = TailInputs()


def fleet_points(spec: Spec) -> tuple[tuple[str, float], ...]:
    """The fleet's tail limits as (kind, seconds), in TAILS order."""
    return _points(spec.constraints.fleet)


def _points(values: Any) -> tuple[tuple[str, float], ...]:
    return tuple((d.kind, float(getattr(values, d.slo))) for d in TAILS
                 if getattr(values, d.slo) is not None)


def inputs_for(spec: Spec, device: Device, profile: Profile, target: Target,
               points: tuple[tuple[str, float], ...] | None = None) -> TailInputs:
    """The tail inputs of one (pool, profile, target); its points are the fleet's tail
    limits (`points`, when the caller computed them once) and the pool's tail SLOs."""
    pairs = spec.workload.lengths()
    first: tuple[tuple[int, float], ...] | None = None
    if target.verifier is not None:
        table = target.verifier.latency_s
        first = tuple(sorted(table[min(table)].items()))
    own = _points(spec.slo_for(device)) if device.slo is not None or has_tail_slo(
        spec.constraints.per_device) else ()
    pts = fleet_points(spec) if points is None else points
    mix = spec.mix_for(device)
    classes: tuple[tuple[float, tuple[tuple[int, float], ...]], ...] = ()
    if mix is not None:
        classes = tuple(
            (share, tuple((k, a) for k in spec.search.k.values()
                          if (a := profile.class_alpha(cls, target.name, k)) is not None))
            for cls, share in mix.items())
    return TailInputs(
        tuple(n for n, _ in pairs), tuple(w for _, w in pairs), device.rtt_jitter_s,
        profile.draft_time_cv, tuple(sorted(profile.full_accept.get(target.name, {}).items())),
        first, target.prefill_latency_s, tuple(dict.fromkeys(pts + own)), classes)


def has_tail_slo(values: Any) -> bool:
    """Whether a DeviceSLO or FleetConstraints sets any tail bound."""
    return any(getattr(values, name) is not None for name in BY_TAIL_SLO)


@dataclass(frozen=True)
class TailFigures:
    """One candidate's request rate (requests per second of one device, back to back)
    and its CDF at its `points` (the fleet's tail limits and its pool's tail SLOs)."""

    requests_per_s: float
    cdf: tuple[float, ...]


_CACHE: dict[tuple[Any, ...], TailFigures] = {}
_PCT_CACHE: dict[tuple[Any, ...], dict[str, float]] = {}
_CACHE_MAX = 2_000_000


def _key(c: HasTail) -> tuple[Any, ...]:
    return (c.tail or DEFAULT_INPUTS, c.k, c.alpha, c.round_time_s, c.verify_latency_s,
            c.draft_tok_s)


def figures(c: HasTail) -> TailFigures:
    """The candidate's rate and CDF at its points (computed alone if `warm` missed it)."""
    got = _CACHE.get(_key(c))
    if got is None:
        warm([c])
        got = _CACHE[_key(c)]
    return got


def warm(cands: Iterable[HasTail]) -> None:
    """Compute and cache `figures` of every candidate not yet cached, in batches: one CDF
    evaluation per point, no percentile (those are `percentiles`, for the few that need
    them)."""
    todo = _missing(cands, _CACHE)
    if todo:
        keys = list(todo)
        for key, fig in zip(keys, _compute([todo[k] for k in keys]), strict=True):
            _CACHE[key] = fig


def percentiles(cands: Sequence[HasTail]) -> list[dict[str, float]]:
    """Per candidate, every percentile (seconds) keyed as the JSON answer writes it."""
    todo = _missing(cands, _PCT_CACHE)
    if todo:
        keys = list(todo)
        for key, values in zip(keys, _quantiles([todo[k] for k in keys]), strict=True):
            _PCT_CACHE[key] = values
    return [_PCT_CACHE[_key(c)] for c in cands]


def _missing(cands: Iterable[HasTail], cache: dict[tuple[Any, ...], Any]
             ) -> dict[tuple[Any, ...], HasTail]:
    todo: dict[tuple[Any, ...], HasTail] = {}
    for c in cands:
        key = _key(c)
        if key not in cache:
            todo.setdefault(key, c)
    if len(cache) + len(todo) > _CACHE_MAX:
        cache.clear()
    return todo


def _numpy() -> Any:
    """The tail model's module; SolverUnavailableError (exit 3) where numpy is missing."""
    _np()
    from configspec_opt import tail_model
    return tail_model


def _np() -> Any:
    try:
        import numpy
    except ModuleNotFoundError as exc:  # numpy: the solver extra
        raise SolverUnavailableError(
            "tail-latency figures (TPOT, TTFT percentiles) need numpy, which the solver "
            "extra installs") from exc
    return numpy


@dataclass(frozen=True)
class _ClassRow:
    """One prompt class of a mixed candidate: the candidate at the class's alpha."""

    k: int
    alpha: float
    draft_tok_s: float
    round_time_s: float
    verify_latency_s: float
    tail: TailInputs | None


def _by_class(cands: Sequence[HasTail]) -> tuple[list[HasTail], list[int], list[float]]:
    """Each candidate as rows of one class each: the rows, each row's candidate and share
    of its requests (a candidate without a mix is one row of share 1)."""
    rows: list[HasTail] = []
    parent: list[int] = []
    share: list[float] = []
    for i, c in enumerate(cands):
        t = c.tail or DEFAULT_INPUTS
        mixed = [(w, dict(table).get(c.k)) for w, table in t.classes]
        if not mixed or any(a is None for _, a in mixed):
            rows.append(c)
            parent.append(i)
            share.append(1.0)
            continue
        plain = TailInputs(t.lengths, t.weights, t.rtt_jitter_s, t.draft_time_cv,
                           t.full_accept, t.first_row, t.prefill_s, t.points)
        for w, a in mixed:
            assert a is not None
            rows.append(_ClassRow(c.k, a, c.draft_tok_s, c.round_time_s, c.verify_latency_s,
                                  plain))
            parent.append(i)
            share.append(w)
    return rows, parent, share


class Laws:
    """The TPOT and TTFT laws of a list of candidates, grouped by workload.

    A candidate with a traffic mix is one row per prompt class (`_by_class`); its CDF is
    the rows' CDFs weighted by the classes' shares of requests, its mean rounds per
    request their weighted mean, and its quantiles are found on that mixture."""

    def __init__(self, cands: Sequence[HasTail]) -> None:
        np, tm = _np(), _numpy()
        self.n = len(cands)
        rows, parent, share = _by_class(cands)
        self.m = len(rows)
        self.mixed = self.m != self.n
        self.parent = np.asarray(parent, dtype=np.intp)
        self.share = np.asarray(share, dtype=np.float64)
        self.groups: list[tuple[Any, TpotLaw, Rounds, F64]] = []
        by_work: dict[tuple[Any, ...], list[int]] = {}
        for i, c in enumerate(rows):
            t = c.tail or DEFAULT_INPUTS
            by_work.setdefault((t.lengths, t.weights), []).append(i)
        for (lengths, weights), idx in by_work.items():
            part = [rows[i] for i in idx]
            rounds, prefill, p, k = _round_law(part)
            law = tm.tpot_law(rounds, p, k, tm.Workload(lengths, weights))
            self.groups.append((np.asarray(idx, dtype=np.intp), law, rounds, prefill))

    def row_weights(self, w: F64) -> F64:
        """Per-candidate weights as the rows' (each row its candidate's times its share)."""
        return cast("F64", w[self.parent] * self.share)

    def _combine(self, rows: F64, how: str = "sum") -> F64:
        """Rows (last axis) back to candidates: share-weighted sums, or maxima."""
        np = _np()
        if not self.mixed:
            return rows
        lead = np.moveaxis(rows, -1, 0)
        out = np.zeros((self.n, *lead.shape[1:]))
        if how == "max":
            out[:] = -np.inf
            np.maximum.at(out, self.parent, lead)
        else:
            np.add.at(out, self.parent, lead * self.share.reshape((-1,) + (1,) * (lead.ndim - 1)))
        return cast("F64", np.moveaxis(out, 0, -1))

    def cdf(self, kind: str, t: float | F64) -> F64:
        """P(TPOT <= t) or P(TTFT <= t) per candidate; t is one value, one per candidate,
        or (Q, candidates)."""
        np = _np()
        tt = np.asarray(t, dtype=np.float64)
        tt = np.broadcast_to(tt, (*tt.shape[:-1], self.n) if tt.ndim else (self.n,))
        if self.mixed:
            tt = tt[..., self.parent]
        out = np.zeros(tt.shape)
        for idx, law, rounds, prefill in self.groups:
            part = tt[..., idx]
            out[..., idx] = law.cdf(part) if kind == "tpot" else rounds.cdf(
                part - prefill, np.broadcast_to(np.arange(len(idx)), part.shape))
        return self._combine(cast("F64", out))

    def upper(self, kind: str) -> F64:
        """Per candidate, a time above (almost) all of its distribution."""
        np = _np()
        out = np.zeros(self.m)
        for idx, law, rounds, prefill in self.groups:
            out[idx] = law.upper() if kind == "tpot" else (
                prefill + rounds.mu + 10.0 * np.sqrt(np.maximum(rounds.variance, 0.0))
                + rounds.wait_s + rounds.step_s)
        return self._combine(cast("F64", out), "max")

    def quantiles(self, kind: str, qs: Sequence[float]) -> F64:
        """The quantiles `qs` per candidate: shape (len(qs), candidates)."""
        np, tm = _np(), _numpy()
        if self.mixed:  # on the mixture's CDF
            hi = np.tile(self.upper(kind), (len(qs), 1))
            return cast("F64", tm.bisect_quantile(
                lambda t: self.cdf(kind, t), np.zeros_like(hi), hi,
                np.asarray(qs, dtype=np.float64)[:, None]))
        out = np.zeros((len(qs), self.n))
        for idx, law, rounds, prefill in self.groups:
            out[:, idx] = tm.tpot_quantiles(law, qs) if kind == "tpot" else \
                tm.ttft_quantiles(rounds, prefill, qs)
        return cast("F64", out)

    def mean_rounds(self) -> F64:
        """E[rounds per request] per candidate, over the workload's lengths (and classes)."""
        np = _np()
        out = np.zeros(self.m)
        for idx, law, _, _ in self.groups:
            out[idx] = law.mean_rounds
        return self._combine(cast("F64", out))


def _round_law(rows: Sequence[HasTail]) -> tuple[Rounds, F64, F64, Any]:
    """One round's time law per candidate, its prefill, per-token acceptance and K."""
    np, tm = _np(), _numpy()
    ins = [c.tail or DEFAULT_INPUTS for c in rows]
    k = np.array([c.k for c in rows], dtype=np.int64)
    vd = np.array([c.draft_tok_s for c in rows])
    mu = np.array([c.round_time_s for c in rows])
    v = np.array([c.verify_latency_s for c in rows])
    cv = np.array([t.draft_time_cv for t in ins])
    jitter = np.array([t.rtt_jitter_s for t in ins])
    full = np.array([dict(t.full_accept).get(c.k, 0.0) for c, t in zip(rows, ins, strict=True)])
    t1 = np.array([np.nan if t.first_row is None else dict(t.first_row).get(c.k, np.nan)
                   for c, t in zip(rows, ins, strict=True)])
    step = 1.0 / vd
    queued = np.isfinite(t1) & (t1 > 0.0)
    t1s = np.where(queued, t1, 1.0)
    light = v <= 1.5 * t1s
    busy = np.where(queued, np.where(light, np.clip(2.0 * (v / t1s - 1.0), 0.0, 1.0), 1.0), 0.0)
    wait = np.where(queued, np.where(light, t1s, v / 1.5), 0.0)
    normal_sd = np.sqrt((cv * k * step) ** 2 + jitter ** 2)
    rounds = tm.Rounds(mu, normal_sd, full, step, busy, wait)
    prefill = np.array([t.prefill_s for t in ins])
    p = tm.per_token_acceptance(np.array([c.alpha for c in rows]), k)
    return rounds, prefill, p, k


def _compute(cands: Sequence[HasTail]) -> list[TailFigures]:
    out: list[TailFigures] = []
    for start in range(0, len(cands), _CHUNK):
        chunk = cands[start:start + _CHUNK]
        laws = Laws(chunk)
        mean_r = laws.mean_rounds()
        ins = [c.tail or DEFAULT_INPUTS for c in chunk]
        at = {pt: laws.cdf(pt[0], pt[1]) for pt in {pt for t in ins for pt in t.points}}
        for i, (c, t) in enumerate(zip(chunk, ins, strict=True)):
            out.append(TailFigures(1.0 / (t.prefill_s + c.round_time_s * float(mean_r[i])),
                                   tuple(float(at[pt][i]) for pt in t.points)))
    return out


def _quantiles(cands: Sequence[HasTail]) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    for start in range(0, len(cands), _CHUNK):
        laws = Laws(cands[start:start + _CHUNK])
        values: dict[str, Any] = {}
        for kind in ("tpot", "ttft"):
            defs = [d for d in TAILS if d.kind == kind]
            got = laws.quantiles(kind, [d.quantile for d in defs])
            values.update({d.key: got[i] for i, d in enumerate(defs)})
        out.extend({key: float(v[i]) for key, v in values.items()} for i in range(laws.n))
    return out


def cdf_at(c: HasTail, kind: str, t: float) -> float:
    """P(TPOT <= t) or P(TTFT <= t) of one candidate's requests; cached at its points."""
    pts = (c.tail or DEFAULT_INPUTS).points
    if (kind, t) in pts:
        return figures(c).cdf[pts.index((kind, t))]
    return float(Laws([c]).cdf(kind, t)[0])


def misses(c: HasTail, bounds: Sequence[tuple[TailDef, float]], amounts: bool = True
           ) -> dict[str, float]:
    """The tail bounds (percentile, seconds) the candidate misses: a percentile above its
    bound is a CDF below the percentile's level there.  The amount (percentile - bound,
    s) is computed only with `amounts` (else inf): a filter needs one CDF value."""
    out: dict[str, float] = {}
    for d, bound in bounds:
        if cdf_at(c, d.kind, bound) < d.quantile:
            out[d.slo] = max(percentiles([c])[0][d.key] - bound, 1e-12 * bound) \
                if amounts else float("inf")
    return out


def fleet_quantile(assignment: Sequence[tuple[Any, int]], d: TailDef) -> float | None:
    """The percentile `d` over every request of the fleet; None without devices."""
    return fleet_percentiles(assignment, (d,))[d.key]


def fleet_percentiles(assignment: Sequence[tuple[Any, int]],
                      defs: Sequence[TailDef] = TAILS) -> dict[str, float | None]:
    """Percentiles over every request of the fleet: the devices' distributions mixed by
    their request rates (count x requests per second).

    The mixture's percentile lies between the smallest and the largest of its rows' (a
    weighted mean of CDFs reaches q after the first row does and by the time the last
    does), so the search starts from that bracket, all levels of a kind at once.
    """
    np, tm = _np(), _numpy()
    rows = [(c, n) for c, n in assignment if n > 0]
    if not rows:
        return {d.key: None for d in defs}
    cands = [c for c, _ in rows]
    warm(cands)
    w = np.array([n * figures(c).requests_per_s for c, n in rows])
    w = w / w.sum()
    own = percentiles(cands)
    laws = Laws(cands)
    out: dict[str, float | None] = {}
    for d in defs:
        lo = np.array([min(p[d.key] for p in own)])
        hi = np.array([max(p[d.key] for p in own) * (1.0 + 1e-9)])
        if d.kind == "tpot":  # each row's components that can matter within the bracket
            def narrow(a: F64, b: F64) -> Any:
                subs = [(idx, law.narrowed(np.full(len(idx), a[0]), np.full(len(idx), b[0])))
                        for idx, law, _, _ in laws.groups]
                rw = laws.row_weights(w)
                return lambda t: np.array([sum(float(rw[idx] @ sub.cdf(np.full(len(idx), t[0])))
                                               for idx, sub in subs)])
        else:
            def narrow(a: F64, b: F64) -> Any:
                return lambda t: np.array([float(laws.cdf("ttft", t[0]) @ w)])
        out[d.key] = float(tm.staged_search(narrow, lo, hi, d.quantile)[0])
    return {d.key: out[d.key] for d in defs}


__all__ = ["BY_TAIL_SLO", "DEFAULT_INPUTS", "TAILS", "Laws", "TailFigures", "TailInputs",
           "cdf_at", "figures", "fleet_percentiles", "fleet_points", "fleet_quantile",
           "has_tail_slo",
           "inputs_for", "misses", "percentiles", "warm"]
