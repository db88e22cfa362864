"""Why each pool got its configuration: the runner-up and what blocks better ones.

For every pool we move the whole pool to each other candidate it could run
(all others fixed) and evaluate the fleet exactly.  The runner-up is the
best move that stays feasible, with its loss in objective units; a move
that would *improve* the objective but breaks a constraint names the
constraint that binds.  Pure evaluation: no solver involved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from configspec_opt.candidates import Candidate, slo_violations
from configspec_opt.fleet import fleet_metrics, objective_key, violated_constraints
from configspec_opt.problem import Problem
from configspec_opt.spec import Objective
from configspec_opt.verifiers import replica_cost_usd_per_hour, settle

EPS = 1e-9


@dataclass
class PoolExplanation:
    device: str
    split: bool
    runner_up: dict[str, Any] | None = None
    blocked_by: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "split": self.split, "runner_up": self.runner_up,
                "blocked_by": self.blocked_by}

    def summary(self) -> str:
        parts = []
        if self.runner_up:
            loss = self.runner_up["loss"]
            parts.append(f"runner-up {self.runner_up['config']} " + (
                f"(-{loss:.4g})" if loss >= 0 else
                f"(+{-loss:.4g}: better than this assignment, which is not proven optimal)"))
        if self.blocked_by:
            b = self.blocked_by[0]
            parts.append(f"{b['config']} would gain {b['gain']:.4g} but breaks "
                         + ", ".join(b["constraints"]))
        return "; ".join(parts) or "no alternative"


def _config(c: Candidate) -> dict[str, Any]:
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
    evaluate = _settled_evaluator(problem, objective, replicas or {})
    base_eval = evaluate(assignment)
    if base_eval is None:
        return []
    base = base_eval[0]
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
            got = evaluate([*others, (c, pc.device.count)])
            if got is None:
                continue
            key, trial, broken = got
            mine_now = [t for t, _ in trial if t.pool == pc.index]
            broken = [f"slo.{k}" for k in slo_violations(mine_now[0] if mine_now else c, slo)] \
                + broken
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


Evaluated = tuple[tuple[float, ...], list[tuple[Candidate, int]], list[str]]


def _settled_evaluator(problem: Problem, objective: Objective, replicas: Mapping[str, int]
                       ) -> Callable[[list[tuple[Candidate, int]]], Evaluated | None]:
    """(objective key, the assignment as evaluated, fleet constraints it breaks), or None."""

    def evaluate(assignment: list[tuple[Candidate, int]]) -> Evaluated | None:
        cost = 0.0
        if problem.verifiers:
            out = settle(assignment, problem.verifiers, replicas)
            if out is None:
                return None
            assignment, states = out
            cost = replica_cost_usd_per_hour(states)
        try:
            key = objective_key(fleet_metrics(assignment, cost), objective)
        except ValueError:
            return None
        return key, assignment, violated_constraints(problem, assignment, replicas=replicas)

    return evaluate
