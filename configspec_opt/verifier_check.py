"""An answer's batched verifiers played forward step by step: the mean-value model checked.

Why: the optimiser settles every batched verifier with the mean-value model of
`verifier_load` (a request waits half a step, then runs in a step of the mean size).
Against a real llama-server the fleet trial found that model within 10 % at 82 of 96
points and the step simulation of `verifier_sim` at 92 (docs/trial.md): devices whose
drafting time varies little fall into cohorts that alternate on the server, and the model
cannot see the split (pessimistic on a step cost concave in n, optimistic where the step
is flat and drafting shorter than half a step).  So a person about to ship an answer can
ask for the simulation of exactly that answer: the same devices (K, drafting time, the rest
of the round, tokens per round) on the same table, replicas and slots.

What the simulation assumes beyond the spec, and says so in its result: drafting time per
round drawn uniformly within +-`jitter` of K/v_d (the spec has no measured spread; the
trial's devices drew +-20 %), a step mixing several K lasting the mean of its members'
T(n, K), device i on replica i mod replicas, and `seeds` start phases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from configspec_opt.candidates import Candidate
from configspec_opt.verifier_load import b_limit
from configspec_opt.verifier_sim import SimDevice, simulate
from configspec_opt.verifiers import VerifierPlan, VerifierState

# Simulated rounds per device: enough cycles for cohorts to form, bounded in total.
MIN_ROUNDS = 20
MAX_ROUNDS = 100
ROUND_BUDGET = 100_000  # devices x rounds per seed


@dataclass(frozen=True)
class SimulatedVerifier:
    """One batched verifier of an answer, simulated: goodput of the devices it serves.

    Goodput figures are the sum over the target's devices (tok/s): `model` as the answer
    reports it (the mean-value model at the settled load), `simulated` the mean over the
    seeds, `low`/`high` the least and greatest seed (how much the start decides).
    """

    target: str
    devices: int
    model_goodput_tok_s: float
    simulated_goodput_tok_s: float
    low_tok_s: float
    high_tok_s: float
    mean_step: float  # requests in the step a request runs in, averaged over requests
    jitter: float
    seeds: int
    rounds: int

    @property
    def model_error(self) -> float:
        """(model - simulated) / simulated: how far the answer's figure is from the simulation."""
        return (self.model_goodput_tok_s - self.simulated_goodput_tok_s) \
            / self.simulated_goodput_tok_s


def sim_devices(riders: Sequence[tuple[Candidate, int]], jitter: float,
                rounds: int) -> list[SimDevice]:
    """The simulated devices of one verifier: each candidate's round, `n` times."""
    out = []
    for c, n in riders:
        drafting = c.k / c.draft_tok_s
        tokens = c.goodput_tok_s * c.round_time_s  # expected tokens emitted per round
        rest = max(0.0, c.busy_s - drafting)  # catch-up, rtt and overhead: not jittered
        out.extend([SimDevice(c.k, drafting, rounds, rounds * tokens, 0.0, rest,
                              jitter)] * n)
    return out


def simulate_verifiers(assignment: Sequence[tuple[Candidate, int]],
                       plans: Sequence[VerifierPlan], states: Sequence[VerifierState],
                       jitter: float = 0.2, seeds: int = 16) -> list[SimulatedVerifier]:
    """Every batched verifier of a settled answer, simulated (see the module doc).

    `assignment` is the settled one (its candidates carry the latency at the fixed point).
    """
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter:g}")
    if seeds < 1:
        raise ValueError("seeds must be at least 1")
    by_target = {p.target: p for p in plans}
    out = []
    for st in states:
        plan = by_target[st.target]
        riders = [(c, n) for c, n in assignment if c.target == st.target and n > 0]
        devices = sum(n for _, n in riders)
        if devices == 0:
            continue
        rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, ROUND_BUDGET // devices))
        table = plan.verifier.latency_s
        res = simulate(table, sim_devices(riders, jitter, rounds),
                       slots=int(b_limit(table, plan.verifier.max_batch)),
                       seeds=seeds, replicas=max(st.replicas, 1))
        per_seed = [sum(r.goodput) for r in res.runs]
        steps = [r.request_weighted_step for r in res.runs]
        model = sum(c.goodput_tok_s * n for c, n in riders)
        out.append(SimulatedVerifier(
            st.target, devices, model, sum(per_seed) / len(per_seed), min(per_seed),
            max(per_seed), sum(steps) / len(steps), jitter, seeds, rounds))
    return out
