"""T_verify(K): time one verification of K drafted tokens, locally or over HTTP.

Locally: the target decodes [x, d_1..d_K] in one batch after a prompt, then
rolls back, repeated; remotely: one echo+logprobs completion request of
the same shape, and the network round trip as a cheap GET.  A least-squares
line T(K) = a + b*K gives the spec's `verify_latency_s` and
`verify_latency_per_token_s`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from profiler.engine import Engine
from profiler.http import request_json
from profiler.targets import RemoteTarget, TargetSequence


def fit_line(ks: Sequence[int], secs: Sequence[float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line, slope clipped at 0."""
    if len(ks) < 2:
        return (secs[0] if secs else 0.0), 0.0
    mk, ms = statistics.fmean(ks), statistics.fmean(secs)
    var = sum((k - mk) ** 2 for k in ks)
    cov = sum((k - mk) * (s - ms) for k, s in zip(ks, secs, strict=True))
    slope = max(0.0, cov / var) if var else 0.0
    return max(0.0, ms - slope * mk), slope


def local_verify_latency(target: Engine, seq: TargetSequence, ks: Sequence[int],
                         repeats: int = 5) -> dict[int, float]:
    """Median seconds of one batched verification of K tokens, per K."""
    target.reset()
    target.feed(seq.prompt_tokens)
    base = target.n_past
    filler = (seq.tokens * (max(ks) // max(len(seq.tokens), 1) + 2))[: max(ks) + 1]
    out: dict[int, float] = {}
    for k in ks:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            rows = target.feed_all(filler[: k + 1])
            rows.argmax(axis=1)
            times.append(time.perf_counter() - t0)
            target.rollback(base)
        out[k] = statistics.median(times)
    return out


def remote_verify_latency(remote: RemoteTarget, draft: Engine, seq: TargetSequence,
                          ks: Sequence[int], repeats: int = 3) -> tuple[dict[int, float], float]:
    """Median seconds of one echo+logprobs verification request per K, and the RTT."""
    out: dict[int, float] = {}
    for k in ks:
        text = seq.prompt_text + draft.detokenize(seq.tokens[:k]).decode("utf-8", "ignore")
        times = [remote.complete(text, max_tokens=1, echo=True, logprobs=1)[1]
                 for _ in range(repeats)]
        out[k] = statistics.median(times)
    rtts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        request_json("GET", remote.base_url + "/v1/models", None, remote.policy)
        rtts.append(time.perf_counter() - t0)
    return out, statistics.median(rtts)


def record(latency: dict[int, float], rtt_s: float | None = None) -> dict[str, Any]:
    """Verification latency per K (s) and its straight-line fit, as provenance keeps them.

    The fit's intercept and slope are the spec's `verify_latency_s` and
    `verify_latency_per_token_s`; `rtt_s` is recorded for a remote target.
    """
    a, b = fit_line(list(latency), list(latency.values()))
    rec: dict[str, Any] = {
        "latency_s": {k: round(v, 6) for k, v in latency.items()},
        "fit": {"verify_latency_s": round(a, 6), "verify_latency_per_token_s": round(b, 7)},
    }
    if rtt_s is not None:
        rec["rtt_s"] = round(rtt_s, 6)
    return rec
