"""`configspec profile` and `configspec quantize`: measure on this device, write into the spec.

llama-cpp-python and the `profiler` package are imported inside the
commands only, so `configspec validate` works where they are not installed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from configspec_opt.cli.app import app, emit_json, err, out, require_extra, user_errors
from configspec_opt.cli.options import (
    MAX_TIME_LIMIT_S,
    Bounds,
    ChatOpt,
    HttpTimeoutOpt,
    JsonOpt,
    NCtxOpt,
    PowerOpt,
    PromptsOpt,
    RepackOpt,
    SeedOpt,
    ThreadsOpt,
)
from configspec_opt.errors import ProfilerUnavailableError, UsageError
from configspec_opt.spec import Profile

if TYPE_CHECKING:
    from profiler.power import PowerSource


class CtrlC:
    """Ctrl-C that a ctypes callback swallowed, raised again at the next safe point.

    llama-cpp-python logs through a Python function that llama.cpp calls from C; a
    KeyboardInterrupt raised while it runs is printed ("Exception ignored on calling
    ctypes callback function") and dropped, and `profile` went on to measure and write
    the next variant.  The handler records the interrupt as well, and `check` (each
    progress tick, and before each write) raises it again where Python can.
    """

    def __init__(self) -> None:
        self.pending = False

    def handler(self, signum: int, frame: object) -> None:
        """The SIGINT handler: note it, then interrupt as Python's default does."""
        self.pending = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise an interrupt that arrived but did not stop the run."""
        if self.pending:
            raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_kept() -> Iterator[CtrlC]:
    """`CtrlC`'s handler for the block (main thread only; elsewhere a no-op check)."""
    ctrl_c = CtrlC()
    if threading.current_thread() is not threading.main_thread():
        yield ctrl_c
        return
    previous = signal.signal(signal.SIGINT, ctrl_c.handler)
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, previous)


class RichReporter:
    """Progress bars with ETA on stderr; warnings printed as they happen.

    `check` runs at each tick (`CtrlC.check`: an interrupt a C callback swallowed).
    """

    def __init__(self, quiet: bool = False, check: Callable[[], None] | None = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=err, transient=False, disable=quiet)
        self._task: TaskID | None = None
        self.warnings: list[str] = []
        self._check = check

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, description: str, total: int) -> None:
        """Open a progress bar for a step of `total` units."""
        self._task = self.progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        """Move the current bar on; ignored between steps."""
        if self._check is not None:
            self._check()
        if self._task is not None:
            self.progress.advance(self._task, n)

    def finish(self) -> None:
        """End the current step; its bar stays on screen."""
        self._task = None

    def warn(self, message: str) -> None:
        """Print a warning above the bars and keep it for the summary."""
        self.warnings.append(message)
        self.progress.console.print(f"[yellow]warning:[/yellow] {escape(message)}", markup=True,
                                    highlight=False)


def engine_settings(threads: int, n_ctx: int, repack: bool) -> Any:
    """The llama.cpp engine options from the CLI flags (imported late: the profiler is optional)."""
    from profiler.engine import EngineSettings

    return EngineSettings(n_ctx=n_ctx, n_threads=threads, repack=repack)


def choose_power(name: str, warn: Any) -> tuple[PowerSource | None, dict[str, Any]]:
    """The power source, and what provenance says when there is none."""
    from profiler.power import discover, make_source

    if name != "auto":
        src = make_source(name)
        return src, {"source": None, "note": "disabled with --power none"}
    src, tried = discover()
    if src is None:
        for t in tried:
            if "permission" in t.lower():
                warn(t)
        return None, {"source": None, "note": "no power source on this machine: energy "
                      "unavailable (no value written)", "tried": tried}
    return src, {}


def _existing_out_profiles(path: Path | None) -> list[Profile]:
    if path is None or not path.exists():
        return []
    from configspec_opt.loader import Source, parse_data
    from configspec_opt.spec_files import FileRefused, read_text_file

    try:
        text = read_text_file(path)
    except FileRefused as exc:
        raise UsageError(f"--out {path}: {exc}") from None
    data = parse_data(Source(str(path), text))
    if isinstance(data, dict):
        data = data.get("profiles", [])
    try:
        return TypeAdapter(list[Profile]).validate_python(data or [])
    except ValidationError as exc:
        raise UsageError(f"--out {path}: not a profile file ({exc.error_count()} errors)") from None


def _merge(new: dict[str, Any], old: Profile | None) -> dict[str, Any]:
    """Keep acceptance for targets not measured this time."""
    if old is None:
        return new
    acc = {t: (a.model_dump() if hasattr(a, "model_dump") else dict(a))
           for t, a in old.acceptance.items() if t not in new["acceptance"]}
    new["acceptance"] = {**acc, **new["acceptance"]}
    return new


@app.command()
def profile(
    spec: Annotated[Path, typer.Argument(help="Deployment spec (YAML) to measure for.")],
    device: Annotated[str, typer.Option("--device", "-d", help="The device pool this machine "
                                        "is (profiles are written for it).")],
    target: Annotated[list[str] | None, typer.Option(
        "--target", "-t", help="Only these targets (repeatable); default: every target "
        "with a gguf or endpoint.")] = None,
    drafts: Annotated[list[str] | None, typer.Option(
        "--drafts", help="Only these drafts: NAME or NAME:QUANT (repeatable, comma lists).")]
    = None,
    k: Annotated[str | None, typer.Option("--k", help="K values: 2..10, 2,4,8 or 5 "
                                          "(default: the spec's search.k).")] = None,
    prompts: PromptsOpt = None,
    n_prompts: Annotated[int, typer.Option(help="How many prompts to use (per class with "
                                           "--classes).", min=1)] = 16,
    classes: Annotated[str | None, typer.Option(
        "--classes", help="Profile on the bundled prompt classes, e.g. chat,code: alpha is "
        "then also written per class (acceptance_by_class), for a workload mix.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Target tokens per prompt.", min=2)] = 64,
    repeats: Annotated[int, typer.Option(help="Timed passes for v_d (first also gives alpha).",
                                         min=1)] = 3,
    temperature: Annotated[float, typer.Option(
        help="0: greedy acceptance; >0: sampled acceptance sum min(p, q) (local target).",
        parser=Bounds(min=0))] = 0.0,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
    n_ctx: NCtxOpt = 2048,
    repack: RepackOpt = False,
    chat: ChatOpt = None,
    power: PowerOpt = "auto",
    idle_s: Annotated[float, typer.Option(
        help="Seconds of idle power baseline.",
        parser=Bounds(min=0, max=MAX_TIME_LIMIT_S, unit="seconds"))] = 2.0,
    verify_latency: Annotated[bool, typer.Option(
        "--verify-latency", help="Also time T_verify(K) (and the RTT of a remote target).")]
    = False,
    max_spread: Annotated[float, typer.Option(
        help="Warn when v_d repeats differ by more than this fraction.",
        parser=Bounds(min=0))] = 0.15,
    force: Annotated[bool, typer.Option(help="Re-measure entries that already exist.")] = False,
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="Write profiles to this file instead of the spec.")] = None,
    push: Annotated[str | None, typer.Option(
        help="Also POST the profiles to this configspec service URL.")] = None,
    timeout: HttpTimeoutOpt = 120.0,
    retries: Annotated[int, typer.Option(help="HTTP retries.", min=0)] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Measure v_d, alpha(K) and power of the drafts that fit DEVICE; write them into SPEC."""
    with user_errors(as_json):
        if classes is not None and prompts is not None:
            raise UsageError("give --prompts FILE (its lines may carry a 'class') or "
                             "--classes, not both")
        _profile(spec, device, target, drafts, k, (prompts if classes is None else classes),
                 n_prompts, max_new_tokens, repeats,
                 temperature, seed, threads, n_ctx, repack, chat, power, idle_s,
                 verify_latency, max_spread, force, out_file, push, timeout, retries, as_json)


def _profile(spec_path: Path, device: str, target: list[str] | None, drafts: list[str] | None,
             k: str | None, prompts_file: Path | str | None, n_prompts: int,
             max_new_tokens: int,
             repeats: int, temperature: float, seed: int, threads: int, n_ctx: int,
             repack: bool, chat: bool | None, power: str, idle_s: float, verify: bool,
             max_spread: float, force: bool, out_file: Path | None, push: str | None,
             timeout: float, retries: int, as_json: bool) -> None:
    require_extra(ProfilerUnavailableError, "`configspec profile`", "llama_cpp")
    from configspec_opt.loader import load_spec
    from profiler.http import HttpPolicy
    from profiler.plan import (
        already_measured,
        find_device,
        parse_draft_filter,
        parse_k,
        plan_targets,
        plan_variants,
    )
    from profiler.prompts import class_prompts, load_prompts
    from profiler.push import push_profiles
    from profiler.run import ProfileSession, RunOptions, summarize_entry
    from profiler.targets import Sampling
    from profiler.writeback import write_profiles

    loaded = load_spec(spec_path)
    spec = loaded.spec
    base = spec_path.parent
    dev = find_device(spec, device)
    ks = parse_k(k, spec.search.k.values())
    variants, skipped = plan_variants(spec, dev, base, parse_draft_filter(drafts))
    targets = plan_targets(spec, base, target)
    if isinstance(prompts_file, str):  # --classes
        prompt_list = class_prompts([c.strip() for c in prompts_file.split(",") if c.strip()],
                                    n_prompts)
        source = f"bundled classes {prompts_file}"
    else:
        prompt_list = load_prompts(prompts_file, n_prompts)
        source = str(prompts_file or "bundled")
    existing = list(spec.profiles) + _existing_out_profiles(out_file)
    opts = RunOptions(
        ks=ks, prompts=prompt_list, prompts_source=source,
        max_new_tokens=max_new_tokens, repeats=repeats,
        sampling=Sampling(temperature, seed),
        settings=engine_settings(threads, n_ctx, repack), chat=chat, idle_s=idle_s,
        verify=verify, max_spread=max_spread,
        http=HttpPolicy(timeout_s=timeout, retries=retries))

    measured: list[dict[str, Any]] = []
    skipped_existing: list[str] = []
    with ctrl_c_kept() as ctrl_c, RichReporter(quiet=as_json, check=ctrl_c.check) as rep:
        src, note = choose_power(power, rep.warn)
        session = ProfileSession(dev.name, opts, rep, src, note)
        try:
            for v in variants:
                view = spec.model_copy(update={"profiles": existing})
                old = already_measured(view, dev.name, v, targets, ks, temperature)
                if old is not None and not force:
                    skipped_existing.append(v.label)
                    continue
                prior = next((p for p in existing if (p.device, p.draft, p.quant)
                              == (dev.name, v.draft, v.quant)), None)
                entry = _merge(session.measure(v, targets), prior)
                ctrl_c.check()
                with _sigint_deferred():  # written and counted together, or neither
                    where = write_profiles(spec_path, [entry], out_file)
                    measured.append(entry)
                if not as_json:
                    rep.progress.console.print(f"wrote {v.label} -> {where}")
        except KeyboardInterrupt:
            err.print(f"interrupted: {len(measured)} profile(s) written; the spec is valid")
            raise typer.Exit(130) from None
        finally:
            session.close()

    pushed = None
    if push and measured:
        pushed = push_profiles(push, measured, HttpPolicy(timeout_s=timeout, retries=retries))
    summary = {
        "status": "ok", "device": dev.name,
        "written_to": str(out_file or spec_path) if measured else None,
        "measured": [summarize_entry(e) for e in measured],
        "skipped_existing": skipped_existing, "skipped": skipped,
        "warnings": rep.warnings, "pushed": push if push and measured else None,
        "push_response": pushed,
        "power_source": src.name if src is not None else None,
    }
    if as_json:
        emit_json(summary)
        return
    _print_summary(summary, ks)


def _print_summary(summary: dict[str, Any], ks: list[int]) -> None:
    table = Table(title=f"profiles for {summary['device']}")
    table.add_column("draft")
    table.add_column("quant")
    table.add_column("v_d tok/s", justify="right")
    table.add_column("spread", justify="right")
    table.add_column("P W", justify="right")
    table.add_column("target")
    for k in ks:
        table.add_column(f"a({k})", justify="right")
    for m in summary["measured"]:
        for tname, acc in m["acceptance"].items():
            table.add_row(m["draft"], m["quant"], f"{m['draft_tok_s']:.1f}",
                          f"{(m['draft_tok_s_spread'] or 0):.0%}",
                          "-" if m["power_w"] is None else f"{m['power_w']:.1f}", tname,
                          *[f"{acc.get(k, float('nan')):.2f}" for k in ks])
            for cls, per in m["acceptance_by_class"].items():  # how alpha differs by class
                by_k = per.get(tname) or {}
                table.add_row("", "", "", "", "", f"  {tname} [{cls}]",
                              *[f"{by_k.get(k, float('nan')):.2f}" for k in ks])
    out.print(table)
    for m in summary["measured"]:
        for tname, fit in m["verify"].items():
            out.print(f"T_verify for {tname} from here: {fit['verify_latency_s']:.4f} s + "
                      f"{fit['verify_latency_per_token_s']:.5f} s * K"
                      + (f", RTT {fit['rtt_s'] * 1e3:.1f} ms" if "rtt_s" in fit else "")
                      + " (targets[].verify_latency_s / verify_latency_per_token_s, "
                      "devices[].rtt_s)", markup=False)
    for s in summary["skipped_existing"]:
        out.print(f"skipped {s}: already measured (--force to redo)")
    for s in summary["skipped"]:
        out.print(f"not measured: {s}")
    if summary["power_source"] is None:
        out.print("power: no source here, energy left unavailable")


@app.command()
def quantize(
    source: Annotated[str, typer.Argument(help="GGUF to quantise (path or pkg:module/file).")],
    ftype: Annotated[str, typer.Argument(help="Q4_0, Q8_0, Q3_K_S, ...")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    threads: Annotated[int, typer.Option(help="Threads (0: all cores).", min=0)] = 0,
) -> None:
    """Make a draft variant with llama.cpp's quantiser (re-quantising is allowed)."""
    with user_errors(False):
        require_extra(ProfilerUnavailableError, "`configspec quantize`", "llama_cpp")
        from profiler.paths import resolve_model_path
        from profiler.quantize import quantize as run_quantize

        src = resolve_model_path(source, Path(os.getcwd()))
        dst = run_quantize(src, output, ftype, threads)
        out.print(f"wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB)")


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, so "N profile(s) written" counts what is on disk."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
