"""Trial runs: real speculative decoding per K, held against the model's prediction.

For each K every prompt is decoded speculatively (draft here, target local
or remote); measured goodput is emitted tokens over the summed wall time
of the rounds (prompt prefill excluded, as in Eq. 1), and each round is
split into drafting, verification and overhead (everything else: Python,
rollback, bookkeeping).  The prediction is Eq. 1 with the spec profile's
alpha(K) and v_d and the T_verify measured in this very trial, so the error
isolates what the model itself leaves out.  An "extended" prediction adds
the terms found missing, each measured, never fitted to the goodput:
the draft's extra step after a fully accepted round (rate from the
profile's single pass), Python's per-step cost (the profile's wall-clock
v_d) and the per-round overhead measured in the trial (its median over K).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from configspec_opt import metrics
from configspec_opt.spec import Profile, alpha_at
from profiler.engine import Engine
from profiler.power import PowerSampler, PowerSource
from profiler.speculative import SpecResult, generate, generate_remote, plain_greedy_timed
from profiler.targets import RemoteTarget, Sampling


@dataclass
class Measured:
    """Sums over the speculative runs of one K: tokens, rounds, acceptance and time split (s).

    `energy_j` is the drafting energy (mean power x drafting time, as Eq. 3),
    None without a power source.
    """

    tokens: int = 0
    rounds: int = 0
    accepted: int = 0
    drafted: int = 0
    full_rounds: int = 0
    draft_s: float = 0.0
    verify_s: float = 0.0
    round_s: float = 0.0
    draft_steps: int = 0
    energy_j: float | None = None

    def add(self, res: SpecResult) -> None:
        """Add one prompt's speculative run."""
        self.tokens += len(res.tokens)
        self.rounds += len(res.rounds)
        self.accepted += sum(r.accepted for r in res.rounds)
        self.drafted += res.k * len(res.rounds)
        self.full_rounds += sum(1 for r in res.rounds if r.accepted == res.k)
        self.draft_s += sum(r.draft_s for r in res.rounds)
        self.verify_s += sum(r.verify_s for r in res.rounds)
        self.round_s += sum(r.total_s for r in res.rounds)
        self.draft_steps += res.draft_steps

    @property
    def goodput(self) -> float:
        """Emitted tokens per second of round time (prompt prefill excluded, as in Eq. 1)."""
        return self.tokens / self.round_s if self.round_s else 0.0

    @property
    def alpha(self) -> float:
        """Accepted / drafted tokens over every round."""
        return self.accepted / self.drafted if self.drafted else 0.0

    def per_round(self, seconds: float) -> float:
        """`seconds` averaged over the rounds (0 when there were none)."""
        return seconds / self.rounds if self.rounds else 0.0

    @property
    def overhead_s(self) -> float:
        """Round time that is neither drafting nor verification: Python, rollback, bookkeeping."""
        return self.round_s - self.draft_s - self.verify_s


@dataclass
class KResult:
    """One K of a trial: what was measured, what the model predicted, and whether it was lossless.

    `lossless` (greedy runs only; None otherwise) is false when speculative
    output differs from plain greedy decoding; `divergence` says where.
    """

    k: int
    measured: Measured
    lossless: bool | None
    divergence: list[str] = field(default_factory=list)
    predicted: dict[str, float | None] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The result as the trial report keeps it: per-round means, prediction and errors."""
        m = self.measured
        meas = {
            "goodput_tok_s": round(m.goodput, 3),
            "alpha": round(m.alpha, 4),
            "mean_acceptance_length": round(1 + m.accepted / m.rounds, 3) if m.rounds else None,
            "round_s": round(m.per_round(m.round_s), 9),
            "draft_s": round(m.per_round(m.draft_s), 9),
            "verify_s": round(m.per_round(m.verify_s), 9),
            "overhead_s": round(m.per_round(m.overhead_s), 9),
            "full_accept_rate": round(m.full_rounds / m.rounds, 4) if m.rounds else None,
            "tokens": m.tokens, "rounds": m.rounds,
            "energy_j_per_tok": (round(m.energy_j / m.tokens, 6)
                                 if m.energy_j is not None and m.tokens else None),
        }
        pred = {k: (round(v, 6) if v is not None else None) for k, v in self.predicted.items()}
        return {"k": self.k, "measured": meas, "predicted": pred, "error": self.errors(meas),
                "lossless": self.lossless, "divergence": self.divergence}

    def errors(self, meas: dict[str, Any]) -> dict[str, float | None]:
        """Relative error (predicted - measured) / measured of each predicted quantity."""
        pairs = {"goodput": ("goodput_tok_s", "goodput_tok_s"),
                 "goodput_extended": ("goodput_extended_tok_s", "goodput_tok_s"),
                 "alpha": ("alpha", "alpha"), "round": ("round_s", "round_s"),
                 "energy": ("energy_j_per_tok", "energy_j_per_tok")}
        out: dict[str, float | None] = {}
        for name, (p, m) in pairs.items():
            pv, mv = self.predicted.get(p), meas.get(m)
            out[name] = round((pv - mv) / mv, 4) if pv is not None and mv else None
        return out


@dataclass(frozen=True)
class TrialSetup:
    """What every K of a trial runs: the prompts (already rendered), output length, sampling."""

    ks: list[int]
    prompts: list[str]  # rendered prompt texts
    max_new_tokens: int
    sampling: Sampling
    rtt_s: float = 0.0


def predict(profile: Profile | None, target: str, k: int, t_verify: float, rtt_s: float,
            overhead_s: float | None, output_tokens: float | None = None
            ) -> dict[str, float | None]:
    """Eq. 1-3 from the profile with the measured T_verify, plus the extended model.

    Extended: drafting takes (K + f_K) steps at the wall-clock v_d (f_K: rounds
    that accepted all K, after which the draft owes d_K a step), the round adds
    the measured overhead, and a request of n output tokens throws away on
    average half a round's drafted surplus, K*alpha/2 tokens, at its end.
    """
    if profile is None or target not in profile.acceptance:
        return {"alpha": None, "goodput_tok_s": None, "goodput_extended_tok_s": None,
                "round_s": None, "energy_j_per_tok": None}
    alpha = alpha_at(profile.acceptance[target], k)
    if alpha is None:
        return {"alpha": None, "goodput_tok_s": None, "goodput_extended_tok_s": None,
                "round_s": None, "energy_j_per_tok": None}
    v_d = profile.draft_tok_s
    r = metrics.round_time_s(k, v_d, t_verify, rtt_s)
    prov = profile.provenance or {}
    v_wall = (prov.get("draft_tok_s") or {}).get("wall_median_tok_s") or v_d
    per_k = ((prov.get("acceptance") or {}).get(target) or {}).get("per_k") or {}
    full = float((per_k.get(k) or per_k.get(str(k)) or {}).get("full_accept_rate") or 0.0)
    r_ext = (k + full) / v_wall + t_verify + rtt_s + (overhead_s or 0.0)
    kept = output_tokens / (output_tokens + k * alpha / 2) if output_tokens else 1.0
    power = profile.power_w
    return {
        "alpha": alpha,
        "goodput_tok_s": metrics.goodput_tok_s(k, alpha, r),
        "goodput_extended_tok_s": metrics.goodput_tok_s(k, alpha, r_ext) * kept,
        "round_s": r,
        "energy_j_per_tok": None if power is None else metrics.energy_j_per_tok(power, k, v_d,
                                                                               alpha),
    }


def run_local(draft: Engine, target: Engine, setup: TrialSetup,
              power: PowerSource | None = None) -> tuple[list[KResult], dict[str, Any]]:
    """Speculative decoding with a local target at every K, checked against plain decoding."""
    prompts = [target.tokenize(p) for p in setup.prompts]
    timed = [plain_greedy_timed(target, p, setup.max_new_tokens) for p in prompts]
    reference = [t for t, _ in timed]
    plain_s = sum(s for _, s in timed)
    info: dict[str, Any] = {"kind": "local", "gguf": target.path.name,
                            "plain_target_tok_s": round(sum(map(len, reference)) / plain_s, 3)}
    check = setup.sampling.greedy
    results = []
    for k in setup.ks:
        m = Measured()
        lossless: bool | None = True if check else None
        divergence: list[str] = []
        sampler = PowerSampler(power) if power is not None else None
        if sampler is not None:
            sampler.__enter__()
        try:
            for i, p in enumerate(prompts):
                res = generate(draft, target, p, k, setup.max_new_tokens, setup.sampling)
                m.add(res)
                if check and res.tokens != reference[i]:
                    lossless = False
                    divergence.append(_first_divergence(i, res.tokens, reference[i]))
        finally:
            if sampler is not None:
                sampler.__exit__(None, None, None)
        if sampler is not None and sampler.summary is not None:
            m.energy_j = sampler.summary.mean_w * m.draft_s  # drafting energy, as Eq. 3
        results.append(KResult(k, m, lossless, divergence))
    return results, info


def run_remote(draft: Engine, remote: RemoteTarget, setup: TrialSetup
               ) -> tuple[list[KResult], dict[str, Any]]:
    """Speculative decoding verified by an endpoint; lossless checked on the text."""
    reference = [remote.complete(p, max_tokens=setup.max_new_tokens)[0]["text"]
                 for p in setup.prompts]
    results = []
    for k in setup.ks:
        m = Measured()
        lossless = True
        divergence: list[str] = []
        for i, p in enumerate(setup.prompts):
            res = generate_remote(draft, remote, p, k, setup.max_new_tokens)
            m.add(res)
            text = res.text or ""
            n = min(len(text), len(reference[i]))
            if text[:n] != reference[i][:n]:
                lossless = False
                at = next(j for j in range(n) if text[j] != reference[i][j])
                divergence.append(f"prompt {i}: text differs at character {at}")
        results.append(KResult(k, m, lossless, divergence))
    return results, {"kind": "remote", "endpoint": remote.base_url}


def _first_divergence(i: int, got: list[int], want: list[int]) -> str:
    at = next((j for j, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
              min(len(got), len(want)))
    return f"prompt {i}: token {at} differs (speculative {got[at:at + 1]}, plain {want[at:at + 1]})"


def attach_predictions(results: list[KResult], profile: Profile | None, target: str,
                       rtt_s: float, requests: int) -> None:
    """Predictions with each K's measured T_verify, the trial's median round overhead and
    the mean output length of the plain target's answers (the workload, not the result)."""
    overheads = [r.measured.per_round(r.measured.overhead_s) for r in results if r.measured.rounds]
    overhead = statistics.median(overheads) if overheads else None
    for r in results:
        t_verify = r.measured.per_round(r.measured.verify_s)
        n = r.measured.tokens / requests if requests else None
        r.predicted = predict(profile, target, r.k, t_verify, rtt_s, overhead, n)


def fit_verify(results: list[KResult]) -> dict[str, float]:
    """T_verify(K) = a + b*K from the trial: the spec's verify_latency_s and _per_token_s."""
    from profiler.verify_latency import fit_line

    pts = [(r.k, r.measured.per_round(r.measured.verify_s)) for r in results if r.measured.rounds]
    a, b = fit_line([k for k, _ in pts], [s for _, s in pts])
    return {"verify_latency_s": round(a, 6), "verify_latency_per_token_s": round(b, 7)}
