"""Why each pool got its configuration: the runner-up and what blocks better ones.

For every pool we move the whole pool to each other candidate it could run
(all others fixed) and evaluate the fleet exactly.  The runner-up is the
best move that stays feasible, with its loss in objective units; a move
that would *improve* the objective but breaks a constraint names the
constraint that binds.  Pure evaluation: no solver involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from configspec_opt.candidates import Candidate
from configspec_opt.constraint_families import slo_violations
from configspec_opt.fleet import evaluate_settled
from configspec_opt.problem import Problem
from configspec_opt.results import AlternativeJSON, ExplanationJSON, explanation_summary
from configspec_opt.robust import corner_candidates, is_robust
from configspec_opt.spec import Objective

EPS = 1e-9


@dataclass
class PoolExplanation:
    """Why one pool runs what it runs: its runner-up and the better moves a constraint blocks.

    `runner_up` is None when no other candidate keeps the fleet feasible;
    `split` is true when the pool's devices run more than one configuration.
    """

    device: str
    split: bool
    runner_up: AlternativeJSON | None = None
    blocked_by: list[AlternativeJSON] = field(default_factory=list)

    def to_dict(self) -> ExplanationJSON:
        """The explanation as `solve --json` and the HTTP API report it."""
        return {"device": self.device, "split": self.split, "runner_up": self.runner_up,
                "blocked_by": self.blocked_by}

    def summary(self) -> str:
        """One sentence for the text report, worded as for the JSON form."""
        return explanation_summary(self.to_dict())


def _config(c: Candidate) -> AlternativeJSON:
    return {"config": f"{c.draft} {c.quant} K={c.k}", "target": c.target, "draft": c.draft,
            "quant": c.quant, "k": c.k}


def explain(
    problem: Problem, objective: Objective, assignment: list[tuple[Candidate, int]],
    replicas: Mapping[str, int] | None = None,
) -> list[PoolExplanation]:
    """Per pool: the best alternative with the others fixed, and better ones a constraint blocks.

    Under batched verifiers (`replicas` given) a swap moves every device's
    latency, so each alternative is settled at its own load with the same
    replicas before it is compared.
    """
    spec = problem.spec
    replicas = replicas or {}
    # robust: an alternative meets its SLOs only if it does at every corner of the box
    corners = corner_candidates(spec, {pc.device.name for pc in problem.structural}) \
        if is_robust(spec) else {}
    base_eval = evaluate_settled(problem, objective, assignment, replicas)
    if base_eval is None:
        return []
    base = base_eval.key
    out: list[PoolExplanation] = []
    for pc in problem.structural:
        mine = [(c, n) for c, n in assignment if c.pool == pc.index]
        others = [(c, n) for c, n in assignment if c.pool != pc.index]
        used = {c.config for c, _ in mine}
        ex = PoolExplanation(pc.device.name, split=len(mine) > 1)
        slo = spec.slo_for(pc.device)
        best_ok: tuple[tuple[float, ...], Candidate] | None = None
        blocked: list[tuple[float, Candidate, list[str]]] = []
        for c in pc.candidates:
            if c.config in used:
                continue
            got = evaluate_settled(problem, objective, [*others, (c, pc.device.count)],
                                   replicas)
            if got is None:
                continue
            key = got.key
            mine_now = [t for t, _ in got.assignment if t.pool == pc.index]
            own = mine_now[0] if mine_now else c
            missed = dict.fromkeys(k for x in (own, *corners.get((c.device, c.config), ()))
                                   for k in slo_violations(x, slo))
            broken = [f"slo.{k}" for k in missed] + got.broken
            if broken:
                if key > tuple(b + EPS * max(1.0, abs(b)) for b in base):
                    blocked.append((key[0] - base[0], c, broken))
            elif best_ok is None or key > best_ok[0]:
                best_ok = (key, c)
        if best_ok is not None:
            ex.runner_up = {**_config(best_ok[1]), "loss": base[0] - best_ok[0][0]}
        blocked.sort(key=lambda t: -t[0])
        ex.blocked_by = [{**_config(c), "gain": g, "constraints": b}
                         for g, c, b in blocked[:3]]
        out.append(ex)
    return out

