"""report, export, import: the answer as an HTML page and as deployment files, and the
numbers of other tools (llama-bench, vLLM, llama.cpp) into a spec ([docs/ship.md])."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from configspec_opt.cli.app import app, emit_json, err, out, progress, user_errors, write_shown
from configspec_opt.cli.options import HttpTimeoutOpt, JsonOpt, time_limit_option
from configspec_opt.errors import UsageError
from configspec_opt.export import ExportFormat
from configspec_opt.spec import Spec

DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", help="Write nothing; print the change to the spec as a unified diff.")]
SpecArg = Annotated[Path, typer.Argument(help="The spec (YAML) to write the numbers into.",
                                         show_default=False)]


@app.command()
def report(
    spec: Annotated[Path, typer.Argument(help="Deployment spec (YAML or JSON).",
                                         show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="HTML file to write ('-': stdout). Default: SPEC-report.html "
        "in the current directory.")] = None,
    pareto: Annotated[bool, typer.Option(
        "--pareto/--no-pareto", help="Compute the goodput vs $/hour front (one solve per "
        "point).")] = True,
    points: Annotated[int, typer.Option(help="At most this many front points.", min=2)] = 20,
    time_limit: Annotated[float | None, time_limit_option(
        "Seconds for the solve, and again for the front.")] = None,
) -> None:
    """The answer as one self-contained HTML file, to attach to a pull request or a CI run.

    Assignment per pool, fleet metrics with the limits that bind, why each pool got what
    it got, the Pareto front of fleet goodput vs $/hour with the choice marked, the
    spec's SHA-256, the tool version and the solver's status and gap.

    Exit 0 written, 1 written but the spec has no feasible assignment (the report shows
    the diagnosis), 2 invalid spec, 3 no solver installed, 4 the file cannot be written.
    """
    from configspec_opt.files import write_output
    from configspec_opt.loader import load_spec
    from configspec_opt.report_html import build_report
    from configspec_opt.vcs.check import template_note

    with user_errors():
        from solvers.adapter import require_solver  # lazy: start-up

        require_solver()
        loaded = load_spec(spec)
        note = template_note(loaded, str(spec))
        if note:  # first; on stderr when the page itself goes to stdout
            (err if output is not None and str(output) == "-" else out).print(
                f"note: {note}", markup=False, soft_wrap=True)
        with progress.status("solving and computing the front for the report ..."):
            text, data = build_report(loaded, str(spec), pareto=pareto, points=points,
                                      time_limit=time_limit)
        if output is not None and str(output) == "-":
            sys.stdout.write(text)
        else:
            target = output or Path(f"{spec.stem}-report.html")
            if target.is_dir():
                raise UsageError(f"{target} is a directory: give a file name with -o")
            write_output(target, text)
            out.print(f"wrote {target} ({data['status']}, {len(text) // 1024} KiB)",
                      markup=False, soft_wrap=True)
    if data["status"] not in ("optimal", "feasible"):
        raise typer.Exit(1)


@app.command()
def export(
    source: Annotated[Path, typer.Argument(
        help="A spec (solved for its own objective) or its .lock (exported as written, "
        "no solver needed).", show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Directory to write into (created if missing).",
        show_default=False)],
    fmt: Annotated[ExportFormat, typer.Option(
        "--format", help="json, env or yaml (what each pool runs); draft-client, llama-server "
        "or vllm (per pool, the command that runs it); compose or kubernetes (the verifier "
        "replicas); k-policy (per pool, the best K for each band of verifier load and rtt).")
    ] = ExportFormat.json,
    as_json: JsonOpt = False,
) -> None:
    """Deployment files: what the devices of each pool run, and a fleet manifest.

    One file per pool (draft GGUF and quant as declared, K, target and endpoint, and the
    expected goodput, round time and energy per token to monitor against) plus a
    manifest (spec hash, solver status, objective, generation time, tool version).
    The ready-to-run formats write commands and manifests that start the plan's servers,
    each with its own manifest fleet.FORMAT.json.

    Exit 0 written, 1 no feasible assignment, 2 invalid spec, stale lock or -o not a
    directory, 3 no solver installed (for a spec), 4 a file that cannot be written.
    """
    from configspec_opt.export import load_decision
    from configspec_opt.exports import write

    with user_errors(as_json):
        with progress.status("solving for the export ..."):
            decision = load_decision(source)
        result = write(decision, fmt, output, _model_resolver(source))
    if as_json:
        emit_json({"status": "written", "directory": str(result.directory),
                   "manifest": str(result.manifest),
                   "files": [str(p) for p in result.files],
                   "removed": [str(p) for p in result.removed],
                   "from": result.manifest_data["from"],
                   "spec_sha256": result.manifest_data["spec"]["sha256"]})
        return
    for p in result.files:
        out.print(f"wrote {p}", markup=False, soft_wrap=True)
    out.print(f"wrote {result.manifest} (manifest: {decision.data['status']}, "
              f"{len(result.files)} pool files, from {decision.source_kind} "
              f"{decision.source_file})", markup=False, soft_wrap=True)
    for p in result.removed:
        out.print(f"removed {p} (listed by the previous export, no longer written)",
                  markup=False, soft_wrap=True)


@app.command("k-policy")
def k_policy_command(
    source: Annotated[Path, typer.Argument(
        help="A spec (solved for its own objective) or its .lock (read as written).",
        show_default=False)],
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Also draw the policies to this .png or .svg (needs matplotlib).",
        show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """The runtime K policy: per pool, the best K for each band of verifier load and rtt.

    Rows of rtt (0.5x to 3x the declared rtt), each with the load bands (requests in
    flight per verifier replica) and their switching points; `export --format k-policy`
    writes the same as JSON files ([docs/ship.md]).

    Exit 0 shown, 1 no feasible assignment, 2 invalid spec or stale lock, 3 no solver
    installed (for a spec).
    """
    from configspec_opt import k_policy
    from configspec_opt.export import load_decision

    with user_errors(as_json):
        with progress.status("solving for the policy ..."):
            decision = load_decision(source)
        found = k_policy.policies(decision.loaded.spec, decision.data)
        if plot is not None:
            from configspec_opt.cli.app import require_extra
            from configspec_opt.errors import PlotUnavailableError

            require_extra(PlotUnavailableError, "--plot", "matplotlib")
            from configspec_opt.plots.k_policy import render_policies

            render_policies(found, [plot])
    if as_json:
        emit_json({"kind": k_policy.POLICY_KIND, "format_version": k_policy.POLICY_VERSION,
                   "policies": [k_policy.document(p) for p in found]})
        return
    for p in found:
        for line in k_policy.table_lines(p):
            out.print(line, markup=False, soft_wrap=True)


def _model_resolver(source: Path) -> Any:
    """Model references as a command opens them here: spec-relative paths made absolute,
    `pkg:` resolved where the package is installed, URLs left to the operator (None)."""
    from profiler.errors import ModelFileError
    from profiler.paths import resolve_model_path

    base = source.resolve().parent

    def resolve(ref: str) -> str | None:
        if "://" in ref:
            return None
        try:
            return str(resolve_model_path(ref, base))
        except ModelFileError:
            return None
    return resolve


# --------------------------------------------------------------------------- import

import_app = typer.Typer(
    help="Write numbers other tools measured into a spec: llama-bench (v_d), vLLM's "
    "speculative-decoding counters and llama.cpp's speculative logs (alpha(K)).",
    no_args_is_help=True)
app.add_typer(import_app, name="import")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _draft_names(spec: Spec, draft: str, quants: list[str] | None) -> list[str]:
    found = next((d for d in spec.drafts if d.name == draft), None)
    if found is None:
        raise UsageError(f"unknown draft '{draft}' (known: "
                         f"{', '.join(d.name for d in spec.drafts)})")
    for q in quants or []:
        if q not in found.quants:
            raise UsageError(f"draft {draft} has no quant '{q}' (declared: "
                             f"{', '.join(found.quants)})")
    return list(quants or found.quants)


def _target_for(spec: Spec, draft: str, target: str | None) -> str:
    family = next(d.family for d in spec.drafts if d.name == draft)
    if target is not None:
        t = next((t for t in spec.targets if t.name == target), None)
        if t is None:
            raise UsageError(f"unknown target '{target}' (known: "
                             f"{', '.join(t.name for t in spec.targets)})")
        if t.family != family:
            raise UsageError(f"target {target} is of family {t.family}, draft {draft} of "
                             f"{family}: they never pair")
        return target
    same = [t.name for t in spec.targets if t.family == family]
    if len(same) != 1:
        raise UsageError(f"give --target: draft {draft} ({family}) pairs with "
                         + (", ".join(same) if same else "no target"))
    return same[0]


def _acceptance_keys(spec: Spec, draft: str, quants: list[str] | None,
                     devices: list[str] | None) -> list[tuple[str, str, str]]:
    """The existing profiles an acceptance import updates (acceptance belongs to the
    draft and the target, so by default every device that runs this draft)."""
    wanted_q = _draft_names(spec, draft, quants)
    known = [d.name for d in spec.devices]
    for d in devices or []:
        if d not in known:
            raise UsageError(f"unknown device '{d}' (known: {', '.join(known)})")
    keys = [(p.device, p.draft, p.quant) for p in spec.profiles
            if p.draft == draft and p.quant in wanted_q
            and (not devices or p.device in devices)]
    if devices:
        have = {k[0] for k in keys}
        missing = [d for d in devices if d not in have]
        if missing:
            raise UsageError(f"no profile of {draft} on {', '.join(missing)}: a profile "
                             "needs draft_tok_s first (`configspec import llama-bench` or "
                             "`configspec profile`)")
    if not keys:
        raise UsageError(f"no profile of draft {draft}"
                         + (f" ({', '.join(quants)})" if quants else "")
                         + " to write acceptance into: add one with `configspec import "
                         "llama-bench` or `configspec profile` first")
    return keys


def _warnings(spec: Path, updates: list[Any], written: Any, target: str | None) -> list[str]:
    """K values left from other sources, and tables whose K*alpha(K) falls (located in the
    file as written; by profile only on a dry run, where nothing is written)."""
    from configspec_opt.imports.writer import kept_warnings
    from configspec_opt.loader import load_spec
    from configspec_opt.usability import falling_message, implausible

    if target is None:
        return []
    found = kept_warnings(written.entries, target)
    if written.files:
        found += [w.format() for w in implausible(load_spec(spec), {u.key for u in updates},
                                                  {target})]
        return found
    for e in written.entries:
        table = (e.get("acceptance") or {}).get(target)
        if isinstance(table, dict) and "per_token" not in table:
            message = falling_message(target, {int(k): float(v) for k, v in table.items()})
            if message is not None:
                found.append(f"{'/'.join(str(e.get(k)) for k in ('device', 'draft', 'quant'))}"
                             f": {message}")
    return found


def _finish(spec: Path, updates: list[Any], dry_run: bool, as_json: bool,
            summary: dict[str, Any], target: str | None = None) -> None:
    from configspec_opt.imports.writer import apply

    written = apply(spec, updates, dry_run=dry_run)
    warnings = _warnings(spec, updates, written, target)
    if as_json:
        emit_json({"status": "dry-run" if dry_run else "written", "spec": str(spec),
                   **summary, "files": [str(p) for p in written.files],
                   "notes": written.notes, "warnings": warnings, "diff": written.diff,
                   "profiles": [{k: e.get(k) for k in ("device", "draft", "quant")}
                                for e in written.entries]})
        return
    for line in summary.get("lines", []):
        out.print(line, markup=False, soft_wrap=True)
    for note in written.notes:
        out.print(f"note: {note}", markup=False, soft_wrap=True)
    for warning in warnings:
        out.print(f"warning: {warning}", markup=False, soft_wrap=True)
    if dry_run:
        write_shown(written.diff or "no change\n")
        return
    if not written.files:
        out.print(f"{spec}: already up to date", markup=False, soft_wrap=True)
    for p in written.files:
        out.print(f"wrote {p}", markup=False, soft_wrap=True)


@import_app.command("llama-bench")
def import_llama_bench(
    file: Annotated[str, typer.Argument(help="llama-bench output (-o json or -o jsonl).",
                                        show_default=False)],
    spec: SpecArg,
    device: Annotated[str, typer.Option("--device", "-d", help="The pool it ran on.",
                                        show_default=False)],
    draft: Annotated[str | None, typer.Option(
        help="Draft name (default: the draft whose quants[].gguf has the benchmarked "
        "file's name).")] = None,
    quant: Annotated[str | None, typer.Option(help="Quant of that draft (see --draft).")]
    = None,
    model: Annotated[str | None, typer.Option(
        help="Only results whose model_filename contains this.")] = None,
    threads: Annotated[int | None, typer.Option(help="Only results with n_threads N.", min=1)]
    = None,
    n_gen: Annotated[int | None, typer.Option(help="Only the tg test of N tokens.", min=1)] = None,
    depth: Annotated[int | None, typer.Option(help="Only results at context depth N.", min=0)]
    = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """v_d (draft_tok_s) from llama-bench's text-generation test (its avg_ts).

    Creates the (device, draft, quant) profile if there is none. Exit 0 written, 2 invalid
    spec or ambiguous choice, 4 a file that is not llama-bench JSON.
    """
    from configspec_opt.imports import llama_bench
    from configspec_opt.imports.source import read_input
    from configspec_opt.imports.writer import ProfileUpdate, check_imported
    from configspec_opt.loader import load_spec

    with user_errors(as_json):
        loaded = load_spec(spec)
        s = loaded.spec
        if device not in [d.name for d in s.devices]:
            raise UsageError(f"unknown device '{device}' (known: "
                             f"{', '.join(d.name for d in s.devices)})")
        src = read_input(file)
        results = llama_bench.generation_results(llama_bench.parse(src), model=model,
                                                 threads=threads, n_gen=n_gen, depth=depth)
        if not results:
            raise UsageError(f"no text-generation result in {file} passes --model/--threads/"
                             "--n-gen/--depth")
        by_file: dict[str, list[tuple[str, str]]] = {}
        for d in s.drafts:
            for qname, q in d.quants.items():
                if q.gguf:
                    by_file.setdefault(Path(q.gguf).name, []).append((d.name, qname))
        if (draft is None) != (quant is None):
            raise UsageError("give both --draft and --quant, or neither (then the "
                             "benchmarked file's name picks them)")
        if draft is None or quant is None:
            matched = {m for r in results for m in by_file.get(r.model_basename, [])}
            if len(matched) != 1:
                names = sorted({r.model_basename[:80] for r in results})
                more = f" and {len(names) - 5:,} more" if len(names) > 5 else ""
                raise UsageError(
                    f"cannot tell which draft {', '.join(names[:5])}{more} is: "
                    + ("no quants[].gguf of the spec has that file name"
                       if not matched else f"it matches {sorted(matched)}")
                    + "; give --draft and --quant")
            draft, quant = matched.pop()
        _draft_names(s, draft, [quant])
        declared = next(d for d in s.drafts if d.name == draft).quants[quant].gguf
        if declared and any(r.model_basename == Path(declared).name for r in results):
            results = [r for r in results if r.model_basename == Path(declared).name]
        if len(results) > 1:
            raise UsageError("several text-generation results fit: "
                             + llama_bench.listed(results)
                             + " (narrow with --model, --threads, --n-gen or --depth)")
        r = results[0]
        record = {**r.provenance(src), "imported_at": _now()}
        v_d = round(r.avg_ts, 2)
        update = ProfileUpdate(device, draft, quant, draft_tok_s=v_d,
                               provenance={"draft_tok_s": record})
        check_imported(update, src.name, r.line)
        _finish(spec, [update], dry_run, as_json, {
            "draft_tok_s": v_d, "result": r.describe(),
            "lines": [f"{device} {draft} {quant}: draft_tok_s {v_d} from {r.describe()}"]})


# What the acceptance imports share: which profiles of the draft receive alpha(K).
QuantsOpt = Annotated[list[str] | None, typer.Option(
    help="Only profiles of this quant (repeatable; default: every quant).")]
PoolsOpt = Annotated[list[str] | None, typer.Option(
    "--device", "-d", help="Only these pools (repeatable; default: every pool with a "
    "profile of the draft).")]
TargetOpt = Annotated[str | None, typer.Option(
    help="Target name in the spec (default: the one target of the draft's family).")]
ReplaceOpt = Annotated[bool, typer.Option(
    "--replace", help="The target's tables keep only the K values this import measured "
    "(default: other K values stay, and the command warns which and from where).")]


@import_app.command("vllm-metrics")
def import_vllm_metrics(
    source: Annotated[str, typer.Argument(
        help="The server's /metrics URL (vLLM: http://host:8000/metrics; llama-server "
        "with --metrics) or a saved scrape.",
        show_default=False)],
    spec: SpecArg,
    draft: Annotated[str, typer.Option(help="The draft model vLLM ran.", show_default=False)],
    quant: QuantsOpt = None,
    device: PoolsOpt = None,
    target: TargetOpt = None,
    model_name: Annotated[str | None, typer.Option(
        help="The model_name label to read, when the server counts several.")] = None,
    baseline: Annotated[str | None, typer.Option(
        help="An earlier scrape (file or URL) to subtract: only the traffic since.")] = None,
    timeout: HttpTimeoutOpt = 10.0,
    full_accept: Annotated[bool, typer.Option(
        "--full-accept/--no-full-accept", help="Also write full_accept (fraction of rounds "
        "accepting all K).")] = True,
    replace: ReplaceOpt = False,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """alpha(K) for K = 1..the server's K from vLLM's per-position acceptance counters.

    Reads vLLM's vllm:spec_decode_* counters and llama-server's identical llamacpp:spec_decode_*
    ones; acceptance belongs to the draft and the target, so every pool's profile of the
    draft is updated unless --device/--quant narrow it.

    Exit 0 written, 2 invalid spec or ambiguous choice, 4 unreachable URL, not vLLM's
    speculative-decoding counters, or counts no server reports.
    """
    from configspec_opt.imports import vllm_metrics
    from configspec_opt.imports.source import read_input
    from configspec_opt.imports.writer import ProfileUpdate, check_imported
    from configspec_opt.loader import load_spec

    with user_errors(as_json):
        s = load_spec(spec).spec
        keys = _acceptance_keys(s, draft, quant, device)
        tname = _target_for(s, draft, target)
        src = read_input(source, timeout_s=timeout)
        counters = vllm_metrics.counters(vllm_metrics.parse_exposition(src), src, model_name)
        base = None
        if baseline is not None:
            base = read_input(baseline, timeout_s=timeout)
            counters = counters.minus(vllm_metrics.counters(
                vllm_metrics.parse_exposition(base), base, counters.model_name))
        acc = vllm_metrics.acceptance(counters, src, base)
        record = {**acc.record, "imported_at": _now()}
        updates = [ProfileUpdate(*k, acceptance={tname: acc.alpha},
                                 full_accept={tname: acc.full_accept} if full_accept else {},
                                 provenance={"acceptance": {tname: record}}, replace=replace)
                   for k in keys]
        check_imported(updates[0], src.name)
        ks = f"K=1..{max(acc.alpha)}"
        lines = [f"{tname}: alpha({ks}) = "
                 + ", ".join(f"{v:.4g}" for v in acc.alpha.values())
                 + f" over {counters.drafts:,.0f} draft rounds",
                 *(f"  into {d} {m} {q}" for d, m, q in keys)]
        if "note" in record:
            lines.append(f"note: {record['note']}")
        _finish(spec, updates, dry_run, as_json,
                {"target": tname, "alpha": acc.alpha, "full_accept": acc.full_accept,
                 "draft_rounds": counters.drafts, "lines": lines}, tname)


@import_app.command("llama-spec")
def import_llama_spec(
    log: Annotated[str, typer.Argument(
        help="Log of llama-speculative / llama-speculative-simple or of llama-server.",
        show_default=False)],
    spec: SpecArg,
    draft: Annotated[str, typer.Option(help="The draft model it ran.", show_default=False)],
    quant: QuantsOpt = None,
    device: PoolsOpt = None,
    target: TargetOpt = None,
    k: Annotated[int | None, typer.Option(
        "--k", help="K it drafted (required for a llama-server log; checked against "
        "n_draft otherwise).", min=1, max=64)] = None,
    replace: ReplaceOpt = False,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """alpha(K) at the K it ran with, from llama.cpp's n_drafted / n_accept statistics.

    Exit 0 written, 2 invalid spec or missing --k, 4 a log without those statistics or
    with impossible ones (the line named).
    """
    from configspec_opt.imports import llama_spec
    from configspec_opt.imports.source import read_input
    from configspec_opt.imports.writer import ProfileUpdate, check_imported
    from configspec_opt.loader import load_spec

    with user_errors(as_json):
        s = load_spec(spec).spec
        keys = _acceptance_keys(s, draft, quant, device)
        tname = _target_for(s, draft, target)
        src = read_input(log)
        stats = llama_spec.parse(src, k)
        alpha = round(stats.alpha, 4)
        record = {**stats.record(src), "imported_at": _now()}
        updates = [ProfileUpdate(*key, acceptance={tname: {stats.k: alpha}},
                                 provenance={"acceptance": {tname: record}}, replace=replace)
                   for key in keys]
        check_imported(updates[0], src.name, stats.k_line)
        lines = [f"{tname}: alpha({stats.k}) = {alpha:.4g} ({stats.accepted} accepted / "
                 f"{stats.drafted} drafted)", *(f"  into {d} {m} {q}" for d, m, q in keys)]
        _finish(spec, updates, dry_run, as_json,
                {"target": tname, "k": stats.k, "alpha": alpha, "lines": lines}, tname)
