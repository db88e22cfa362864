"""`configspec draft-client`: the device side of a split deployment ([docs/ship.md]).

The draft runs here (llama-cpp-python), the target on a remote server; the command an
export's `draft-client` format writes per pool (`profiler.draft_client`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from configspec_opt.cli.app import app, emit_json, err, out, require_extra, user_errors
from configspec_opt.cli.options import (
    ChatOpt,
    HttpTimeoutOpt,
    JsonOpt,
    NCtxOpt,
    PromptsOpt,
    RepackOpt,
    ThreadsOpt,
)
from configspec_opt.cli.profile import engine_settings
from configspec_opt.errors import ProfilerUnavailableError, UsageError
from configspec_opt.files import write_output


@app.command("draft-client")
def draft_client(
    server: Annotated[str, typer.Option(
        "--server", help="The verifier's URL: llama.cpp's llama-server, or an OpenAI-"
        "compatible server that echoes prompts with logprobs (vLLM).", show_default=False)],
    draft: Annotated[str, typer.Option(
        "--draft", help="The draft GGUF: a path, or pkg:<module>/<file>.", show_default=False)],
    k: Annotated[int, typer.Option("--k", help="Tokens drafted per round.", min=1, max=64,
                                   show_default=False)],
    prompt: Annotated[list[str] | None, typer.Option(
        "--prompt", help="A prompt to answer (repeatable; default: the bundled set).")] = None,
    prompts: PromptsOpt = None,
    n_prompts: Annotated[int, typer.Option(help="At most this many prompts from the file or "
                                           "the bundled set.", min=1)] = 4,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per answer.", min=1)] = 64,
    api: Annotated[str, typer.Option(
        help="auto (ask the server), llama (llama-server) or openai (echo + logprobs).")]
    = "auto",
    pool: Annotated[str | None, typer.Option(help="Label: the pool this device is in.")] = None,
    quant: Annotated[str | None, typer.Option(help="Label: the draft's quantisation.")] = None,
    metrics_file: Annotated[Path | None, typer.Option(
        "--metrics-file", help="Also write the counters here in Prometheus text form (the "
        "names llama-server uses for its own speculation).")] = None,
    chat: ChatOpt = None,
    threads: ThreadsOpt = 0,
    n_ctx: NCtxOpt = 2048,
    repack: RepackOpt = False,
    timeout: HttpTimeoutOpt = 120.0,
    as_json: JsonOpt = False,
) -> None:
    """Draft K tokens here, verify them on a remote server, greedily and losslessly.

    Prints each answer, then the counters (drafted, accepted, rounds) and the measured
    acceptance and goodput; --json prints them as JSON.

    Exit 0 done, 2 bad usage, 3 llama-cpp-python missing, 4 the draft file, the server or
    the metrics file is the problem (unreachable, another tokenizer, unwritable).
    """
    with user_errors(as_json):
        if api not in ("auto", "llama", "openai"):
            raise UsageError(f"--api {api!r}: use auto, llama or openai")
        require_extra(ProfilerUnavailableError, "`configspec draft-client`", "llama_cpp")
        from profiler.chat import render
        from profiler.draft_client import run_client
        from profiler.engine import Engine
        from profiler.http import HttpPolicy
        from profiler.paths import require_model_file, resolve_model_path
        from profiler.prompts import load_prompts

        texts = list(prompt) if prompt else [p.text for p in load_prompts(prompts, n_prompts)]
        path = require_model_file(resolve_model_path(draft, Path.cwd()), "--draft")
        labels = {key: v for key, v in (("pool", pool), ("quant", quant),
                                        ("draft", path.name)) if v}
        with Engine(path, engine_settings(threads, n_ctx, repack), what="--draft") as eng:
            rendered = [render(eng, t, chat=chat) for t in texts]
            if not as_json:
                err.print(f"draft-client: {path.name} K={k} -> {server}, {len(texts)} "
                          f"prompt(s) x {max_new_tokens} tokens")
            run = run_client(eng, server, k, rendered, max_new_tokens, api,
                             HttpPolicy(timeout_s=timeout), labels)
        if metrics_file is not None:
            write_output(metrics_file, run.prometheus())
        record = run.record()
    if as_json:
        emit_json(record)
        return
    for text in run.texts:
        out.print(text, markup=False, soft_wrap=True)
    c = record["counters"]
    out.print(f"api {run.api}: {c['rounds']} rounds, drafted {c['drafted']}, accepted "
              f"{c['accepted']} (alpha {record['alpha']:.3f}), {c['tokens']} tokens, goodput "
              f"{record['goodput_tok_s']:.1f} tok/s", markup=False, soft_wrap=True)
