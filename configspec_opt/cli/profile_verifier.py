"""`configspec profile-verifier`: measure T(b, K) of a batched verifier, write it into the spec.

The measurement (`profiler.verifier_profile`) speaks HTTP with the standard library only;
nothing here imports llama_cpp, Pyomo or FastAPI.  The table is written row by row (every
K of one b), each time validated and atomically replacing the spec, so Ctrl-C leaves a
valid spec with every finished row, and a rerun resumes.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from configspec_opt.cli.app import app, emit_json, err, out, user_errors
from configspec_opt.cli.options import MAX_TIME_LIMIT_S, Bounds, JsonOpt
from configspec_opt.errors import UsageError
from configspec_opt.spec import Spec, Target

if TYPE_CHECKING:
    from profiler.verifier_profile import Cell, Plan, Steady, VerifierSession

DEFAULT_BATCH = "1,2,4,8,16"
DEFAULT_KS = (2, 4, 8)


def _find_target(spec: Spec, name: str) -> Target:
    for t in spec.targets:
        if t.name == name:
            return t
    known = [t.name for t in spec.targets]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"
    raise UsageError(f"--target: no target named '{name}' ({hint})")


def parse_ints(text: str, option: str, lo: int, hi: int) -> list[int]:
    """`1,2,4`, `2..8` or `4`, each between lo and hi."""
    try:
        if ".." in text:
            a, b = (int(x) for x in text.split("..", 1))
            values = list(range(a, b + 1))
        else:
            values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UsageError(f"{option} {text!r}: write a list like 1,2,4 or a range like "
                         "2..8") from None
    if not values or min(values) < lo or max(values) > hi:
        raise UsageError(f"{option} {text!r}: values must be between {lo} and {hi}")
    return sorted(set(values))


def default_ks(spec: Spec) -> list[int]:
    """Draft lengths to measure: the usual ones the spec searches, else its smallest and largest."""
    search = list(spec.search.k.values())
    ks = [k for k in DEFAULT_KS if k in search]
    return ks or sorted({search[0], search[-1]})


@app.command("profile-verifier")
def profile_verifier(
    spec: Annotated[Path, typer.Argument(help="Deployment spec (YAML) to write the table into.")],
    target: Annotated[str, typer.Option("--target", "-t", help="The target whose verifier "
                                        "this server is.")],
    endpoint: Annotated[str | None, typer.Option(
        help="Server URL, http://host:port (default: the target's endpoint).")] = None,
    batch: Annotated[str, typer.Option(
        "--batch", help="Requests per step b (sent together): a list like 1,2,4,8,16 or a range.")]
    = DEFAULT_BATCH,
    k: Annotated[str | None, typer.Option(
        "--k", help="Drafted tokens K per request: 2,4,8 or 2..8 (default: 2, 4, 8 as far "
        "as the spec's search.k allows).")] = None,
    context_tokens: Annotated[int, typer.Option(
        "--context", help="Tokens of each client's cached context.", min=8)] = 256,
    min_requests: Annotated[int, typer.Option(help="Timed requests per cell, at least.",
                                              min=2)] = 20,
    max_requests: Annotated[int, typer.Option(help="Timed requests per cell, at most.",
                                              min=2)] = 400,
    min_bursts: Annotated[int, typer.Option(
        help="Bursts (steps of b requests sent together) per cell, at least: one burst is "
        "one sample of a step's time.", min=1)] = 6,
    max_time: Annotated[float, typer.Option(
        help="Seconds per cell, at most.",
        parser=Bounds(min=0.1, max=MAX_TIME_LIMIT_S, unit="seconds"))]
    = 30.0,
    precision: Annotated[float, typer.Option(
        help="Stop a cell when the median's relative standard error is this small.",
        parser=Bounds(min=0))] = 0.03,
    timeout: Annotated[float, typer.Option(
        help="HTTP timeout per request, seconds.",
        parser=Bounds(min=0.1, max=MAX_TIME_LIMIT_S, unit="seconds"))] = 60.0,
    api: Annotated[str, typer.Option(help="auto, llama (llama-server's /completion) or "
                                     "openai (/v1/completions).")] = "auto",
    model: Annotated[str | None, typer.Option(
        help="Model name to send (OpenAI API; default: the server's first).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the drafted token ids.")] = 0,
    force: Annotated[bool, typer.Option(help="Re-measure cells already in the table.")]
    = False,
    replicas_min: Annotated[int | None, typer.Option(
        help="verifier.replicas.min (with --replicas-max).", min=0)] = None,
    replicas_max: Annotated[int | None, typer.Option(
        help="verifier.replicas.max; with --price-per-replica-hour and --max-batch it "
        "creates a missing verifier: section.", min=1)] = None,
    price_per_replica_hour: Annotated[float | None, typer.Option(
        help="verifier.price_usd_per_replica_hour.", parser=Bounds(min=0))] = None,
    max_batch: Annotated[int | None, typer.Option(help="verifier.max_batch.", min=1)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure T(b, K) of a batched verifier server; write targets[].verifier.latency_s."""
    with user_errors(as_json):
        if api not in ("auto", "llama", "openai"):
            raise UsageError(f"--api {api!r}: choose auto, llama or openai")
        if min_requests > max_requests:
            raise UsageError("--min-requests is above --max-requests")
        try:
            _run(spec, target, endpoint, batch, k, context_tokens,
                 (min_requests, max_requests, max_time, precision, min_bursts),
                 timeout, api, model, seed, force,
                 (replicas_min, replicas_max, price_per_replica_hour, max_batch), as_json)
        except KeyboardInterrupt:  # before any row: nothing was written
            err.print("interrupted: the spec is unchanged")
            raise typer.Exit(130) from None


def _verifier_fields(t: Target, given: tuple[int | None, int | None, float | None,
                                             int | None]) -> dict[str, Any]:
    """The verifier keys other than the table that this run sets (creating the section)."""
    rmin, rmax, price, mb = given
    fields: dict[str, Any] = {}
    if t.verifier is None:
        missing = [name for name, v in (("--replicas-max", rmax),
                                        ("--price-per-replica-hour", price),
                                        ("--max-batch", mb)) if v is None]
        if missing:
            raise UsageError(
                f"target '{t.name}' has no verifier: section; write one (replicas, "
                "price_usd_per_replica_hour, max_batch) or pass --replicas-max, "
                f"--price-per-replica-hour and --max-batch to create it (missing: "
                f"{', '.join(missing)})")
    if rmax is not None or rmin is not None:
        cur = t.verifier.replicas if t.verifier is not None else None
        fields["replicas"] = {"min": rmin if rmin is not None else (cur.min if cur else 1),
                              "max": rmax if rmax is not None else (cur.max if cur else 1)}
    if price is not None:
        fields["price_usd_per_replica_hour"] = price
    if mb is not None:
        fields["max_batch"] = mb
    return fields


def _run(spec_path: Path, target_name: str, endpoint: str | None, batch: str, k: str | None,
         context_tokens: int, cell: tuple[int, int, float, float, int],
         timeout: float, api: str, model: str | None, seed: int,
         force: bool, given: tuple[int | None, int | None, float | None, int | None],
         as_json: bool) -> None:
    from configspec_opt.loader import load_spec
    from profiler.verifier_profile import (
        CellOptions,
        NotBatchingError,
        SessionOptions,
        VerifierSession,
        identity,
        not_batching,
        not_batching_message,
        plan_cells,
    )

    spec = load_spec(spec_path).spec
    t = _find_target(spec, target_name)
    bs = parse_ints(batch, "--batch", 1, 4096)
    ks = parse_ints(k, "--k", 1, 64) if k else default_ks(spec)
    fields = _verifier_fields(t, given)
    url = endpoint or t.endpoint
    if not url:
        raise UsageError(f"target '{t.name}' has no endpoint: pass --endpoint http://host:port")
    original = _spec_text(spec_path)

    opts = SessionOptions(context_tokens=context_tokens, timeout_s=timeout, seed=seed,
                          cell=CellOptions(*cell))
    session = VerifierSession(url, opts, api, model)  # connection problems end here: exit 4
    warnings: list[str] = []
    try:
        ver = t.verifier
        plan = plan_cells(ver.latency_s if ver else None, ver.provenance if ver else None,
                          identity(session.info, context_tokens), bs, ks, force)
        if plan.note and not as_json:
            err.print(f"note: {plan.note}", highlight=False, markup=False)
        slots = session.info.slots
        if slots is not None and max(plan.todo or {0: []}) > slots:
            _warn(f"b up to {max(plan.todo)} but the server runs {slots} requests at once "
                  "(--parallel): the larger b queue at the server", warnings, as_json)
        table, written, measured, prov, cells = _measure(spec_path, t.name, session, plan,
                                                         fields, warnings, as_json)
    finally:
        session.close()
    observed = prov.get("observed_batch") if isinstance(prov.get("observed_batch"), dict) \
        else None
    serial: dict[int, dict[int, float | None]] = {}
    for (b, kk), c in cells.items():
        serial.setdefault(b, {})[kk] = c.serial
    if measured and not_batching(table, observed, serial=serial):
        if _spec_text(spec_path) != original:
            from configspec_opt.files import write_output

            write_output(spec_path, original)
        raise NotBatchingError(not_batching_message(table, observed, serial))
    _report(spec_path, t.name, plan, table, session, written, warnings, as_json)


def _spec_text(path: Path) -> str:
    """The spec's text through the one reader (a regular file, within the limits)."""
    from configspec_opt.spec_files import FileRefused, read_text_file

    try:
        return read_text_file(path)
    except FileRefused as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def _steady_warnings(st: Steady, below: tuple[int, float] | None) -> list[str]:
    """What `steady_value` did to a cell, for the reader: measured again, or raised."""
    if st.times == 1 or below is None:
        return []
    c, (b0, t0) = st.cell, below
    how = ("grew faster than proportionally from" if st.cell.value > t0
           else "read faster than")
    out = [f"b={c.b} K={c.k}: {c.value * 1e3:.1f} ms {how} b={b0} ({t0 * 1e3:.1f} ms): "
           f"measured {st.times} times, the median kept"]
    if st.floored:
        out.append(f"b={c.b} K={c.k}: the median {st.measured * 1e3:.1f} ms is still below "
                   f"b={b0}: the table records b={b0}'s {t0 * 1e3:.1f} ms (a step of more "
                   "requests is never faster)")
    return out


def _warn(msg: str, warnings: list[str], as_json: bool) -> None:
    warnings.append(msg)
    if not as_json:
        err.print(f"[yellow]warning:[/yellow] {escape(msg)}", highlight=False, markup=True)


def _measure(spec_path: Path, target: str, session: VerifierSession, plan: Plan,
             fields: dict[str, Any], warnings: list[str],
             as_json: bool) -> tuple[dict[int, dict[int, float]], int, int, dict[str, Any],
                                     dict[tuple[int, int], Cell]]:
    """Every planned cell, row by row; the table is written whenever it is rectangular.

    The server is warmed up first, and a cell that grows faster than proportionally from
    the row below is measured again (`profiler.verifier_profile.steady_value`).
    """
    from profiler.verifier_profile import row_below
    from profiler.writeback import write_verifier

    table = {b: dict(row) for b, row in plan.keep.items()}
    prov_old = (_old_prov(spec_path, target) if plan.resumed else None) or {}
    cells: dict[tuple[int, int], Cell] = {}
    prov: dict[str, Any] = {}
    total = sum(len(v) for v in plan.todo.values())
    written = 0
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, transient=False, disable=as_json)
    task = progress.add_task("verifier", total=total)
    try:
        with progress:
            if total:
                progress.update(task, description="warming the server up")
                session.warm_up(plan.todo, min(k for ks in plan.todo.values() for k in ks))
            for b in sorted(plan.todo):
                for kk in plan.todo[b]:
                    def tick(n: int, b: int = b, kk: int = kk) -> None:
                        progress.update(task, description=f"b={b} K={kk} n={n}")
                    below = row_below(table, b, kk)
                    st = session.measure_steady(b, kk, below, tick)
                    cells[(b, kk)] = cell = st.cell
                    table.setdefault(b, {})[kk] = round(st.value, 6)
                    for w in _steady_warnings(st, below) + session.warnings_for(cell):
                        warnings.append(w)
                        if not as_json:
                            progress.console.print(f"[yellow]warning:[/yellow] {escape(w)}",
                                                   highlight=False, markup=True)
                    progress.advance(task)
                if _rectangular(table):
                    verifier = dict(fields)
                    verifier["latency_s"] = {bb: dict(sorted(r.items()))
                                             for bb, r in sorted(table.items())}
                    prov = _provenance(session, cells, prov_old, table, warnings)
                    verifier["provenance"] = prov
                    write_verifier(spec_path, target, verifier)
                    written += 1
    except KeyboardInterrupt:
        err.print(f"interrupted: {written} row write(s) done; the spec is valid "
                  "(rerun to resume)")
        raise typer.Exit(130) from None
    if total == 0 and fields:
        write_verifier(spec_path, target, dict(fields))
    return table, written, total, prov, cells


def _old_prov(spec_path: Path, target: str) -> dict[str, Any] | None:
    from configspec_opt.loader import load_spec

    for t in load_spec(spec_path).spec.targets:
        if t.name == target and t.verifier is not None:
            return dict(t.verifier.provenance or {})
    return None


def _rectangular(table: dict[int, dict[int, float]]) -> bool:
    rows = [set(r) for r in table.values()]
    return bool(rows) and all(r == rows[0] for r in rows) and bool(rows[0])


def _provenance(session: VerifierSession, cells: dict[tuple[int, int], Cell],
                old: dict[str, Any], table: dict[int, dict[int, float]],
                warnings: list[str]) -> dict[str, Any]:
    """Identity, settings, and per-cell tables (requests, spread, observed batch, bursts the
    server split, tokens)."""
    prov = session.provenance_base()

    def per_cell(name: str, value: Any) -> dict[int, dict[int, Any]]:
        prior = old.get(name) if isinstance(old.get(name), dict) else {}
        outt: dict[int, dict[int, Any]] = {}
        for b, row in sorted(table.items()):
            for kk in sorted(row):
                if (b, kk) in cells:
                    v = value(cells[(b, kk)])
                else:
                    v = (prior.get(b) or {}).get(kk) if isinstance(prior, dict) else None
                if v is not None:
                    outt.setdefault(b, {})[kk] = v
        return outt

    clocks = {("server" if c.server_clock else "client") for c in cells.values()}
    if isinstance(old.get("clock"), str):
        clocks |= set(old["clock"].split(" and "))
    if clocks:
        prov["clock"] = " and ".join(sorted(clocks))
    prov["repeats"] = per_cell("repeats", lambda c: c.n)
    prov["spread"] = per_cell("spread", lambda c: round(c.spread, 3))
    observed = per_cell("observed_batch", lambda c: None if c.observed_batch is None
                        else round(c.observed_batch, 2))
    if observed:
        prov["observed_batch"] = observed
    split = per_cell("split_bursts", lambda c: f"{c.split}/{c.bursts}" if c.split else None)
    if split:
        prov["split_bursts"] = split
    processed = per_cell("processed_tokens", lambda c: _num(c.processed_median))
    if processed:
        prov["processed_tokens"] = processed
    old_w = [w for w in old.get("warnings", []) if isinstance(w, str)] \
        if isinstance(old.get("warnings"), list) else []
    all_w = list(dict.fromkeys(old_w + warnings))
    if all_w:
        prov["warnings"] = all_w
    return prov


def _num(v: float | None) -> float | int | None:
    return int(v) if v is not None and float(v).is_integer() else v


def _report(spec_path: Path, target: str, plan: Plan, table: dict[int, dict[int, float]],
            session: VerifierSession, written: int, warnings: list[str],
            as_json: bool) -> None:
    from configspec_opt.loader import load_spec

    prov: dict[str, Any] = {}
    for t in load_spec(spec_path).spec.targets:
        if t.name == target and t.verifier is not None:
            prov = dict(t.verifier.provenance or {})
    if as_json:
        emit_json({
            "status": "ok", "target": target, "written_to": str(spec_path) if written else None,
            "server": session.info.server, "model": session.info.model,
            "api": session.info.api,
            "latency_s": {str(b): {str(k): v for k, v in r.items()} for b, r in table.items()},
            "observed_batch": {str(b): {str(k): v for k, v in r.items()}
                               for b, r in (prov.get("observed_batch") or {}).items()},
            "skipped": [f"b={b} K={k}" for b, k in plan.skipped],
            "warnings": warnings,
        })
        return
    ks = sorted({k for r in table.values() for k in r})
    tab = Table(title=f"T(b, K) of {target}: median ms (IQR/median) - {session.info.server}")
    tab.add_column("b", justify="right")
    for k in ks:
        tab.add_column(f"K={k}", justify="right")
    observed = prov.get("observed_batch") or {}
    if observed:
        tab.add_column("observed b", justify="right")
    spread = prov.get("spread") or {}
    for b in sorted(table):
        cells_txt = []
        for k in ks:
            s = (spread.get(b) or {}).get(k)
            cells_txt.append(f"{table[b][k] * 1e3:.1f}" + (f" ({s:.0%})" if s is not None
                                                           else ""))
        row = [str(b), *cells_txt]
        if observed:
            obs = [v for v in (observed.get(b) or {}).values() if v is not None]
            row.append(f"{sum(obs) / len(obs):.2f}" if obs else "-")
        tab.add_row(*row)
    out.print(tab)
    if plan.skipped:
        out.print(f"kept {len(plan.skipped)} cell(s) already measured (--force to redo)")
    out.print(f"wrote targets[{target}].verifier.latency_s -> {spec_path}" if written
              else "nothing new to measure", markup=False)
