"""Each figure kind rendered to PNG and SVG, opened, and checked for what it must show."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from configspec_opt.loader import load_spec
from configspec_opt.plots.data import PAPER_FIGURE, Kind, PlotData, collect
from configspec_opt.plots.draw import DPI, nice_levels, pareto_front, render
from configspec_opt.spec import Objective
from tests.cli_helpers import PAPER_DIR, Run

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def paper_data() -> PlotData:
    spec = load_spec(PAPER_DIR / "llama70b.yaml").spec
    return collect(spec, [None, Objective.model_validate({"minimize": "energy"})])


def _svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()
    return " ".join(t.text or "" for t in root.iter(f"{SVG}text"))


@pytest.mark.parametrize("kind", [k for k in Kind if k is not Kind.front])
def test_every_kind_renders_to_png_and_svg(paper_data: PlotData, kind: Kind,
                                           tmp_path: Path) -> None:
    png, svg = tmp_path / f"{kind.value}.png", tmp_path / f"{kind.value}.svg"
    done = render(paper_data, kind, [png, svg], k=5 if kind in (Kind.cost,) else None)
    image = matplotlib.image.imread(png)
    height, width = image.shape[:2]
    assert (width, height) == done.size_px
    assert width >= 1200 and height >= 600  # readable, not a thumbnail
    pixels = image[..., :3].reshape(-1, 3)
    inked = np.any(pixels < 0.9, axis=1).mean()
    assert 0.02 < inked < 0.6, inked  # drawn on, not a blank or a solid block
    packed = (pixels * 255).astype(np.int64) @ np.array([65536, 256, 1])
    assert len(np.unique(packed)) > 20  # colours, text and lines, not a flat fill

    root = ET.parse(svg).getroot()
    assert root.get("width") == f"{width / DPI * 72:g}pt"
    text = _svg_text(svg)
    assert "paper-llama70b" in text
    assert "chosen for maximize goodput" in text
    unit = {Kind.cost: "tok/$", Kind.energy: "J/tok", Kind.pareto: "J/tok"}.get(kind, "tok/s")
    assert unit in text


def test_energy_shows_na_for_a_device_without_power(paper_data: PlotData,
                                                    tmp_path: Path) -> None:
    svg = tmp_path / "energy.svg"
    render(paper_data, Kind.energy, [svg])
    text = _svg_text(svg)
    assert text.count("n/a") >= 3  # two bar slots and the legend entry for rpi4
    assert "rpi4 (no power data: n/a)" in text


def test_pareto_shows_iso_power_lines_and_leaves_out_devices_without_power(
        paper_data: PlotData, tmp_path: Path) -> None:
    svg = tmp_path / "pareto.svg"
    render(paper_data, Kind.pareto, [svg], iso_power=[2, 5, 10])
    text = _svg_text(svg)
    for label in ("2 W", "5 W", "10 W", "iso-power E = P/G"):
        assert label in text
    assert "not shown (no power data): rpi4" in text


def test_the_chosen_points_are_the_solver_assignment(paper_data: PlotData) -> None:
    goodput, energy = paper_data.choices
    assert {(c.device, c.k) for c in goodput.candidates} == {
        ("rpi4", 2), ("rpi5", 6), ("jetson-orin", 8)}
    assert {(c.device, c.k) for c in energy.candidates} == {("rpi5", 2), ("jetson-orin", 2)}
    assert "rpi4" in energy.note


def test_pareto_front_is_non_dominated(paper_data: PlotData) -> None:
    pts = [c for c in paper_data.candidates if c.energy_j_per_tok is not None]
    front = pareto_front(pts)
    assert front
    for a in front:
        assert a.energy_j_per_tok is not None
        assert not any(b.goodput_tok_s >= a.goodput_tok_s
                       and (b.energy_j_per_tok or 0) < a.energy_j_per_tok for b in pts)


def test_nice_levels_are_one_two_five_steps_inside_the_range() -> None:
    assert nice_levels(1.3, 25.0) == [2.0, 5.0, 10.0, 20.0]
    assert nice_levels(0.0, 3.0) == [3.0]
    assert len(nice_levels(0.001, 1000.0)) <= 5


def test_plot_cli_writes_both_formats_and_rejects_bad_input(
        cli: Callable[..., Run], tmp_path: Path) -> None:
    png, svg = tmp_path / "f.png", tmp_path / "f.svg"
    ok = cli("plot", PAPER_DIR / "qwen32b.yaml", "--kind", "goodput", "--at-k", "5",
             "-o", png, "-o", svg, "--objective", "max:cost_efficiency")
    assert ok.exit_code == 0, ok.stderr
    assert png.stat().st_size > 10_000 and svg.stat().st_size > 10_000
    assert "chosen for maximize cost_efficiency" in _svg_text(svg)

    assert cli("plot", PAPER_DIR / "qwen32b.yaml", "--kind", "pie").exit_code == 2
    bad_ext = cli("plot", PAPER_DIR / "qwen32b.yaml", "--kind", "cost", "-o", tmp_path / "f.gif")
    assert bad_ext.exit_code == 2 and "unknown image format" in bad_ext.stderr
    bad_k = cli("plot", PAPER_DIR / "qwen32b.yaml", "--kind", "cost", "--at-k", "40",
                "-o", png)
    assert bad_k.exit_code == 2 and "outside the spec's search range" in bad_k.stderr


def test_the_paper_figures_are_committed() -> None:
    figures = PAPER_DIR / "figures"
    for kind, number in PAPER_FIGURE.items():
        for spec in ("llama70b", "qwen32b"):
            for ext in ("png", "svg"):
                path = figures / f"fig{number}-{kind.value}-{spec}.{ext}"
                assert path.stat().st_size > 10_000, path


def test_the_fleet_front_is_plotted_as_configspec_pareto_computes_it(
        cli: Callable[..., Run], tmp_path: Path) -> None:
    svg = tmp_path / "front.svg"
    ok = cli("plot", PAPER_DIR / "qwen32b.yaml", "--kind", "front", "--x", "goodput", "--y",
             "cost", "--points", "6", "-o", svg)
    assert ok.exit_code == 0, ok.stderr
    text = _svg_text(svg)
    assert "fleet Pareto front" in text and "tok/s" in text and "$/h" in text
    assert "higher is better" in text and "lower is better" in text
    same = cli("plot", PAPER_DIR / "qwen32b.yaml", "--kind", "front", "--x", "goodput", "--y",
               "goodput", "-o", svg)
    assert same.exit_code == 2
