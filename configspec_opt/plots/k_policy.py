"""The runtime K policy drawn: per configuration, K over (verifier load, rtt).

One panel per policy: each rtt row's load bands as coloured boxes (one colour per K,
colour-blind safe), the plan's K marked at its own load and rtt.  Built on `Figure`
directly, like `draw`; import only when a figure is wanted (matplotlib is an extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
from matplotlib.patches import Patch, Rectangle

from configspec_opt.errors import UsageError
from configspec_opt.k_policy import Policy
from configspec_opt.plots.draw import FORMATS, PALETTE, STYLE, _new_figure, _save


def render_policies(policies: Sequence[Policy], outputs: Sequence[Path]) -> None:
    """Draw every policy (one panel each) and save the figure to every output."""
    for out in outputs:
        if out.suffix.lower() not in FORMATS:
            raise UsageError(f"{out}: unknown image format (use .png or .svg)")
    if not policies:
        raise UsageError("no pool has a configuration to draw a policy for")
    ks = sorted({b.k for p in policies for r in p.rows for b in r.bands})
    colour = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(ks)}
    with matplotlib.rc_context(STYLE):
        fig = _new_figure(4.2 * len(policies), 3.6)
        axes = fig.subplots(1, len(policies), squeeze=False)[0]
        for ax, p in zip(axes, policies):
            c = p.curve
            top = p.load_max if c.batched else 1.0
            last = p.rows[-1]
            r_top = 2 * last.rtt_s - (last.rtt_from or 0.0) if last.rtt_to is None \
                else last.rtt_to
            for row in p.rows:
                hi = row.rtt_to if row.rtt_to is not None else r_top
                for band in row.bands:
                    to = band.load_to if band.load_to is not None else top
                    ax.add_patch(Rectangle((band.load_from, row.rtt_from * 1e3),
                                           to - band.load_from, (hi - row.rtt_from) * 1e3,
                                           facecolor=colour[band.k], edgecolor="white",
                                           linewidth=0.5))
            if c.batched and c.plan_load is not None:
                ax.plot([c.plan_load], [c.rtt_s * 1e3], marker="*", markersize=12,
                        color="black", linestyle="none")
            ax.set_xlim(0.0, top)
            ax.set_ylim(0.0, r_top * 1e3)
            ax.set_xlabel("requests in flight per replica" if c.batched
                          else "load (no effect: fixed verify latency)")
            ax.set_ylabel("rtt (ms)")
            ax.set_title(f"{c.pool}: {c.draft} {c.quant}, plan K={c.plan_k}")
            ax.grid(False)
        fig.legend(handles=[Patch(color=colour[k], label=f"K={k}") for k in ks],
                   loc="outside lower center", ncols=min(len(ks), 8))
        _save(fig, outputs)
