"""The answer as one self-contained HTML file, to attach to a pull request or a CI run.

`configspec report` writes the assignment per pool, the fleet metrics with
the limits that bind, the per-pool "why", the Pareto front of fleet goodput
against verifier $/hour with the chosen point marked, and where it all came
from (the spec's SHA-256, the tool version, the solver's status and gap).
`configspec diff --html` sets two decisions side by side.

Self-contained means readable offline and years later: CSS inline, the plot
inline SVG (matplotlib's SVG backend, when the `plot` extra is installed; the
report says so when it is not, and still carries the front as a table), no
script, no external URL.  Every piece of user text (names from the spec, file
names, messages) goes through `html.escape`.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from configspec_opt.errors import install_command
from configspec_opt.results import ParetoJSON, SolveJSON
from configspec_opt.safe_text import terminal_safe
from configspec_opt.spec import Spec
from configspec_opt.vcs.diff import FLEET_METRICS

if TYPE_CHECKING:
    from configspec_opt.loader import LoadedSpec
    from configspec_opt.vcs.diff import DecisionDiff

PARETO_X = "max:goodput"
PARETO_Y = "min:cost"
PARETO_X_LABEL = "fleet goodput (tok/s)"
PARETO_Y_LABEL = "verifier cost ($/h)"
SLO_BINDING_REL = 1e-6

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:70rem;padding:0 1rem;color:#1d2430;background:#fff}
h1{font-size:1.5rem;margin:0 0 .2rem}h2{font-size:1.15rem;margin:1.8rem 0 .5rem;
border-bottom:1px solid #d8dee8;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.3rem 0 1rem;font-size:13px}
th,td{border:1px solid #d8dee8;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#f2f5f9;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bind td{background:#fff4e0}tr.chosen td{background:#e6f4ea;font-weight:600}
.meta{color:#4a5568;font-size:13px}.meta code{font-size:12px}
.ok{color:#1e7b34;font-weight:600}.bad{color:#b42318;font-weight:600}
.note{background:#f7f7f2;border-left:3px solid #c9b458;padding:.4rem .7rem;margin:.5rem 0}
figure{margin:.5rem 0}figure svg{max-width:100%;height:auto}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
ul.why{padding-left:1.2rem}code{font-family:ui-monospace,Menlo,Consolas,monospace}
"""


def esc(value: Any) -> str:
    """Escape any value for HTML text or an attribute; None becomes the empty string.

    Every piece of user text goes through this, so a name from a spec can never
    inject markup into a report, nor a control character reach a terminal that
    shows `report -o -` (it is written as a visible escape, `terminal_safe`).
    """
    return html.escape(terminal_safe("" if value is None else str(value)), quote=True)


def fmt_num(x: Any, digits: int = 4) -> str:
    """A number as a person reads it: n/a when unknown, thousands separated when large."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return "n/a"
        if abs(x) >= 10 ** digits:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}"
    return esc(x)


def _table(head: Sequence[str], rows: Iterable[Sequence[tuple[str, bool]]],
           row_classes: Iterable[str] | None = None) -> str:
    """`rows` hold (already escaped html, numeric?) cells."""
    out = ["<table><thead><tr>", *(f"<th>{esc(h)}</th>" for h in head), "</tr></thead><tbody>"]
    classes = iter(row_classes or [])
    for row in rows:
        cls = next(classes, "")
        out.append(f'<tr class="{esc(cls)}">' if cls else "<tr>")
        out.extend(f'<td class="n">{c}</td>' if num else f"<td>{c}</td>" for c, num in row)
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML document: the CSS inline, no script, no external URL.

    `title` is escaped here; `body` must already be escaped HTML.
    """
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n{body}\n"
            "</body></html>\n")


def now_utc() -> str:
    """The current time as ISO 8601 UTC to the second (`...Z`), for a report's footer."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- solution parts


def objective_text(obj: Mapping[str, Any]) -> str:
    """The objective as a person reads it: `lexicographic: maximize goodput, ...`.

    Accepts a `solve --json` objective either with `terms` or as a single term.
    """
    terms = obj.get("terms") or [obj]
    what = ", ".join(f"{t.get('sense')} {t.get('metric')}" for t in terms)
    return (f"{obj['mode']}: " if "mode" in obj else "") + what


def assignment_table(data: Mapping[str, Any]) -> str:
    """The per-pool assignment as an HTML table (one row per configuration a pool runs)."""
    rows = data.get("assignments") or []
    if not rows:
        return "<p>No assignment.</p>"
    head = ["pool", "devices", "draft", "quant", "K", "target", "goodput tok/s",
            "round time s", "tok/$", "J/tok", "α(K)", "TPOT p95 s", "TTFT p95 s"]
    body = [[(esc(a["device"]) + (" <em>(split)</em>" if a.get("split") else ""), False),
             (fmt_num(a["count"]), True), (esc(a["draft"]), False), (esc(a["quant"]), False),
             (fmt_num(a["k"]), True), (esc(a["target"]), False),
             (fmt_num(a.get("goodput_tok_s")), True), (fmt_num(a.get("round_time_s")), True),
             (fmt_num(a.get("cost_tok_per_usd")), True),
             (fmt_num(a.get("energy_j_per_tok")), True), (fmt_num(a.get("alpha")), True),
             (fmt_num(a.get("tpot_p95_s")), True), (fmt_num(a.get("ttft_p95_s")), True)]
            for a in rows]
    return _table(head, body)


def fleet_table(data: Mapping[str, Any]) -> str:
    """Fleet totals with their units, plus each verifier's load and batched replicas."""
    fleet = data.get("fleet") or {}
    if not fleet:
        return "<p>No fleet metrics (nothing assigned).</p>"
    body = []
    for key, (label, unit) in FLEET_METRICS.items():
        if key in fleet:
            body.append([(esc(label), False), (fmt_num(fleet[key], 6), True),
                         (esc(unit), False)])
    for target, load in (fleet.get("verifier_load_by_target") or {}).items():
        body.append([(f"verifier load of {esc(target)}", False), (fmt_num(load), True),
                     ("tok/s", False)])
    out = _table(["metric", "value", "unit"], body)
    for v in fleet.get("verifiers") or []:
        lat = ", ".join(f"K={esc(k)}: {fmt_num(t * 1e3, 3)} ms"
                        for k, t in (v.get("latency_s_by_k") or {}).items())
        out += (f"<p>verifier {esc(v['target'])}: {fmt_num(v['replicas'])} replicas, "
                f"{fmt_num(v['in_flight_per_replica'])} requests in flight per replica, "
                f"{lat}, {fmt_num(v['cost_usd_per_hour'])} $/h</p>")
    return out


def slo_usage(spec: Spec | None, data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per-device SLOs (constraints.per_device and each pool's own) against each pool's
    assigned value: the rows `solve --json` leaves out because they act per candidate."""
    from configspec_opt.metric_registry import BY_SLO, BY_TAIL_SLO

    if spec is None:
        return []
    checks = [(name, str(d.candidate_key), d.unit) for name, d in BY_SLO.items()]
    checks += [(name, d.key, d.unit) for name, d in BY_TAIL_SLO.items()]
    devices = {d.name: d for d in spec.devices}
    out = []
    for a in data.get("assignments") or []:
        device = devices.get(a["device"])
        if device is None:
            continue
        slo = spec.slo_for(device)
        for field, key, unit in checks:
            limit = getattr(slo, field)
            value = a.get(key)
            if limit is None or value is None:
                continue
            where = "devices[].slo" if device.slo and getattr(device.slo, field) is not None \
                else "constraints.per_device"
            out.append({"constraint": f"{where}.{field} (pool {a['device']}, "
                                      f"{a['draft']} {a['quant']} K={a['k']})",
                        "limit": limit, "value": value, "unit": unit,
                        "binding": abs(value - limit) <= SLO_BINDING_REL * max(1.0, abs(limit))})
    return out


def constraints_table(data: Mapping[str, Any], spec: Spec | None = None) -> str:
    """Every declared limit against the assigned value, binding rows highlighted.

    With `spec`, per-device SLOs are checked too (`slo_usage`); without it only
    the fleet-level constraints that `solve --json` lists appear.
    """
    if not data.get("assignments"):
        return declared_table(data, spec)
    rows = [*(data.get("constraints") or []), *slo_usage(spec, data)]
    if not rows:
        return "<p>No constraints declared.</p>"
    body = [[(f"<code>{esc(c['constraint'])}</code>", False), (fmt_num(c["limit"]), True),
             (fmt_num(c["value"]), True), (esc(c.get("unit") or ""), False),
             ('<span class="bad">binds</span>' if c["binding"] else "slack", False)]
            for c in rows]
    return _table(["constraint", "limit", "value", "unit", "binding"], body,
                  ["bind" if c["binding"] else "" for c in rows])


def declared_table(data: Mapping[str, Any], spec: Spec | None) -> str:
    """Without an assignment: every limit the spec declares (there is no value to set
    against it), each marked with what the diagnosis says of it."""
    from configspec_opt.constraint_families import declared_constraints

    lead = "<p>No assignment, so no values to set against the limits"
    if spec is None:
        return lead + ".</p>"
    diag = data.get("diagnosis") or {}
    relax = {r["constraint"]: r for r in diag.get("relaxations") or []}
    conflicts = list(diag.get("conflicts_with") or [])

    def verdict(key: str, unit: str) -> str:
        if key in relax:
            return (f'<span class="bad">relax to {fmt_num(relax[key]["relax_to"], 6)}'
                    f"{' ' + esc(unit) if unit else ''}</span>")
        if any(c == key or c.startswith(key + "[") for c in conflicts):
            return "at its limit once relaxed (the relaxation runs into it)"
        return ""

    rows = declared_constraints(spec)
    pins = spec.constraints.pinned
    parts = [lead + "; the limits the spec declares"
             + (", and what the diagnosis above says of them" if diag else "") + ":</p>"]
    if rows:
        body = [[(f"<code>{esc(c.constraint)}</code>", False), (esc(c.label), False),
                 (esc(c.sense), False), (fmt_num(c.limit), True), (esc(c.unit), False),
                 (verdict(c.constraint, c.unit), False)] for c in rows]
        parts.append(_table(["constraint", "what", "sense", "limit", "unit", "diagnosis"], body,
                            ["bind" if c.constraint in relax else "" for c in rows]))
    if pins:
        parts.append("<p>Pinned:</p><ul>" + "".join(
            f"<li>pool {esc(p.device)}: " + esc(", ".join(
                f"{f} {getattr(p, f)}" for f in ("target", "draft", "quant", "k")
                if getattr(p, f) is not None)) + "</li>" for p in pins) + "</ul>")
    if not rows and not pins:
        parts = ["<p>No constraints declared (no per-device SLO, no fleet limit, no pin).</p>"]
    return "\n".join(parts)


def why_list(data: Mapping[str, Any]) -> str:
    """The per-pool "why" as a list, with the same sentences as the text report.

    Says why when there is none: no assignment to explain, or explanations not asked
    for (a solve computes them by default only up to `EXPLAIN_MAX_CANDIDATES`).
    """
    from configspec_opt.explain import PoolExplanation
    from configspec_opt.operations import EXPLAIN_MAX_CANDIDATES

    items = data.get("explain")
    if not data.get("assignments"):
        return (f"<p>No assignment ({esc(data.get('status', 'not solved'))}), so nothing to "
                "explain: the diagnosis above says what to change.</p>"
                if data.get("diagnosis") else
                f"<p>No assignment ({esc(data.get('status', 'not solved'))}), so nothing to "
                "explain.</p>")
    if items is None:
        return ("<p>Explanations were not computed: a solve computes them by default for "
                f"at most {EXPLAIN_MAX_CANDIDATES:,} candidates (<code>--explain</code>, "
                "<code>explain=True</code>).</p>")
    lines = []
    for e in items:
        summary = PoolExplanation(e["device"], e["split"], e["runner_up"],
                                  e["blocked_by"]).summary()
        lines.append(f"<li><strong>{esc(e['device'])}</strong>: {esc(summary)}</li>")
    return '<ul class="why">' + "".join(lines) + "</ul>"


def diagnosis_block(data: Mapping[str, Any]) -> str:
    """Why an infeasible spec has no assignment and which relaxations would fix it.

    Empty when the answer carries no diagnosis (a feasible solve).
    """
    diag = data.get("diagnosis")
    if not diag:
        return ""
    parts = [f'<p class="bad">{esc(diag.get("message"))}</p><ul>']
    for st in diag.get("structural") or []:
        parts.append(f"<li>pool {esc(st['device'])}: {esc('; '.join(st['reasons']))}</li>")
    for r in diag.get("relaxations") or []:
        parts.append(f"<li>relax <code>{esc(r['constraint'])}</code> from "
                     f"{fmt_num(r['limit'])} to {fmt_num(r['relax_to'], 6)} "
                     f"{esc(r.get('unit', ''))}</li>")
    parts.append("</ul>")
    return "".join(parts)


def solver_line(data: Mapping[str, Any]) -> str:
    """The solver's status, gap, time and candidate counts in one line, the status coloured."""
    s = data.get("solver") or {}
    status = data.get("status", "?")
    cls = "ok" if status == "optimal" else "bad" if status not in ("feasible",) else ""
    gap = s.get("gap")
    within = s.get("proven_within")
    proven = "proven optimal" + ("" if within is None else f" (gap ≤ {fmt_num(within)})")
    return (f'<span class="{cls}">{esc(status)}</span>, gap {fmt_num(gap)}, {proven}: '
            f"{fmt_num(s.get('proven_optimal'))}, {fmt_num(s.get('time_s'), 3)} s, "
            f"{fmt_num(s.get('candidates'))} candidates "
            f"({fmt_num(s.get('pruned_dominated'))} dominated removed)")


def sensitivity_section(data: Mapping[str, Any]) -> str:
    """Each parameter's breaking point and the objective's elasticity ('' when not computed)."""
    sens = data.get("sensitivity")
    if not sens:
        return ""
    el = {e["parameter"]: e["elasticity"] for e in sens.get("elasticities") or []}
    body = []
    for b in sens.get("breaking_points") or []:
        held = (f"×{fmt_num(b['holds_to_factor'], 3)}" if b["holds_to_factor"] is not None
                else f"beyond ×{fmt_num(b['scanned_to_factor'], 3)}")
        e = el.get(b["parameter"])
        body.append([(esc(b["parameter"]), False), (esc(held), True),
                     (esc(", ".join(b["breaks"]) or "nothing on the scan"), False),
                     ("n/a" if e is None else f"{e:+.2f}", True)])
    return "\n".join([
        "<h2>Sensitivity: how far the numbers may drift</h2>",
        '<p class="note">Each parameter alone, against this plan (not solved again): the '
        "last factor in its harmful direction at which every constraint holds, what breaks "
        "just past it, and the objective's elasticity (% change per % change).</p>",
        _table(["parameter", "holds to", "then breaks", "elasticity"], body)])


def solution_fragment(data: Mapping[str, Any], spec: Spec | None = None) -> str:
    """The assignment, fleet metrics, constraint usage and why: the report's core, also a
    notebook's rich display of a `configspec_opt.solve` result."""
    obj = data.get("objective") or {}
    value = obj.get("value")
    parts = [f"<p><strong>{esc(objective_text(obj))}</strong>"
             + (f" = {fmt_num(value, 6)}" if value is not None else "")
             + f" &mdash; solver: {solver_line(data)}</p>",
             diagnosis_block(data),
             "<h2>Assignment per pool</h2>", assignment_table(data),
             "<h2>Fleet metrics</h2>", fleet_table(data),
             "<h2>Constraints: limits and which bind</h2>" if data.get("assignments") else
             "<h2>Constraints declared</h2>", constraints_table(data, spec),
             "<h2>Why each pool got its configuration</h2>", why_list(data),
             sensitivity_section(data)]
    if data.get("message"):
        parts.append(f'<p class="note">{esc(data["message"])}</p>')
    for w in data.get("warnings") or []:
        parts.append(f'<p class="note">warning: {esc(w)}</p>')
    return "\n".join(p for p in parts if p)


# --------------------------------------------------------------------------- Pareto


def _assignment_text(assignments: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(f"{a['device']} ×{a['count']}: {a['draft']} {a['quant']} K={a['k']}"
                     for a in assignments)


def _same_point(p: Mapping[str, Any], chosen: tuple[float, float] | None) -> bool:
    if chosen is None:
        return False
    return all(math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-9)
               for a, b in ((p["x"], chosen[0]), (p["y"], chosen[1])))


def pareto_svg(points: Sequence[Mapping[str, Any]], chosen: tuple[float, float] | None,
               chosen_label: str) -> str | None:
    """The front as inline SVG, or None when matplotlib is not installed."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        return None
    pts = sorted((p["x"], p["y"]) for p in points)
    with matplotlib.rc_context({"svg.hashsalt": "configspec-report", "svg.fonttype": "none",
                                "font.size": 10}):
        fig = Figure(figsize=(7.5, 4.2))
        ax = fig.add_subplot()
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="#3565a8",
                    markersize=5, linewidth=1.4, label="Pareto front (non-dominated fleets)")
        if chosen is not None:
            ax.plot([chosen[0]], [chosen[1]], marker="*", markersize=16, color="#c2410c",
                    linestyle="none", label=f"chosen ({chosen_label})")
        ax.set_xlabel(PARETO_X_LABEL)
        ax.set_ylabel(PARETO_Y_LABEL)
        ax.grid(True, color="#e3e8ef", linewidth=0.8)
        ax.legend(loc="upper left", frameon=False)
        ax.set_title("More goodput costs more verifier time: the trade-off")
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    return re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)


def pareto_section(front: Mapping[str, Any] | None, data: Mapping[str, Any],
                   note: str | None = None) -> str:
    """The Pareto front of fleet goodput against verifier $/hour, the chosen fleet marked.

    The front is always given as a table; the plot is added when matplotlib is
    installed.  `front` None leaves only the heading and `note` (the front was
    not computed), so a report says why it is missing.
    """
    parts = ["<h2>Pareto front: fleet goodput vs verifier $/hour</h2>"]
    if note:
        parts.append(f'<p class="note">{esc(note)}</p>')
    if front is None:
        return "\n".join(parts)
    fleet = data.get("fleet") or {}
    chosen = None
    if fleet.get("goodput_tok_s") is not None and fleet.get("cost_usd_per_hour") is not None:
        chosen = (float(fleet["goodput_tok_s"]), float(fleet["cost_usd_per_hour"]))
    points = front.get("points") or []
    svg = pareto_svg(points, chosen, objective_text(data.get("objective") or {}))
    if svg is None:
        parts.append('<p class="note">The plot is omitted: matplotlib is not installed '
                     f"(<code>{esc(install_command('plot'))}</code>). The front is in the "
                     "table below.</p>")
    else:
        parts.append(f"<figure>{svg}<figcaption>Each point is a whole-fleet assignment no "
                     "other beats on both axes; the star is the assignment above.</figcaption>"
                     "</figure>")
    if not front.get("complete", True):
        parts.append('<p class="note">The front has more points than were asked for: these '
                     "are sampled evenly between its two ends.</p>")
    on_front = any(_same_point(p, chosen) for p in points)
    if chosen is not None and not on_front:
        parts.append(f'<p class="note">The chosen assignment ({fmt_num(chosen[0])} tok/s, '
                     f"{fmt_num(chosen[1])} $/h) is not on this front: the objective "
                     f"({esc(objective_text(data.get('objective') or {}))}) trades other "
                     "metrics.</p>")
    body = [[(fmt_num(p["x"], 6), True), (fmt_num(p["y"], 6), True),
             (esc(_assignment_text(p.get("assignments") or [])), False)] for p in points]
    parts.append(_table([PARETO_X_LABEL, PARETO_Y_LABEL, "assignment"], body,
                        ["chosen" if _same_point(p, chosen) else "" for p in points]))
    return "\n".join(parts)


# --------------------------------------------------------------------------- the report


def render_report(data: Mapping[str, Any], *, spec: Spec | None, spec_file: str,
                  tool: str, front: Mapping[str, Any] | None, pareto_note: str | None,
                  generated: str | None = None, template: str | None = None) -> str:
    """The whole report from `solve --json` data and `pareto --json` data (pure);
    `template`: the note that the spec is a template, shown before anything else."""
    name = spec.name if spec is not None else spec_file
    meta = (f'<p class="meta">spec <code>{esc(spec_file)}</code> &middot; sha256 '
            f"<code>{esc(data.get('spec_sha256', 'n/a'))}</code><br>{esc(tool)} &middot; "
            f"generated {esc(generated or now_utc())}</p>")
    body = [f"<h1>configspec report: {esc(name)}</h1>", meta,
            *([f'<p class="note bad">{esc(template)}</p>'] if template else []),
            solution_fragment(data, spec), pareto_section(front, data, pareto_note)]
    return page(f"configspec report: {name}", "\n".join(body))


def build_report(loaded: LoadedSpec, spec_file: str, *, pareto: bool = True,
                 points: int = 20, time_limit: float | None = None) -> tuple[str, SolveJSON]:
    """Solve (with explanations), compute the goodput/cost front, render; returns the HTML
    and the solve data (the caller decides the exit code from its status)."""
    from configspec_opt.errors import ConfigspecError
    from configspec_opt.operations import pareto_report, solve_report
    from configspec_opt.vcs.check import template_note
    from configspec_opt.vcs.lock import tool_version

    data = solve_report(loaded, explain=True, time_limit=time_limit, sensitivity=None)
    front: ParetoJSON | None = None
    note: str | None = None
    if not pareto:
        note = "Not computed (--no-pareto)."
    elif data["status"] not in ("optimal", "feasible"):
        note = "Not computed: the spec has no feasible assignment."
    else:
        try:
            front = pareto_report(loaded, x=PARETO_X, y=PARETO_Y, points=points,
                                  time_limit=time_limit)
        except ConfigspecError as exc:
            note = f"Not computed: {exc}"
    html_text = render_report(data, spec=loaded.spec, spec_file=spec_file,
                              tool=f"configspec-opt {tool_version()}", front=front,
                              pareto_note=note, template=template_note(loaded, spec_file))
    return html_text, data


# --------------------------------------------------------------------------- diff


def _config_cell(entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return "<em>(none)</em>"
    from configspec_opt.vcs.diff import config_text

    targets = len({e.get("target") for e in entries}) > 1
    return "<br>".join(esc(config_text(dict(e), target=targets)) for e in entries)


def _numbers(entries: Sequence[Mapping[str, Any]], key: str) -> str:
    return " + ".join(fmt_num(e.get(key)) for e in entries) or "&ndash;"


def diff_html(d: DecisionDiff, generated: str | None = None) -> str:
    """Two decisions side by side: per pool, then the fleet metrics with their change."""
    from configspec_opt.vcs.lock import tool_version

    sides = []
    for tag, side in (("before", d.old), ("after", d.new)):
        obj = side.data.get("objective") or {}
        value = obj.get("value")
        sha = (side.data.get("spec") or {}).get("sha256", "n/a")
        sides.append(f"<div><h2>{tag}: <code>{esc(side.label)}</code></h2><p>"
                     f"{esc(side.data.get('status'))}, {esc(objective_text(obj))}"
                     + (f" = {fmt_num(value, 6)}" if value is not None else "")
                     + f'</p><p class="meta">sha256 <code>{esc(sha)}</code></p></div>')
    parts = [f"<h1>configspec diff</h1><p class=\"meta\">configspec-opt {esc(tool_version())}"
             f" &middot; generated {esc(generated or now_utc())}</p>",
             f'<div class="cols">{"".join(sides)}</div>']
    if d.objective_changed:
        parts.append('<p class="note">The objective changed.</p>')
    parts.append("<h2>Pools</h2>")
    body, classes = [], []
    for p in d.pools:
        body.append([(esc(p.device), False), (esc(p.change), False),
                     (_config_cell(p.old), False), (_config_cell(p.new), False),
                     (f"{_numbers(p.old, 'goodput_tok_s')} &rarr; "
                      f"{_numbers(p.new, 'goodput_tok_s')}", True),
                     (f"{_numbers(p.old, 'energy_j_per_tok')} &rarr; "
                      f"{_numbers(p.new, 'energy_j_per_tok')}", True)])
        classes.append("bind" if p.change != "unchanged" else "")
    parts.append(_table(["pool", "change", "before", "after", "goodput tok/s", "J/tok"],
                        body, classes))
    parts.append("<h2>Fleet metrics</h2>")
    fbody, fclasses = [], []
    for m in d.fleet:
        rel = m.relative
        change = "" if m.delta is None else (("+" if m.delta >= 0 else "&minus;")
                                             + fmt_num(abs(m.delta))
                                             + (f" ({rel:+.1%})" if rel is not None else ""))
        fbody.append([(esc(m.label) + (f" ({esc(m.unit)})" if m.unit else ""), False),
                      (fmt_num(m.old), True), (fmt_num(m.new), True), (change, True)])
        fclasses.append("bind" if m.changed else "")
    parts.append(_table(["metric", "before", "after", "change"], fbody, fclasses))
    if not d.changed:
        parts.append("<p>No change in assignments or fleet metrics.</p>")
    return page("configspec diff", "\n".join(parts))
