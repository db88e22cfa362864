"""Drawing the figures with matplotlib (Agg for PNG, its SVG backend for SVG).

Figures are built on `matplotlib.figure.Figure` directly, never pyplot: no
global state, no GUI backend, safe in a server thread.  Sizes are fixed
(`constrained` layout, no tight bounding box), so a figure's pixel size is
known before it is drawn; SVGs carry no date and a fixed id salt, so
regenerating an unchanged figure gives the same file.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from configspec_opt.candidates import Candidate
from configspec_opt.errors import UsageError
from configspec_opt.files import write_output
from configspec_opt.plots.data import (
    BAR_AXIS,
    ENERGY,
    GOODPUT,
    Axis,
    Kind,
    PlotData,
    Variant,
    check_k,
)
from configspec_opt.results import ParetoJSON

DPI = 150
FORMATS = (".png", ".svg")
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h")
CHOICE_MARKERS = ("*", "D", "P", "X")
MERGED_COLOUR = "#9AA5B1"
STYLE: dict[Any, Any] = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.3, "svg.hashsalt": "configspec", "svg.fonttype": "none",
}


@dataclass(frozen=True)
class Rendered:
    """The files one figure was saved to, and the PNG's size in pixels."""

    paths: list[Path]
    size_px: tuple[int, int]  # of the PNG


def render(data: PlotData, kind: Kind, outputs: Sequence[Path], *, k: int | None = None,
           iso_power: Sequence[float] | None = None) -> Rendered:
    """Draw one figure and save it to every output (format from the extension)."""
    for p in outputs:
        if p.suffix.lower() not in FORMATS:
            raise UsageError(f"{p}: unknown image format (use .png or .svg)")
    check_k(data, k)
    with matplotlib.rc_context(STYLE):
        if kind is Kind.goodput_k:
            fig = goodput_vs_k(data)
        elif kind is Kind.pareto:
            fig = speed_energy(data, iso_power)
        else:
            fig = bars(data, BAR_AXIS[kind], k)
        _save(fig, outputs)
    w, h = fig.get_size_inches()
    return Rendered(list(outputs), (round(w * DPI), round(h * DPI)))


def _save(fig: Figure, outputs: Sequence[Path]) -> None:
    """Each output rendered in memory, then written by the one writer (atomic, the umask's
    mode, through symlinks; an unwritable path is an OutputError, exit 4)."""
    FigureCanvasAgg(fig)
    for p in outputs:
        buf = io.BytesIO()
        fig.savefig(buf, format=p.suffix.lower()[1:], dpi=DPI, metadata=_metadata(p))
        write_output(p, buf.getvalue())


def _metadata(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".svg":
        return {"Date": None, "Creator": "configspec"}
    return {"Software": "configspec"}


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _colours(keys: Iterable[str]) -> dict[str, str]:
    return {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(keys)}


def _choice_handles(data: PlotData) -> list[Line2D]:
    handles = []
    for i, choice in enumerate(data.choices):
        label = f"chosen for {choice.label}"
        if choice.note:
            label += f" ({choice.note})"
        handles.append(Line2D([], [], ls="none", marker=CHOICE_MARKERS[i % 4], ms=12,
                              mfc="white", mec="black", mew=1.4, label=label))
    return handles


def _legend_rows(fig: Figure, rows: Sequence[Sequence[Any]]) -> None:
    """A legend below the plot with one row per group (matplotlib fills by column)."""
    rows = [r for r in rows if r]
    ncols = max(len(r) for r in rows)
    blank = Line2D([], [], ls="none", label=" ")
    grid = [list(r) + [blank] * (ncols - len(r)) for r in rows]
    handles = [grid[r][c] for c in range(ncols) for r in range(len(grid))]
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)


def _mark(ax: Axes, x: float, y: float, i: int, colour: str, text: str | None) -> None:
    ax.plot([x], [y], ls="none", marker=CHOICE_MARKERS[i % 4], ms=15 if i == 0 else 10,
            mfc=colour, mec="black", mew=1.3, zorder=6)
    if text:  # odd choices label below-right, so two marks on one spot stay readable
        ax.annotate(text, (x, y), xytext=(7, 5 if i % 2 == 0 else -13),
                    textcoords="offset points", fontsize=8, fontweight="bold", zorder=7)


def _title(where: Figure | Axes, what: str, data: PlotData, extra: str = "") -> None:
    """Over the whole figure (panels) or over the plot (a legend beside it)."""
    text = f"{what}: {data.name}" + (f"\n{extra}" if extra else "")
    if isinstance(where, Figure):
        where.suptitle(text, fontsize=12)
    else:
        where.set_title(text, fontsize=12)


# --- Fig. 2 ----------------------------------------------------------------


def goodput_vs_k(data: PlotData) -> Figure:
    """Goodput over K, one panel per device, one line per draft variant; K* circled."""
    n = len(data.devices)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = _new_figure(4.0 * ncols + 0.4, 3.3 * nrows + 1.3)
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
    colours = _colours(data.variant_label(v) for v in data.variants)
    for ax, device in zip(axes.flat, data.devices, strict=False):
        for j, v in enumerate(data.variants):
            line = data.line(device, v)
            if not line:
                continue
            label = data.variant_label(v)
            ks = [c.k for c in line]
            gs = [c.goodput_tok_s for c in line]
            ax.plot(ks, gs, marker=MARKERS[j % len(MARKERS)], ms=4, color=colours[label],
                    label=label)
            best = max(line, key=lambda c: (c.goodput_tok_s, -c.k))
            ax.plot([best.k], [best.goodput_tok_s], ls="none", marker="o", ms=11, mfc="none",
                    mec=colours[label], mew=1.5)
        for i, choice in enumerate(data.choices):
            for c in choice.candidates:
                if c.device == device:
                    _mark(ax, c.k, c.goodput_tok_s, i, colours[data.variant_label(
                        (c.target, c.draft, c.quant))], f"K={c.k}")
        ax.set_title(device)
        ax.set_xlabel("speculative length K (tokens)")
        ax.set_xticks(data.k_values)
    top = max((c.goodput_tok_s for c in data.candidates), default=1.0)
    axes[0, 0].set_ylim(0, top * 1.1)  # shared: set once, after every panel is drawn
    for ax in axes[:, 0]:
        ax.set_ylabel(GOODPUT.title)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    lines = [Line2D([], [], color=colours[data.variant_label(v)],
                    marker=MARKERS[j % len(MARKERS)], ms=4, label=data.variant_label(v))
             for j, v in enumerate(data.variants)]
    k_star = Line2D([], [], ls="none", marker="o", ms=11, mfc="none", mec="grey", mew=1.5,
                    label="K* (highest goodput of the line)")
    _legend_rows(fig, [lines, [k_star, *_choice_handles(data)]])
    _title(fig, "Goodput vs. speculative length K", data)
    return fig


# --- Figs. 3-5 ---------------------------------------------------------------


def _identical_across_devices(data: PlotData, axis: Axis, k: int | None) -> bool:
    """True when every variant has one value on all devices (cost: depends on alpha only)."""
    for v in data.variants:
        values = {round(y, 9) for d in data.devices
                  if (bar := data.bar(d, v, axis, k)) is not None
                  and (y := axis.value(bar)) is not None}
        if len(values) > 1:
            return False
    return len(data.devices) > 1


def bars(data: PlotData, axis: Axis, k: int | None) -> Figure:
    """One group of bars per draft variant, one bar per device (Figs. 3, 4, 5).

    Each bar is labelled with its value (and its K when bars take their best K);
    the solver's choices are marked at their own value on their bar, with their
    K beside the mark when it is not the bar's K.
    """
    variants = data.variants
    merged = axis is not ENERGY and _identical_across_devices(data, axis, k)
    devices = [data.devices[0]] if merged else data.devices
    fig = _new_figure(max(10.0, 5.5 + 0.75 * len(variants) * len(devices)), 5.6)
    ax = fig.subplots()
    colours = _colours(data.devices)
    width = 0.8 / len(devices)

    def slot_x(g: int, slot: int) -> float:
        return g - 0.4 + width * (slot + 0.5)

    marks: list[tuple[int, float, float, Candidate]] = []  # (choice, x, y, candidate)
    for i, choice in enumerate(data.choices):
        for c in choice.candidates:
            y = axis.value(c)
            if y is not None:
                g = variants.index((c.target, c.draft, c.quant))
                if merged:  # spread the devices' marks across the shared bar
                    n, pos = len(data.devices), data.devices.index(c.device)
                    x = slot_x(g, 0) + (pos - (n - 1) / 2) * width * 0.8 / max(n - 1, 1)
                else:
                    x = slot_x(g, data.devices.index(c.device))
                marks.append((i, x, y, c))
    top = max([y for _, _, y, _ in marks] + [
        axis.value(bar) or 0.0 for d in devices for v in variants
        if (bar := data.bar(d, v, axis, k)) is not None])
    ax.set_ylim(0, top * 1.25 if top > 0 else 1)
    # A mark this close above a bar top would cover the bar's label (one line of
    # text is about 6% of the axis height at this figure size): lift the label.
    near = (0.08 + 0.06 * (2 if k is None else 1)) * (top or 1.0)
    legend: list[Any] = []

    if merged:  # one neutral bar per variant; the marks keep their device's colour
        colours = {**colours, devices[0]: MERGED_COLOUR}
        legend.append(Patch(facecolor=MERGED_COLOUR, label="all devices (same value)"))
        legend += [Line2D([], [], ls="none", marker="o", ms=8, color=c, label=d)
                   for d, c in _colours(data.devices).items()
                   if any(m[3].device == d for m in marks)]
    for slot, device in enumerate(devices):
        label = device
        if device in data.no_power and axis is ENERGY:
            label += " (no power data: n/a)"
        if not merged:
            legend.append(Patch(facecolor=colours[device], label=label))
        for g, v in enumerate(variants):
            x = slot_x(g, slot)
            shown = data.bar(device, v, axis, k)
            y = axis.value(shown) if shown is not None else None
            if shown is None or y is None:
                if data.line(device, v):  # profiled, but the metric cannot be computed
                    ax.text(x, top * 0.02, "n/a", ha="center", va="bottom", color="0.35",
                            fontsize=9)
                continue
            ax.bar([x], [y], width * 0.92, color=colours[device])
            lifted = [my for _, mx, my, _ in marks if abs(mx - x) < 1e-9 and 0 <= my - y <= near]
            text = _short(y) + (f"\nK={shown.k}" if k is None else "")
            if lifted and y > near:  # a mark sits on the top: label inside the bar instead
                ax.annotate(text, (x, y), xytext=(0, -4), textcoords="offset points",
                            ha="center", va="top", fontsize=8, color="black",
                            fontweight="bold")
            else:
                ax.annotate(text, (x, max(lifted, default=y)), xytext=(0, 11 if lifted else 3),
                            textcoords="offset points", ha="center", va="bottom", fontsize=8)
    for i, x, y, c in marks:
        bar = data.bar(c.device, (c.target, c.draft, c.quant), axis, k)
        same = bar is not None and bar.k == c.k
        _mark(ax, x, y, i, _colours(data.devices)[c.device], None if same else f"K={c.k}")
    ax.set_xticks(range(len(variants)), [data.variant_label(v, "\n") for v in variants])
    ax.set_xlim(-0.6, len(variants) - 0.4)
    ax.set_xlabel("draft model and quantisation")
    ax.set_ylabel(axis.title)
    ax.grid(axis="x", visible=False)
    fig.legend(handles=[*legend, *_choice_handles(data)], loc="outside right upper",
               frameon=False)
    better = "highest" if axis.better == "max" else "lowest"
    at = f"every bar at K = {k}" if k is not None else \
        f"each bar at the K with the {better} {axis.label}"
    what = {"goodput_tok_s": "Goodput per draft and device",
            "cost_efficiency_tok_per_usd": "Verification cost efficiency per draft",
            "energy_j_per_tok": "Edge energy per accepted token"}[axis.attr]
    _title(ax, what, data, at)
    return fig


def _short(y: float) -> str:
    return f"{y:.3g}" if y < 100 else f"{y:,.0f}"


# --- Fig. 6 ------------------------------------------------------------------


def nice_levels(lo: float, hi: float, most: int = 5) -> list[float]:
    """1-2-5 values between lo and hi (at most `most`, thinned evenly)."""
    if lo <= 0 or hi <= lo:
        return [hi] if hi > 0 else []
    out = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0 ** e
            if lo <= v <= hi:
                out.append(round(v, 12))
    while len(out) > most:
        out = out[::2]
    return out


def pareto_front(points: Sequence[Candidate]) -> list[Candidate]:
    """Candidates no other beats in both goodput (higher) and energy (lower)."""
    best: list[Candidate] = []
    for c in sorted(points, key=lambda c: (-c.goodput_tok_s, c.energy_j_per_tok or 0.0)):
        assert c.energy_j_per_tok is not None
        if not best or c.energy_j_per_tok < (best[-1].energy_j_per_tok or math.inf):
            best.append(c)
    return best[::-1]


def speed_energy(data: PlotData, iso_power: Sequence[float] | None) -> Figure:
    """Energy per token against goodput, every configuration, with iso-power lines E = P/G.

    Both axes are logarithmic: the corner that matters (fast and frugal) is
    spread out, and an iso-power curve E = P/G is a straight line of slope -1.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    pts = [c for c in data.candidates if c.energy_j_per_tok is not None]
    fig = _new_figure(10.0, 6.0)
    ax = fig.subplots()
    colours = _colours(data.devices)
    left_out = [d for d in data.no_power if d in data.devices]
    if not pts:
        ax.text(0.5, 0.5, "no configuration has power data", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_xlabel(GOODPUT.title)
        ax.set_ylabel(ENERGY.title)
        _title(ax, "Speed-energy trade-off", data)
        return fig
    gs = [c.goodput_tok_s for c in pts]
    es = [c.energy_j_per_tok or 0.0 for c in pts]
    ax.set_xscale("log")
    ax.set_yscale("log")
    xlim = (min(gs) / 1.25, max(gs) * 1.25)
    ylim = (min(es) / 1.4, max(es) * 1.4)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    powers = [e * g for e, g in zip(es, gs, strict=True)]
    levels = list(iso_power) if iso_power else nice_levels(min(powers), max(powers))
    _iso_power(ax, levels, xlim, ylim)
    chosen = {(*c.config, c.device) for ch in data.choices for c in ch.candidates}
    for device in data.devices:
        for j, v in enumerate(data.variants):
            line = [c for c in data.line(device, v) if c.energy_j_per_tok is not None]
            if not line:
                continue
            xs = [c.goodput_tok_s for c in line]
            ys = [c.energy_j_per_tok or 0.0 for c in line]
            ax.plot(xs, ys, color=colours[device], lw=0.8, alpha=0.45, zorder=2)
            ax.plot(xs, ys, ls="none", marker=MARKERS[j % len(MARKERS)], ms=6,
                    color=colours[device], mec="white", mew=0.6, zorder=3)
            if (*line[0].config, device) not in chosen:  # else the mark says its K
                ax.annotate(f"K={line[0].k}", (xs[0], ys[0]), xytext=(-4, -4),
                            textcoords="offset points", ha="right", va="top", fontsize=7,
                            color="0.35")
    front = pareto_front(pts)
    ax.plot([c.goodput_tok_s for c in front], [c.energy_j_per_tok or 0.0 for c in front],
            ls="--", color="black", lw=1.3, zorder=4)
    for i, choice in enumerate(data.choices):
        for c in choice.candidates:
            if c.energy_j_per_tok is not None:
                _mark(ax, c.goodput_tok_s, c.energy_j_per_tok, i, colours[c.device],
                      f"K={c.k}")
    for a in (ax.xaxis, ax.yaxis):
        a.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        a.set_minor_formatter(NullFormatter())
    ax.set_xlabel(GOODPUT.title + ", log scale")
    ax.set_ylabel(ENERGY.title + ", log scale")
    handles: list[Any] = [Line2D([], [], ls="none", marker="s", ms=8, color=colours[d], label=d)
                          for d in data.devices if d not in left_out]
    handles += [Line2D([], [], ls="none", marker=MARKERS[j % len(MARKERS)], ms=6, color="0.3",
                       label=data.variant_label(v)) for j, v in enumerate(data.variants)]
    handles.append(Line2D([], [], ls="--", color="black", label="Pareto front"))
    handles.append(Line2D([], [], ls=":", color="0.45",
                          label="iso-power E = P/G (P: mean drafting power)"))
    handles += _choice_handles(data)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    extra = f"{len(pts)} configurations: one point per K, the smallest K labelled"
    if left_out:
        extra += f"\nnot shown (no power data): {', '.join(left_out)}"
    _title(ax, "Speed-energy trade-off", data, extra)
    return fig


def _iso_power(ax: Axes, levels: Sequence[float], xlim: tuple[float, float],
               ylim: tuple[float, float]) -> None:
    """E = P/G for each P, labelled where the line leaves the plot at the top or right."""
    for p in levels:
        g_lo = max(xlim[0], p / ylim[1])
        g_hi = min(xlim[1], p / ylim[0])
        if g_lo >= g_hi:
            continue  # the line misses the plotted range
        ax.plot([g_lo, g_hi], [p / g_lo, p / g_hi], ls=":", color="0.45", lw=1.0, zorder=1)
        at_top = p / g_lo >= ylim[1] * 0.999
        gx = g_lo * 1.03 if at_top else g_lo * 1.02
        ax.text(gx, p / gx, f"{p:g} W", fontsize=8, color="0.3", ha="left",
                va="top", zorder=1, bbox={"fc": "white", "ec": "none", "pad": 0.5, "alpha": 0.8})


__all__ = ["DPI", "Rendered", "Variant", "render"]


def render_front(front: ParetoJSON, units: tuple[str, str],
                 outputs: Sequence[Path]) -> Rendered:
    """The fleet front of `configspec pareto` (its JSON), not single configurations.

    Each point is a whole fleet assignment; the first is the best in x (what
    `solve` with x then y as objective picks), marked.  Axis labels carry units
    and which direction is better.
    """
    for p in outputs:
        if p.suffix.lower() not in FORMATS:
            raise UsageError(f"{p}: unknown image format (use .png or .svg)")
    pts = front["points"]
    if not pts:
        raise UsageError("the front is empty (no feasible assignment): nothing to plot")
    with matplotlib.rc_context(STYLE):
        fig = _new_figure(6.4, 4.4)
        ax = fig.add_subplot()
        xs, ys = [p["x"] for p in pts], [p["y"] for p in pts]
        order = sorted(range(len(pts)), key=lambda i: xs[i])
        ax.plot([xs[i] for i in order], [ys[i] for i in order], ls="--", lw=1,
                color=PALETTE[0], marker="o", ms=5, label="non-dominated fleet assignments")
        ax.plot([xs[0]], [ys[0]], ls="none", marker="*", ms=15, mfc="white", mec="black",
                mew=1.4, label=f"best {front['x']['metric']} (what solve picks, "
                f"{front['y']['metric']} second)")
        for axis, unit, setter in ((front["x"], units[0], ax.set_xlabel),
                                   (front["y"], units[1], ax.set_ylabel)):
            better = "higher" if axis["sense"] == "maximize" else "lower"
            setter(f"{axis['metric']}, {unit} ({better} is better)")
        title = f"fleet Pareto front: {len(pts)} points"
        if not front.get("complete", True):
            title += " (sampled: more exist between them)"
        ax.set_title(title)
        ax.legend(loc="best")
        _save(fig, outputs)
    w, h = fig.get_size_inches()
    return Rendered(list(outputs), (round(w * DPI), round(h * DPI)))
