"""The one draft pass: the draft steps token by token through the target's sequence.

At every position it records whether its argmax equals the target's token
(greedy agreement) or, when sampling, the overlap sum_x min(p, q) with the
target's distribution; the same steps are timed by llama.cpp's counters
(v_d) and by the wall clock (what Python adds per step).

Token by token, because that is how a draft runs when it drafts: a
batched teacher-forced pass is faster, but llama.cpp's batched kernels
round differently and flip near-tied argmaxes (measured on SmolLM2: up to
0.03 too high alpha).  The prompt but its last token is prefilled in one
batch, exactly as the speculative loop in `profiler.speculative` does, so
the two see bit-identical logits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from profiler.acceptance import overlap, softmax
from profiler.engine import Engine, PerfCounters
from profiler.targets import Sampling, TargetSequence


@dataclass(frozen=True)
class PassResult:
    """What one draft pass measured over a target sequence.

    `matches` is the greedy agreement per position; `betas` the acceptance
    probability per position when sampling (None when greedy); `perf` and
    `wall_s` time the `steps` single-token decodes.
    """

    matches: list[bool]
    betas: list[float] | None
    perf: PerfCounters
    wall_s: float
    steps: int


def prefill_but_last(engine: Engine, prompt: list[int]) -> int:
    """Reset and prefill all prompt tokens but the last; returns the last (fed by `step`)."""
    engine.reset()
    if len(prompt) > 1:
        engine.feed(prompt[:-1])
    return prompt[-1]


def draft_pass(draft: Engine, seq: TargetSequence, sampling: Sampling) -> PassResult:
    """Step the draft through `seq` once, recording agreement (and overlap) and timing."""
    last = prefill_but_last(draft, seq.prompt_tokens)
    draft.perf_reset()
    matches: list[bool] = []
    betas: list[float] | None = None if sampling.greedy else []
    t0 = time.perf_counter()
    logits = draft.step(last)
    n = len(seq.tokens)
    for i, tok in enumerate(seq.tokens):
        matches.append(int(np.argmax(logits)) == tok)
        if betas is not None and seq.probs is not None:
            betas.append(overlap(seq.probs[i].astype(np.float64),
                                 softmax(logits, sampling.temperature)))
        if i < n - 1:
            logits = draft.step(tok)
    wall = time.perf_counter() - t0
    return PassResult(matches, betas, draft.perf(), wall, n)
