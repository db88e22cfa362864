"""Batched verifiers at scale: every candidate's figures at any load, on numpy arrays.

Why: the search over boxes of load (`solvers.load_search`) needs the whole fleet's
candidates at one verification latency per box.  Building them as `Candidate`
copies and problems took 14 s per box at 1,000 pools (150,000 copies), so a search
of a few dozen boxes could not finish in minutes.  But what a verifier's latency t
changes is simple: a candidate's round R = busy + t, and every figure the solver
reads is, per candidate, affine in u = 1/R (goodput, verifier load, drafting power,
its share of time in flight t/R = 1 - busy u) or in t (round time, verify latency),
or does not change.

`BoxArrays` therefore evaluates each coefficient the objective, the fleet rows and
the per-device SLOs read on the candidates as built (at the lightest measured load)
and on one copy of each at another latency, fits it per candidate as a + b x (x = u,
else t), and checks the fit on a seeded sample at a third latency.  A coefficient
that fits neither (a tail row: its CDF is not affine in anything) makes it refuse
(`NotAffine`), and the search keeps building problems box by box.  The arrays then
give any box's objective, rows and valid candidates in a few numpy passes.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from configspec_opt import verifier_load as vl
from configspec_opt.candidates import Candidate, PoolCandidates, at_verify_latency
from configspec_opt.constraint_families import MEAN_SLOS, VariantLimit, families_for
from configspec_opt.problem import Pool, Problem, fleet_rows
from configspec_opt.rows import METRICS, Row
from configspec_opt.spec import Objective, Spec
from configspec_opt.tails import has_tail_slo
from configspec_opt.verifiers import Mode, VerifierPlan
from solvers.decompose import PoolArrays

F64 = NDArray[np.float64]
Coef = Callable[[Candidate], float | None]

# The fit is checked on this many candidates (seeded sample) at a third latency.
CHECK_SAMPLE = 4096
# A fitted value this close (relative to the figure's size) to the copy's is the same.
FIT_TOL = 1e-9
# An optimistic box bounds the replicas a device needs over this many geometric pieces
# from hi / 2**PIECES up (below that, one piece from lo).
PIECES = 4
# Latencies kept per (verifier, load): boxes share their ends.
CACHE = 64


class NotAffine(Exception):
    """The arrays cannot represent this problem (the reason is the message)."""


@dataclass
class Affine:
    """One coefficient per candidate as a + b x, x = 1/R (or t when `on_t`)."""

    a: F64
    b: F64
    on_t: bool

    def at(self, t: F64, u: F64) -> F64:
        """The coefficient at latencies `t` (u = 1 / (busy + t))."""
        return self.a + self.b * (t if self.on_t else u)


@dataclass
class BoxData:
    """One box's model on arrays: candidates first, then each verifier's replica counts."""

    c: F64  # the objective (in its own sense)
    sense: str
    A: F64  # rows scaled to unit size: fleet rows, then one capacity row per verifier
    lo: F64
    up: F64
    valid: NDArray[np.bool_]
    t: F64  # each candidate's verification latency in this box (not the replica columns)


class BoxArrays:
    """The fleet's candidates as arrays, and any box's model from them."""

    def __init__(self, spec: Spec, objective: Objective, structural: Sequence[PoolCandidates],
                 plans: Sequence[VerifierPlan]) -> None:
        if any(not pc.candidates for pc in structural):
            raise NotAffine("a pool without candidates")
        self.plans = list(plans)
        self.flat = [c for pc in structural for c in pc.candidates]
        n = self.n = len(self.flat)
        sizes = np.array([len(pc.candidates) for pc in structural], dtype=np.int64)
        starts = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
        count = np.array([pc.device.count for pc in structural], dtype=np.float64)
        index = {p.target: j for j, p in enumerate(self.plans)}
        self.on = np.fromiter((index.get(c.target, -1) for c in self.flat), np.int64, n)
        self.k = np.fromiter((c.k for c in self.flat), np.int64, n)
        self.t0 = np.fromiter((c.verify_latency_s for c in self.flat), np.float64, n)
        self.busy = np.fromiter((c.busy_s for c in self.flat), np.float64, n)
        self.idx = [np.flatnonzero(self.on == j) for j in range(len(self.plans))]
        self._cache: dict[tuple[int, float], tuple[F64, NDArray[np.bool_]]] = {}
        self.families = families_for(spec, self.plans)
        self.rows = fleet_rows(self.families, ())
        self.problem = Problem(
            spec, [Pool(pc.index, pc.device.name, pc.device.count) for pc in structural],
            self.flat, [list(range(int(a), int(a + s))) for a, s in zip(starts, sizes)],
            fleet_rows(self.families, self.plans), self.families, list(structural),
            verifiers=self.plans)
        variants = sorted({c.variant for c in self.flat})
        vindex = {v: j for j, v in enumerate(variants)}
        vid = np.fromiter((vindex[c.variant] for c in self.flat), np.int64, n)
        limit = next((f.limit for f in self.families if isinstance(f, VariantLimit)), None)
        # one pool per verifier: its replica count, from min to max, as that pool's candidates
        self.replicas = [np.arange(p.verifier.replicas.min, p.verifier.replicas.max + 1,
                                   dtype=np.float64) for p in self.plans]
        extra = sum(len(r) for r in self.replicas)
        self.pools = PoolArrays(
            np.r_[count, np.ones(len(self.plans))],
            np.r_[starts, n + np.r_[0, np.cumsum([len(r) for r in self.replicas])[:-1]]
                  ].astype(np.int64) if self.plans else starts,
            np.r_[vid, np.full(extra, -1, dtype=np.int64)], len(variants), limit)
        self._objective(objective)
        self._slos(spec, structural, sizes)
        coefs: list[Coef] = [f for f, _ in self.obj] + [r.coef for r in self.rows] + \
            [attrgetter(attr) for attr, _, _ in self.slo]
        fits = self._fit(coefs)
        self.obj_fit = fits[:len(self.obj)]
        self.row_fit = fits[len(self.obj):len(self.obj) + len(self.rows)]
        self.slo_fit = fits[len(self.obj) + len(self.rows):]

    # -- what the model reads ------------------------------------------------
    def _objective(self, objective: Objective) -> None:
        """The objective as one linear form over candidates and replicas (else refuse)."""
        terms = objective.terms()
        if objective.mode != "weighted" and len(terms) != 1:
            raise NotAffine("a lexicographic objective of several terms")
        self.sense = "maximize" if objective.mode == "weighted" else terms[0].sense
        self.obj: list[tuple[Coef, float]] = []
        self.obj_replica = np.zeros(len(self.plans))
        for term in terms:
            form = METRICS[term.metric]
            if form.kind != "sum":
                raise NotAffine(f"the objective's {term.metric.value} is not a sum")
            w = term.weight * (1.0 if term.sense == "maximize" else -1.0) \
                if objective.mode == "weighted" else 1.0
            self.obj.append((form.num, w))
            if form.num_per_replica is not None:
                self.obj_replica += w * np.array([form.num_per_replica(p) for p in self.plans])

    def _slos(self, spec: Spec, structural: Sequence[PoolCandidates], sizes: Any) -> None:
        """Per-device mean SLOs as (attribute, sense, bound per candidate; nan: none)."""
        slos = [spec.slo_for(pc.device) for pc in structural]
        if any(has_tail_slo(s) for s in slos) or has_tail_slo(spec.constraints.fleet):
            raise NotAffine("tail-latency bounds")
        self.slo: list[tuple[str, str, F64]] = []
        for name, d, attr in MEAN_SLOS:
            bound = np.array([np.nan if getattr(s, name) is None else float(getattr(s, name))
                              for s in slos])
            if np.isfinite(bound).any():
                self.slo.append((attr, d.bound_sense, np.repeat(bound, sizes)))

    def _fit(self, coefs: Sequence[Coef]) -> list[Affine]:
        """Each coefficient as a + b x per candidate, checked on a sample (module doc)."""
        batched = np.flatnonzero(self.on >= 0)
        t1 = self.t0 * 1.37 + 0.011
        t2 = self.t0 * 2.3 + 0.029
        ones = [at_verify_latency(self.flat[i], float(t1[i])) for i in batched]
        rng = random.Random(0)
        sample = np.array(sorted(rng.sample(range(len(batched)), min(CHECK_SAMPLE,
                                                                    len(batched)))),
                          dtype=np.int64)
        twos = [at_verify_latency(self.flat[batched[s]], float(t2[batched[s]]))
                for s in sample]
        u0, u1 = 1.0 / (self.busy + self.t0), 1.0 / (self.busy + t1)
        u2 = 1.0 / (self.busy + t2)
        out = []
        for f in coefs:
            try:
                v0 = _values(f, self.flat)
                v1 = v0.copy()
                v1[batched] = _values(f, ones)
                v2 = _values(f, twos)
            except ValueError as exc:  # the model path reports it (unknown power, say)
                raise NotAffine(str(exc)) from exc
            at = batched[sample]
            fit = None
            for on_t, x0, x1, x2 in ((False, u0, u1, u2), (True, self.t0, t1, t2)):
                b = np.zeros(self.n)
                b[batched] = (v1[batched] - v0[batched]) / (x1[batched] - x0[batched])
                a = v0 - b * x0
                pred = a[at] + b[at] * x2[at]
                size = np.maximum(np.maximum(np.abs(v0[at]), np.abs(v1[at])),
                                  np.maximum(np.abs(v2), 1.0))
                same = (np.abs(pred - v2) <= FIT_TOL * size) | (np.isnan(pred) & np.isnan(v2))
                if bool(same.all()):
                    fit = Affine(np.where(np.isnan(a), np.nan, a), np.nan_to_num(b), on_t)
                    break
            if fit is None:
                raise NotAffine("a coefficient that is not affine in the round time")
            out.append(fit)
        return out

    # -- one box --------------------------------------------------------------
    def latency(self, j: int, load: float) -> tuple[F64, NDArray[np.bool_]]:
        """Verifier j's candidates' latencies at `load` per replica, and where there is none."""
        key = (j, load)
        got = self._cache.get(key)
        if got is None:
            plan, idx = self.plans[j], self.idx[j]
            got = vl.batch_latency_array(plan.verifier.latency_s, plan.verifier.max_batch,
                                         load, self.k[idx], self.busy[idx])
            if len(self._cache) >= CACHE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = got
        return got

    def replicas_per_device(self, j: int, lo: float, hi: float) -> F64:
        """A lower bound on s(b) / b over b in (lo, hi] for verifier j's candidates.

        At its true load b a plan needs sum n s(b) / b = r replicas.  s rises with
        b, so on a piece [a, a'] of the box s(b) / b >= s(a) / a'; the least over
        the pieces bounds it on the whole box (a piece where a candidate has no
        latency holds no plan of it: skipped).
        """
        bottom = max(lo, hi / 2.0 ** PIECES)
        grid = [bottom * (hi / bottom) ** (i / PIECES) for i in range(PIECES + 1)]
        if lo < bottom:
            grid = [lo, *grid]
        best = np.full(len(self.idx[j]), np.inf)
        for a, a2 in itertools.pairwise(grid):
            t, bad = self.latency(j, a)
            share = t / (self.busy[self.idx[j]] + t)
            best = np.where(bad, best, np.minimum(best, share / a2))
        return best

    def data(self, lo: Sequence[float], hi: Sequence[float], mode: Mode) -> BoxData:
        """One box's model.  Optimistic: latencies at each verifier's lo, replicas from
        `replicas_per_device` over (lo, hi]; conservative: both at hi (a plan it allows
        truly loads at most hi)."""
        t = self.t0.copy()
        valid = np.ones(self.n, dtype=bool)
        per_device = np.zeros(self.n)
        for j in range(len(self.plans)):
            idx = self.idx[j]
            tj, bad = self.latency(j, lo[j] if mode == "optimistic" else hi[j])
            t[idx] = np.where(bad, self.t0[idx], tj)
            valid[idx] = ~bad
            if mode == "optimistic":
                need = self.replicas_per_device(j, lo[j], hi[j])
                valid[idx] &= np.isfinite(need)
                per_device[idx] = np.where(np.isfinite(need), need, 0.0)
            else:
                per_device[idx] = t[idx] / (self.busy[idx] + t[idx]) / hi[j]
        u = 1.0 / (self.busy + t)
        for (_, sense, bound), fit in zip(self.slo, self.slo_fit):
            v = fit.at(t, u)
            miss = bound - v if sense == ">=" else v - bound
            valid &= ~(miss > 1e-12 * np.maximum(1.0, np.abs(bound)))  # nan: no SLO, no miss
        c = np.zeros(self.n)
        for (_, w), fit in zip(self.obj, self.obj_fit):
            c += w * fit.at(t, u)
        reps = np.concatenate(self.replicas) if self.plans else np.zeros(0)
        which = np.repeat(np.arange(len(self.plans)), [len(r) for r in self.replicas])
        c = np.r_[c, self.obj_replica[which] * reps]
        rows: list[F64] = []
        lo_: list[float] = []
        up_: list[float] = []
        for row, fit in zip(self.rows, self.row_fit):
            per = np.array([row.replica_coef.get(p.target, 0.0) for p in self.plans])
            coef = np.r_[fit.at(t, u), per[which] * reps]
            _append(rows, lo_, up_, coef, row.sense, row.rhs)
        for j in range(len(self.plans)):  # replicas needed <= replicas run
            coef = np.r_[np.where(self.on == j, per_device, 0.0),
                         np.where(which == j, -reps, 0.0)]
            _append(rows, lo_, up_, coef, "<=", 0.0)
        valid = np.r_[valid, np.ones(len(reps), dtype=bool)]
        return BoxData(c, self.sense, np.array(rows).reshape(len(rows), len(c)),
                       np.array(lo_), np.array(up_), valid, t)

    def assignment(self, x: F64, t: F64) -> tuple[list[tuple[Candidate, int]], dict[str, int]]:
        """A plan on the arrays as candidates (at the box's latencies) and replicas."""
        chosen = [(at_verify_latency(self.flat[i], float(t[i])) if self.on[i] >= 0
                   else self.flat[i], round(float(x[i])))
                  for i in np.flatnonzero(x[:self.n] > 0.5)]
        replicas: dict[str, int] = {}
        at = self.n
        for p, reps in zip(self.plans, self.replicas):
            pick = x[at:at + len(reps)]
            replicas[p.target] = int(reps[int(np.argmax(pick))])
            at += len(reps)
        return chosen, replicas


def _values(f: Coef, cands: Sequence[Candidate]) -> F64:
    """f over candidates; None as nan (an unknown power, say)."""
    out = [f(c) for c in cands]
    return np.array([np.nan if v is None else float(v) for v in out], dtype=np.float64)


def _append(rows: list[F64], lo: list[float], up: list[float], coef: F64, sense: str,
            rhs: float) -> None:
    """One row scaled to unit size as `DecomposedModel.add_rows` scales its rows."""
    size = max(abs(rhs), float(np.abs(coef).max()) if len(coef) else 0.0)
    scale = size if 0.0 < size < 1.0 else 1.0
    rows.append(coef / scale)
    if sense == "<=":
        lo.append(-np.inf)
        up.append(rhs / scale)
    else:
        lo.append(rhs / scale)
        up.append(np.inf)


__all__ = ["Affine", "BoxArrays", "BoxData", "NotAffine", "Row"]
