"""Reference optimiser for the tests: enumerate every assignment of a small fleet."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

from configspec_opt.candidates import Candidate
from configspec_opt.fleet import fleet_metrics, objective_key, violated_constraints
from configspec_opt.problem import build_problem
from configspec_opt.spec import Objective, Spec


def compositions(cands: Sequence[Candidate], n: int) -> Iterator[list[tuple[Candidate, int]]]:
    """Every way to run n identical devices on the candidates (a pool may be split)."""
    for combo in itertools.combinations_with_replacement(range(len(cands)), n):
        counts: dict[int, int] = {}
        for i in combo:
            counts[i] = counts.get(i, 0) + 1
        yield [(cands[i], k) for i, k in counts.items()]


def assignment_count(spec: Spec, objective: Objective | None = None) -> int:
    """How many assignments `brute_force` would enumerate (before the rows)."""
    problem = build_problem(spec, objective=objective or spec.objective, prune=False)
    return math.prod(math.comb(len(idx) + pool.count - 1, pool.count)
                     for idx, pool in zip(problem.by_pool, problem.pools, strict=True))


def brute_force(spec: Spec, objective: Objective | None = None, rel_tol: float = 1e-6,
                ) -> tuple[tuple[float, ...], list[tuple[Candidate, int]]] | None:
    """Best objective key over all feasible assignments (None when infeasible).

    `rel_tol` is how far a constraint may be missed (relative) and still count
    as met; the MILP's answer lies between the brute-force optima at a tolerance
    below HiGHS's (1e-6) and one above it.
    """
    objective = objective or spec.objective
    problem = build_problem(spec, objective=objective, prune=False)
    per_pool = [[problem.candidates[i] for i in idx] for idx in problem.by_pool]
    if any(not c for c in per_pool):
        return None
    feasible: list[tuple[tuple[float, ...], list[tuple[Candidate, int]]]] = []
    for parts in itertools.product(*[
            list(compositions(cands, problem.pools[d].count))
            for d, cands in enumerate(per_pool)]):
        assignment = [x for part in parts for x in part]
        if violated_constraints(problem, assignment, rel_tol):
            continue
        feasible.append((objective_key(fleet_metrics(assignment), objective), assignment))
    if not feasible:
        return None
    # Lexicographic with tolerances: stage i keeps what is within tolerance of its best.
    tolerances = [t.tolerance for t in objective.terms()] if objective.mode == \
        "lexicographic" else [0.0]
    stage_best: list[float] = []
    for i, tol in enumerate(tolerances):
        top = max(k[i] for k, _ in feasible)
        stage_best.append(top)
        slack = max(tol * abs(top), 1e-9 * max(1.0, abs(top)))
        feasible = [(k, a) for k, a in feasible if k[i] >= top - slack]
    return tuple(stage_best), max(feasible, key=lambda t: t[0])[1]
