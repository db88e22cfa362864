"""A diagnosis's fix, taken less far: the check that the named fix is the smallest."""

from __future__ import annotations

from dataclasses import replace

from configspec_opt.spec import Spec
from solvers.diagnose import Diagnosis, Relaxation, relaxed_spec


def shrunk(spec: Spec, diag: Diagnosis, factor: float) -> Spec:
    """Every relaxation `factor` of the way; an integer limit one step less (a fraction of
    the way would round back to the named fix: 1 -> 2 shrunk by 2 % is 1.98, i.e. 2)."""
    def less(r: Relaxation) -> float:
        if r.integer:
            return r.relax_to - (1.0 if r.relax_to > r.limit else -1.0)
        return r.limit + (r.relax_to - r.limit) * factor
    return relaxed_spec(spec, Diagnosis(relaxations=[
        replace(r, relax_to=less(r)) for r in diag.relaxations]))
