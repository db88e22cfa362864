"""Regenerate the ConfigSpec paper's Figs. 2-6 from the specs in examples/paper/.

    python examples/paper/figures/make.py          # writes figN-KIND-SPEC.{png,svg} here

Every figure marks the solver's choice for the three objectives of the
paper's Table 2 (max goodput, max cost efficiency, min energy), so the
figures and the table can be read together.  Figs. 3-5 fix K = 5 as
sections 4.1-4.3 of the paper do; Figs. 2 and 6 show every K.  Equivalent
CLI, for one figure:

    configspec plot examples/paper/llama70b.yaml --kind pareto \\
        -o max:goodput -o max:cost_efficiency -o min:energy \\
        -O fig6-pareto-llama70b.png -O fig6-pareto-llama70b.svg
"""

from __future__ import annotations

from pathlib import Path

from configspec_opt.loader import load_spec
from configspec_opt.operations import parse_term
from configspec_opt.plots.data import PAPER_FIGURE, Kind, collect
from configspec_opt.plots.draw import render
from configspec_opt.spec import Objective

HERE = Path(__file__).parent
SPECS = ("llama70b", "qwen32b")
OBJECTIVES = ("max:goodput", "max:cost_efficiency", "min:energy")  # Table 2's rows
PAPER_K = {Kind.goodput: 5, Kind.cost: 5, Kind.energy: 5}  # sections 4.1-4.3 fix K = 5


def main() -> None:
    objectives: list[Objective | None] = []
    for text in OBJECTIVES:
        term = parse_term(text)
        objectives.append(Objective.model_validate({term.sense: term.metric}))
    for name in SPECS:
        data = collect(load_spec(HERE.parent / f"{name}.yaml").spec, objectives)
        for kind in Kind:
            stem = HERE / f"fig{PAPER_FIGURE[kind]}-{kind.value}-{name}"
            done = render(data, kind, [stem.with_suffix(".png"), stem.with_suffix(".svg")],
                          k=PAPER_K.get(kind))
            shown = stem.relative_to(Path.cwd()) if stem.is_relative_to(Path.cwd()) else stem
            print(f"wrote {shown}.png and .svg ({done.size_px[0]}x{done.size_px[1]} px)")


if __name__ == "__main__":
    main()
