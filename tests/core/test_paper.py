"""The paper's Table 2, reproduced by solving the specs of examples/paper/."""

from __future__ import annotations

from pathlib import Path

import pytest

from configspec_opt.loader import load_spec
from configspec_opt.spec import Objective
from solvers.solve import solve
from solvers.status import Status

PAPER = Path(__file__).resolve().parents[2] / "examples" / "paper"

# (spec, device, objective) -> (draft, K, G tok/s, eta K tok/$, E J/tok or None)
TABLE2 = {
    ("llama70b", "rpi4", "goodput"): ("llama-3.2-1b-instruct", 2, 2.44, 1334, None),
    ("llama70b", "rpi4", "cost_efficiency"): ("llama-3.1-8b-instruct", 2, 0.77, 1401, None),
    ("llama70b", "rpi5", "goodput"): ("llama-3.2-1b-instruct", 6, 4.50, 763, 0.84),
    ("llama70b", "rpi5", "cost_efficiency"): ("llama-3.1-8b-instruct", 2, 1.55, 1401, 3.75),
    ("llama70b", "rpi5", "energy"): ("llama-3.2-1b-instruct", 2, 3.76, 1334, 0.48),
    ("llama70b", "jetson-orin", "goodput"): ("llama-3.2-1b-instruct", 8, 7.65, 623, 0.85),
    ("llama70b", "jetson-orin", "cost_efficiency"): ("llama-3.1-8b-instruct", 2, 4.35, 1401,
                                                      1.74),
    ("llama70b", "jetson-orin", "energy"): ("llama-3.2-1b-instruct", 2, 4.60, 1334, 0.39),
    ("qwen32b", "rpi4", "goodput"): ("qwen3-0.6b", 2, 2.81, 1801, None),
    ("qwen32b", "rpi4", "cost_efficiency"): ("qwen3-8b", 2, 0.74, 2048, None),
    ("qwen32b", "rpi5", "goodput"): ("qwen3-0.6b", 7, 3.86, 828, 0.90),
    ("qwen32b", "rpi5", "cost_efficiency"): ("qwen3-8b", 2, 1.49, 2048, 3.86),
    ("qwen32b", "rpi5", "energy"): ("qwen3-0.6b", 2, 3.48, 1801, 0.41),
    ("qwen32b", "jetson-orin", "goodput"): ("qwen3-0.6b", 10, 6.21, 633, 0.93),
    ("qwen32b", "jetson-orin", "cost_efficiency"): ("qwen3-8b", 2, 4.14, 2048, 1.88),
    ("qwen32b", "jetson-orin", "energy"): ("qwen3-0.6b", 2, 4.08, 1801, 0.33),
}
SENSE = {"goodput": "maximize", "cost_efficiency": "maximize", "energy": "minimize"}


@pytest.mark.parametrize("case", sorted(TABLE2), ids=lambda c: "-".join(c))
def test_table2_row(case: tuple[str, str, str]) -> None:
    spec_name, device, metric = case
    draft, k, g, eta_k, energy = TABLE2[case]
    spec = load_spec(PAPER / f"{spec_name}.yaml").spec
    sol = solve(spec, objective=Objective.model_validate({SENSE[metric]: metric}), only={device})
    assert sol.status is Status.optimal
    [(c, n)] = sol.assignment
    assert (c.draft, c.quant, c.k, n) == (draft, "Q4_K_M", k, 1)
    # "within rounding": one unit of the last digit the paper prints
    assert c.goodput_tok_s == pytest.approx(g, abs=0.01)
    assert c.cost_efficiency_tok_per_usd / 1e3 == pytest.approx(eta_k, abs=1.0)
    if energy is None:
        assert c.energy_j_per_tok is None
    else:
        assert c.energy_j_per_tok == pytest.approx(energy, abs=0.01)


def test_rpi4_energy_is_not_available_not_zero() -> None:
    spec = load_spec(PAPER / "llama70b.yaml").spec
    sol = solve(spec, only={"rpi4"})
    assert all(c.energy_j_per_tok is None for c, _ in sol.assignment)
    assert sol.fleet is not None and sol.fleet.energy_j_per_tok is None
