"""`configspec trial`: run real speculative decoding and show the model's error, per K."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from configspec_opt.cli.app import app, emit_json, err, out, require_extra, user_errors
from configspec_opt.cli.options import (
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
from configspec_opt.cli.profile import choose_power, engine_settings
from configspec_opt.errors import PlotUnavailableError, ProfilerUnavailableError, UsageError
from configspec_opt.files import write_output
from configspec_opt.spec import Profile, Spec, Target


def _pick_target(spec: Spec, family: str, name: str | None) -> Target:
    if name:
        for t in spec.targets:
            if t.name == name:
                return t
        raise UsageError(f"unknown target '{name}' (known: "
                         f"{', '.join(t.name for t in spec.targets)})")
    for t in spec.targets:
        if t.family == family and (t.gguf or t.endpoint):
            return t
    raise UsageError(f"no target of family '{family}' with a gguf or an endpoint")


def _profile_for(spec: Spec, device: str, draft: str, quant: str) -> Profile | None:
    key = (device, draft, quant)
    return next((p for p in spec.profiles if (p.device, p.draft, p.quant) == key), None)


@app.command()
def trial(
    spec: Annotated[Path, typer.Argument(help="Deployment spec (YAML or JSON).")],
    device: Annotated[str, typer.Option("--device", "-d", help="The device pool this is.")],
    draft: Annotated[str, typer.Option("--draft", help="Draft model name.")],
    quant: Annotated[str, typer.Option("--quant", help="Draft quantisation.")],
    k: Annotated[str | None, typer.Option("--k", help="K, or a sweep: 2..10, 2,4,8 "
                                          "(default: the spec's search.k).")] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Target name (default: "
                                               "the first of the draft's family).")] = None,
    prompts: PromptsOpt = None,
    n_prompts: Annotated[int, typer.Option(help="How many prompts.", min=1)] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per prompt.", min=2)] = 64,
    temperature: Annotated[float, typer.Option(
        help="0: greedy verification (checked lossless); >0: rejection sampling (local).",
        parser=Bounds(min=0))] = 0.0,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
    n_ctx: NCtxOpt = 2048,
    repack: RepackOpt = False,
    chat: ChatOpt = None,
    power: PowerOpt = "auto",
    plot: Annotated[Path | None, typer.Option(
        help="Also draw measured and predicted goodput vs K (PNG or SVG).")] = None,
    timeout: HttpTimeoutOpt = 120.0,
    as_json: JsonOpt = False,
) -> None:
    """Run speculative decoding for real and compare it with Eq. 1-3's prediction."""
    with user_errors(as_json):
        require_extra(ProfilerUnavailableError, "`configspec trial`", "llama_cpp")
        if plot is not None:  # before the run, not after it
            require_extra(PlotUnavailableError, "--plot", "matplotlib")
        report = _trial(spec, device, draft, quant, k, target, prompts, n_prompts,
                        max_new_tokens, temperature, seed, threads, n_ctx, repack, chat, power,
                        timeout)
        if plot is not None:
            _plot(report, plot)
        if as_json:
            emit_json(report)
        else:
            _print(report)


def _trial(spec_path: Path, device: str, draft: str, quant: str, k: str | None,
           target_name: str | None, prompts_file: Path | None, n_prompts: int,
           max_new_tokens: int, temperature: float, seed: int, threads: int, n_ctx: int,
           repack: bool, chat: bool | None, power: str, timeout: float) -> dict[str, Any]:
    from configspec_opt.loader import load_spec
    from profiler.chat import render
    from profiler.engine import Engine
    from profiler.http import HttpPolicy
    from profiler.paths import require_model_file, resolve_model_path
    from profiler.plan import find_device, parse_k
    from profiler.prompts import load_prompts
    from profiler.push import jsonable
    from profiler.targets import LocalTarget, RemoteTarget, Sampling
    from profiler.trial import TrialSetup, attach_predictions, fit_verify, run_local, run_remote

    loaded = load_spec(spec_path)
    spec = loaded.spec
    base = spec_path.parent
    dev = find_device(spec, device)
    d = next((x for x in spec.drafts if x.name == draft), None)
    if d is None:
        raise UsageError(f"unknown draft '{draft}' (known: "
                         f"{', '.join(x.name for x in spec.drafts)})")
    q = d.quants.get(quant)
    if q is None or not q.gguf:
        raise UsageError(f"draft '{draft}' has no quant '{quant}' with a gguf path "
                         f"(quants: {', '.join(d.quants)})")
    tgt = _pick_target(spec, d.family, target_name)
    ks = parse_k(k, spec.search.k.values())
    sampling = Sampling(temperature, seed)
    settings = engine_settings(threads, n_ctx, repack)
    profile = _profile_for(spec, dev.name, draft, quant)
    warnings: list[str] = []
    if profile is None:
        warnings.append(f"no profile for {dev.name}/{draft}/{quant}: run `configspec profile` "
                        "first; predictions are unavailable")
    src, _ = choose_power(power, warnings.append)
    texts = [p.text for p in load_prompts(prompts_file, n_prompts)]
    draft_path = require_model_file(resolve_model_path(q.gguf, base), f"draft '{draft}' {quant}")
    with Engine(draft_path, settings, what=f"draft '{draft}' {quant}") as deng:
        if tgt.gguf:
            tpath = require_model_file(resolve_model_path(tgt.gguf, base), f"target '{tgt.name}'")
            with Engine(tpath, settings, what=f"target '{tgt.name}'") as teng:
                LocalTarget(tgt.name, teng, "-").check_tokenizer(deng)
                setup = TrialSetup(ks, [render(teng, t, chat=chat) for t in texts],
                                   max_new_tokens, sampling, dev.rtt_s)
                err.print(f"trial: {draft} {quant} -> {tgt.name} (local), K={ks[0]}..{ks[-1]}, "
                          f"{len(texts)} prompts x {max_new_tokens} tokens")
                results, info = run_local(deng, teng, setup, src)
        else:
            if not sampling.greedy:
                raise UsageError("sampled verification needs the target's full distribution: "
                                 "use a local target GGUF for --temperature > 0")
            assert tgt.endpoint is not None
            remote = RemoteTarget(tgt.name, tgt.endpoint, HttpPolicy(timeout_s=timeout))
            remote.check_tokenizer(deng)
            setup = TrialSetup(ks, [render(deng, t, chat=chat) for t in texts],
                               max_new_tokens, sampling, dev.rtt_s)
            results, info = run_remote(deng, remote, setup)
    # a remote target's network time is inside the measured T_verify already
    attach_predictions(results, profile, tgt.name, dev.rtt_s if tgt.gguf else 0.0, len(texts))
    report: dict[str, Any] = jsonable({
        "status": "ok", "spec": str(spec_path), "device": dev.name, "draft": draft,
        "quant": quant, "target": tgt.name, "target_info": info,
        "temperature": temperature, "prompts": len(texts), "max_new_tokens": max_new_tokens,
        "threads": settings.resolved_threads(), "power_source": src.name if src else None,
        "profile": None if profile is None else {
            "draft_tok_s": profile.draft_tok_s, "power_w": profile.power_w,
            "measured_at": (profile.provenance or {}).get("measured_at")},
        "verify_fit": fit_verify(results),
        "results": [r.record() for r in results],
        "lossless": all(r.lossless is not False for r in results),
        "warnings": warnings,
    })
    return report


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1%}"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _print(report: dict[str, Any]) -> None:
    t = Table(title=f"trial {report['draft']} {report['quant']} -> {report['target']} on "
              f"{report['device']} ({report['prompts']} prompts x {report['max_new_tokens']} "
              "tokens)")
    for col in ("K", "a meas", "a pred", "G meas", "G pred", "err", "G ext", "err ext",
                "draft ms", "verify ms", "over ms", "lossless"):
        t.add_column(col, justify="right")
    for r in report["results"]:
        m, p, e = r["measured"], r["predicted"], r["error"]
        t.add_row(str(r["k"]), f"{m['alpha']:.3f}", _num(p["alpha"], ".3f"),
                  f"{m['goodput_tok_s']:.1f}", _num(p["goodput_tok_s"], ".1f"),
                  _pct(e["goodput"]), _num(p["goodput_extended_tok_s"], ".1f"),
                  _pct(e["goodput_extended"]), f"{m['draft_s'] * 1e3:.1f}",
                  f"{m['verify_s'] * 1e3:.1f}", f"{m['overhead_s'] * 1e3:.2f}",
                  {True: "yes", False: "NO", None: "n/a"}[r["lossless"]])
    out.print(t)
    info = report["target_info"]
    if "plain_target_tok_s" in info:
        out.print(f"plain target decoding: {info['plain_target_tok_s']:.1f} tok/s")
    fit = report["verify_fit"]
    out.print(f"measured T_verify(K) = {fit['verify_latency_s']:.4f} s + "
              f"{fit['verify_latency_per_token_s']:.5f} s * K  (spec: verify_latency_s, "
              "verify_latency_per_token_s)")
    for r in report["results"]:
        for d in r["divergence"]:
            out.print(f"K={r['k']}: {d}", markup=False)
    for w in report["warnings"]:
        out.print(f"warning: {w}", markup=False)


def _plot(report: dict[str, Any], path: Path) -> None:
    require_extra(PlotUnavailableError, "--plot", "matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ks = [r["k"] for r in report["results"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, [r["measured"]["goodput_tok_s"] for r in report["results"]], "o-",
            label="measured")
    for key, label, style in (("goodput_tok_s", "predicted (Eq. 1)", "s--"),
                              ("goodput_extended_tok_s", "predicted, extended", "^:")):
        ys = [r["predicted"][key] for r in report["results"]]
        if all(y is not None for y in ys):
            ax.plot(ks, ys, style, label=label)
    ax.set_xlabel("speculative length K")
    ax.set_ylabel("goodput (tok/s)")
    ax.set_title(f"{report['draft']} {report['quant']} -> {report['target']} "
                 f"({report['device']})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lower()[1:] or "png")
    plt.close(fig)
    write_output(path, buf.getvalue())
