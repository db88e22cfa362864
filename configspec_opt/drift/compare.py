"""Is a pool still running as its lock assumed?  Observations tested against the profiles.

For every row of the lock's assignment (a pool's target, draft, quant and K)
each quantity observed over the drift window is compared with the number the
solve used, widened by the profile's own interval where it has one and by a
stated relative tolerance:

* acceptance: accepted / drafted tokens against alpha(K).  The profile's band
  is its 95 % interval (`provenance.acceptance[target].per_k[K].ci95`, written
  by `configspec profile`), or the value alone, widened by `acceptance`
  (relative).  The observation's uncertainty is a Wilson score interval at
  `z` with n = draft rounds, not tokens: the tokens of one round are not
  independent, and a round's accepted fraction, a number in [0, 1] with mean
  p, has variance at most p(1 - p), so counting rounds is the conservative
  choice.  Drift is declared only when the whole interval lies outside the band;
* draft speed: the mean of the reports against v_d, the band being the profile's
  repeats (`provenance.draft_tok_s.per_repeat_tok_s`) or the value, widened by
  `draft_tok_s`;
* rtt against the pool's `rtt_s`, widened by `rtt_s` relative plus `rtt_abs_s`
  (an rtt the spec leaves at 0 is not a licence for any rtt);
* verifier step time against T_verify(K): the settled latency the lock
  records for a batched verifier, else `verify_latency_s + K * per_token`,
  widened by `verify_step_s`.

Mean readings count only from `min_reports` reports on; fewer are "too few".
With z = 3.29 (two-sided 99.9 %) a pool whose acceptance is as profiled is
flagged by chance about once in a thousand checks, and not at all when the
tolerance is wider than the interval (the usual case with many rounds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from configspec_opt.drift.observations import ConfigKey
from configspec_opt.spec import Profile, Spec

Verdict = Literal["ok", "lower", "higher", "too few", "not observed"]
DRIFTED: tuple[Verdict, ...] = ("lower", "higher")


@dataclass(frozen=True)
class Tolerances:
    """What counts as drift: the interval's z and each quantity's relative tolerance."""

    z: float = 3.29
    acceptance: float = 0.05
    draft_tok_s: float = 0.15
    rtt_s: float = 0.25
    rtt_abs_s: float = 0.005
    verify_step_s: float = 0.20
    min_reports: int = 3

    def __post_init__(self) -> None:
        if not (0 < self.z <= 10 and self.min_reports >= 1):
            raise ValueError("z must lie in (0, 10] and min_reports be at least 1")
        for name in ("acceptance", "draft_tok_s", "rtt_s", "verify_step_s"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"the {name} tolerance must lie in [0, 1)")
        if not 0 <= self.rtt_abs_s <= 60:
            raise ValueError("rtt_abs_s must lie in [0, 60] seconds")

    def to_dict(self) -> dict[str, Any]:
        """The settings, as a report states them."""
        return asdict(self)


@dataclass(frozen=True)
class Observed:
    """What was observed of one configuration over the window (sums, as the store keeps them)."""

    reports: int = 0
    drafts: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0
    sums: Mapping[str, float] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)

    def mean(self, metric: str) -> float | None:
        """The mean reading of `metric`, None without one."""
        n = self.counts.get(metric, 0)
        return self.sums.get(metric, 0.0) / n if n else None


def wilson(successes: int, trials: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval of the proportion successes / trials with sample size `n`."""
    p = successes / trials
    z2 = z * z / n
    centre = (p + z2 / 2) / (1 + z2)
    half = z / (1 + z2) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Check:
    """One quantity of one pool: what the solve used, what was seen, and the verdict."""

    metric: str
    expected: float
    band: tuple[float, float]
    observed: float | None
    interval: tuple[float, float] | None
    n: int
    verdict: Verdict

    @property
    def drifted(self) -> bool:
        """Whether the observation lies outside the band beyond its uncertainty."""
        return self.verdict in DRIFTED

    def to_dict(self) -> dict[str, Any]:
        """The check as reports print it."""
        return {"metric": self.metric, "expected": self.expected, "band": list(self.band),
                "observed": self.observed,
                "interval": list(self.interval) if self.interval else None,
                "n": self.n, "verdict": self.verdict}


@dataclass(frozen=True)
class PoolDrift:
    """One row of the lock's assignment and its checks."""

    device: str
    target: str
    draft: str
    quant: str
    k: int
    count: int
    checks: list[Check]
    note: str | None = None

    @property
    def key(self) -> ConfigKey:
        """(device, target, draft, quant, K)."""
        return (self.device, self.target, self.draft, self.quant, self.k)

    @property
    def status(self) -> Literal["drifted", "ok", "no data"]:
        """drifted: some check is outside its band; ok: some check held and none drifted."""
        if self.note is not None or any(c.drifted for c in self.checks):
            return "drifted"
        return "ok" if any(c.verdict == "ok" for c in self.checks) else "no data"

    def check(self, metric: str) -> Check | None:
        """The check of `metric`, if it was made."""
        return next((c for c in self.checks if c.metric == metric), None)

    def to_dict(self) -> dict[str, Any]:
        """The pool's row as reports print it."""
        return {"device": self.device, "target": self.target, "draft": self.draft,
                "quant": self.quant, "k": self.k, "count": self.count, "status": self.status,
                "note": self.note, "checks": [c.to_dict() for c in self.checks]}


@dataclass
class DriftReport:
    """Every row of the lock checked, and the configurations observed that it does not assign."""

    tolerances: Tolerances
    pools: list[PoolDrift]
    unplanned: list[ConfigKey]
    unknown: list[ConfigKey]
    observed: dict[ConfigKey, Observed]

    @property
    def drifted(self) -> list[str]:
        """Names of the pools with a drifted row, in the lock's order."""
        return list(dict.fromkeys(p.device for p in self.pools if p.status == "drifted"))

    def to_dict(self) -> dict[str, Any]:
        """The report as `GET /v1/drift` and `configspec observe --json` give it."""
        def key(c: ConfigKey) -> dict[str, Any]:
            return dict(zip(("device", "target", "draft", "quant", "k"), c, strict=True))

        return {"drifted": self.drifted, "tolerances": self.tolerances.to_dict(),
                "pools": [p.to_dict() for p in self.pools],
                "unplanned": [key(c) for c in self.unplanned],
                "unknown": [key(c) for c in self.unknown]}


def _band(lo: float, hi: float, rel: float, absolute: float = 0.0) -> tuple[float, float]:
    return max(0.0, lo * (1 - rel) - absolute), hi * (1 + rel) + absolute


def _mean_check(metric: str, expected: float, band: tuple[float, float], seen: Observed,
                tol: Tolerances) -> Check:
    n = seen.counts.get(metric, 0)
    mean = seen.mean(metric)
    if mean is None:
        return Check(metric, expected, band, None, None, 0, "not observed")
    verdict: Verdict = "too few" if n < tol.min_reports else \
        "lower" if mean < band[0] else "higher" if mean > band[1] else "ok"
    return Check(metric, expected, band, mean, None, n, verdict)


def _acceptance_check(alpha: float, ci: tuple[float, float] | None, seen: Observed,
                      tol: Tolerances) -> Check:
    lo, hi = ci if ci is not None else (alpha, alpha)
    band = _band(min(lo, alpha), max(hi, alpha), tol.acceptance)
    band = (band[0], min(1.0, band[1]))
    if seen.draft_tokens <= 0 or seen.drafts <= 0:
        return Check("acceptance", alpha, band, None, None, 0, "not observed")
    p = seen.accepted_tokens / seen.draft_tokens
    interval = wilson(seen.accepted_tokens, seen.draft_tokens, seen.drafts, tol.z)
    verdict: Verdict = "lower" if interval[1] < band[0] else \
        "higher" if interval[0] > band[1] else "ok"
    return Check("acceptance", alpha, band, p, interval, seen.drafts, verdict)


def acceptance_ci(profile: Profile | None, target: str, k: int) -> tuple[float, float] | None:
    """The 95 % interval `configspec profile` recorded for alpha(K) on `target`, if any."""
    per_k = (((profile.provenance or {}).get("acceptance") or {}).get(target) or {}) \
        .get("per_k") if profile is not None else None
    if not isinstance(per_k, dict):
        return None
    entry = per_k.get(k, per_k.get(str(k)))
    ci = entry.get("ci95") if isinstance(entry, dict) else None
    if isinstance(ci, list) and len(ci) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for x in ci):
        return float(min(ci)), float(max(ci))
    return None


def speed_range(profile: Profile | None) -> tuple[float, float] | None:
    """The slowest and fastest repeat of v_d that `configspec profile` recorded, if any."""
    rec = ((profile.provenance or {}).get("draft_tok_s") or {}) if profile is not None else {}
    reps = rec.get("per_repeat_tok_s") if isinstance(rec, dict) else None
    if isinstance(reps, list) and reps and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            and x > 0 for x in reps):
        return float(min(reps)), float(max(reps))
    return None


def expected_step(row: Mapping[str, Any], spec: Spec) -> float | None:
    """T_verify(K) the solve used for this row: the settled latency, else the target's own."""
    settled = row.get("verify_latency_s")
    if isinstance(settled, (int, float)) and not isinstance(settled, bool):
        return float(settled)
    target = next((t for t in spec.targets if t.name == row.get("target")), None)
    return None if target is None else target.verify_latency(int(row["k"]))


def check_lock(lock: Mapping[str, Any], spec: Spec, observed: Mapping[ConfigKey, Observed],
               tol: Tolerances | None = None) -> DriftReport:
    """Check every row of `lock` (its spec: `spec`) against `observed` (module docstring)."""
    tol = tol or Tolerances()
    profiles = {(p.device, p.draft, p.quant): p for p in spec.profiles}
    devices = {d.name: d for d in spec.devices}
    rows: list[PoolDrift] = []
    planned: set[ConfigKey] = set()
    for row in lock.get("assignments") or []:
        key: ConfigKey = (str(row["device"]), str(row["target"]), str(row["draft"]),
                          str(row["quant"]), int(row["k"]))
        planned.add(key)
        seen = observed.get(key, Observed())
        profile = profiles.get((key[0], key[2], key[3]))
        checks = [_acceptance_check(float(row["alpha"]), acceptance_ci(profile, key[1], key[4]),
                                    seen, tol)]
        speed = float(row["draft_tok_s"])
        lo, hi = speed_range(profile) or (speed, speed)
        checks.append(_mean_check("draft_tok_s", speed, _band(min(lo, speed), max(hi, speed),
                                                              tol.draft_tok_s), seen, tol))
        device = devices.get(key[0])
        rtt = device.rtt_s if device is not None else 0.0
        checks.append(_mean_check("rtt_s", rtt, _band(rtt, rtt, tol.rtt_s, tol.rtt_abs_s),
                                  seen, tol))
        step = expected_step(row, spec)
        if step is not None:
            checks.append(_mean_check("verify_step_s", step,
                                      _band(step, step, tol.verify_step_s), seen, tol))
        rows.append(PoolDrift(*key, int(row.get("count", 1)), checks))
    pools = {p.device for p in rows}
    unplanned = sorted(k for k in observed if k not in planned and k[0] in pools)
    unknown = sorted(k for k in observed if k[0] not in pools)
    for k in unplanned:
        assigned = ", ".join(f"{p.draft} {p.quant} K={p.k}" for p in rows if p.device == k[0])
        for i, p in enumerate(rows):
            if p.device == k[0] and p.note is None:
                rows[i] = PoolDrift(*p.key, p.count, p.checks,
                                    note=f"reports {k[2]} {k[3]} K={k[4]} on {k[1]}; the "
                                    f"lock assigns {assigned}")
    return DriftReport(tol, rows, unplanned, unknown, dict(observed))

