"""Real speculative decoding: the draft drafts K tokens, the target verifies them in one batch.

Used by `configspec trial` to measure what a configuration really does, and
by the tests as the explicit per-K loop that the single-pass alpha(K) must
equal.  State between rounds: both models hold every emitted token except
the pending one `x` (the last bonus); a round feeds `x` and the drafts.
After a rejection both KV caches are rolled back to the accepted prefix;
when all K drafts are accepted the draft still has to feed d_K (a step the
paper's K/v_d ignores, timed here as drafting).

Greedy verification is lossless token for token; sampled verification is
the rejection sampling of Leviathan et al. (lossless in distribution).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from profiler.acceptance import softmax
from profiler.draft_pass import prefill_but_last
from profiler.engine import Engine
from profiler.errors import EndpointError
from profiler.targets import RemoteTarget, Sampling, choose


@dataclass(frozen=True)
class Round:
    """One round of the real speculative loop: start, tokens kept, and timings (s)."""

    pos: int  # tokens emitted before the round
    accepted: int
    emitted: int
    draft_s: float
    verify_s: float
    total_s: float


@dataclass
class SpecResult:
    """The output and every round of one speculative run at draft length `k`.

    The reference the single-pass estimate in `profiler.acceptance` is tested
    against; `text` is set instead of exact tokens when a remote target verified.
    """

    k: int
    prompt_tokens: list[int]
    tokens: list[int]
    rounds: list[Round] = field(default_factory=list)
    wall_s: float = 0.0
    draft_steps: int = 0
    text: str | None = None  # remote verification works on text

    def complete_rounds(self) -> list[Round]:
        """Rounds that fit inside the output (what the single pass counts)."""
        n = len(self.tokens)
        return [r for r in self.rounds if r.pos + self.k + 1 <= n]


def _draft_k(draft: Engine, backlog: list[int], x: int, k: int, sampling: Sampling,
             rng: np.random.Generator) -> tuple[list[int], list[np.ndarray], int]:
    steps = 0
    for b in backlog:
        draft.step(b)
        steps += 1
    logits = draft.step(x)
    steps += 1
    drafted: list[int] = []
    qs: list[np.ndarray] = []
    for j in range(k):
        tok, q = choose(logits, sampling, rng)
        drafted.append(tok)
        if q is not None:
            qs.append(q)
        if j < k - 1:
            logits = draft.step(tok)
            steps += 1
    return drafted, qs, steps


def _verify(rows: np.ndarray, drafted: list[int], qs: list[np.ndarray], sampling: Sampling,
            rng: np.random.Generator) -> tuple[int, int]:
    """(accepted, bonus token) from the target's K+1 rows of logits."""
    k = len(drafted)
    if sampling.greedy:
        choices = rows.argmax(axis=1)
        a = 0
        while a < k and drafted[a] == int(choices[a]):
            a += 1
        return a, int(choices[a])
    for j in range(k):
        p = softmax(rows[j], sampling.temperature)
        d = drafted[j]
        if rng.random() >= min(1.0, p[d] / max(qs[j][d], 1e-300)):
            residual = np.maximum(p - qs[j], 0.0)
            total = residual.sum()
            residual = residual / total if total > 0 else p
            return j, int(rng.choice(len(p), p=residual))
    p = softmax(rows[k], sampling.temperature)
    return k, int(rng.choice(len(p), p=p))


def generate(draft: Engine, target: Engine, prompt: list[int], k: int, max_new: int,
             sampling: Sampling | None = None) -> SpecResult:
    """Speculative decoding of up to `max_new` tokens with a local target."""
    sampling = sampling or Sampling()
    rng = np.random.default_rng(sampling.seed)
    res = SpecResult(k, list(prompt), [])
    t_start = time.perf_counter()
    x = prefill_but_last(draft, prompt)
    prefill_but_last(target, prompt)
    backlog: list[int] = []
    while len(res.tokens) < max_new:
        t0 = time.perf_counter()
        d0 = draft.n_past  # before the backlog and x are fed
        drafted, qs, steps = _draft_k(draft, backlog, x, k, sampling, rng)
        res.draft_steps += steps
        t1 = time.perf_counter()
        n0 = target.n_past
        rows = target.feed_all([x, *drafted])
        a, bonus = _verify(rows, drafted, qs, sampling, rng)
        t2 = time.perf_counter()
        target.rollback(n0 + 1 + a)
        if a < k:
            draft.rollback(d0 + len(backlog) + 1 + a)
            backlog = []
        else:
            backlog = [drafted[-1]]
        emitted = [*drafted[:a], bonus]
        res.rounds.append(Round(len(res.tokens), a, len(emitted), t1 - t0, t2 - t1,
                                time.perf_counter() - t0))
        x = bonus
        if _extend(res.tokens, emitted, max_new, target):
            break
    res.wall_s = time.perf_counter() - t_start
    return res


def _extend(out: list[int], emitted: list[int], max_new: int, target: Engine) -> bool:
    """Append the round's tokens; True when generation is over (length or end token)."""
    for t in emitted:
        out.append(t)
        if target.is_end(t) or len(out) >= max_new:
            return True
    return False


def plain_greedy(target: Engine, prompt: list[int], max_new: int) -> list[int]:
    """The target alone, token by token: the reference a lossless loop must reproduce."""
    return plain_greedy_timed(target, prompt, max_new)[0]


def plain_greedy_timed(target: Engine, prompt: list[int], max_new: int
                       ) -> tuple[list[int], float]:
    """Plain greedy decoding and its wall time after the prefill (for the speedup)."""
    x = prefill_but_last(target, prompt)
    t0 = time.perf_counter()
    logits = target.step(x)
    out: list[int] = []
    while True:
        tok = int(np.argmax(logits))
        out.append(tok)
        if target.is_end(tok) or len(out) >= max_new:
            return out, time.perf_counter() - t0
        logits = target.step(tok)


# --- a remote verifier ------------------------------------------------------


def _top1(entry: object) -> str | None:
    if not isinstance(entry, dict) or not entry:
        return None
    return str(max(entry.items(), key=lambda kv: kv[1])[0])


def generate_remote(draft: Engine, remote: RemoteTarget, prompt_text: str, k: int,
                    max_new: int) -> SpecResult:
    """Greedy speculative decoding verified by an OpenAI-compatible completions endpoint.

    One request per round: the context plus the K drafted tokens as text,
    `echo` with `logprobs=1` and `max_tokens=1`.  The echoed top-1 token at
    each drafted position is the target's choice there; the generated token
    is the bonus when all K are accepted.  The API speaks text, so tokens
    are compared as strings; a drafted token the endpoint tokenizes
    differently counts as rejected.
    """
    prompt = draft.tokenize(prompt_text)
    res = SpecResult(k, prompt, [], text="")
    t_start = time.perf_counter()
    x = prefill_but_last(draft, prompt)
    backlog: list[int] = []
    context = prompt_text
    rng = np.random.default_rng(0)
    vocab = piece_index(draft)
    while len(res.tokens) < max_new:
        t0 = time.perf_counter()
        d0 = draft.n_past  # before the backlog and x are fed
        drafted, _, steps = _draft_k(draft, backlog, x, k, Sampling(), rng)
        res.draft_steps += steps
        pieces = [draft.piece(d).decode("utf-8", "replace") for d in drafted]
        t1 = time.perf_counter()
        choice, _ = remote.complete(context + "".join(pieces), max_tokens=1, echo=True,
                                    logprobs=1)
        t2 = time.perf_counter()
        a, bonus_text = _remote_verdict(choice, context, pieces)
        bonus_ids = _text_to_ids(draft, vocab, context + "".join(pieces[:a]), bonus_text)
        if a < k:
            draft.rollback(d0 + len(backlog) + 1 + a)
            backlog = []
        else:
            backlog = [drafted[-1]]
        backlog += bonus_ids[:-1]
        emitted = [*drafted[:a], *bonus_ids]
        context += "".join(pieces[:a]) + bonus_text
        res.rounds.append(Round(len(res.tokens), a, len(emitted), t1 - t0, t2 - t1,
                                time.perf_counter() - t0))
        x = bonus_ids[-1]
        stop = choice.get("finish_reason") == "stop" and a == k
        if _extend(res.tokens, emitted, max_new, draft) or stop:
            break
    res.text = context[len(prompt_text):]
    res.wall_s = time.perf_counter() - t_start
    return res


def piece_index(engine: Engine) -> dict[str, int]:
    """Token text -> id, to map the endpoint's token strings back to ids.

    The last id wins: SentencePiece vocabularies list byte-fallback tokens
    (`<0x71>` renders as "q") before the normal pieces a model emits.
    """
    out: dict[str, int] = {}
    for i in range(engine.n_vocab):
        out[engine.piece(i).decode("utf-8", "ignore")] = i
    out.pop("", None)
    return out


def _text_to_ids(engine: Engine, vocab: dict[str, int], before: str, text: str) -> list[int]:
    """Ids of one token's text: a vocabulary lookup, else what tokenizing adds after `before`."""
    if not text:
        return [engine.eos]  # the endpoint ended the answer
    if text in vocab:
        return [vocab[text]]
    head = engine.tokenize(before)
    full = engine.tokenize(before + text)
    if full[: len(head)] == head and len(full) > len(head):
        return full[len(head):]
    return engine.tokenize(text, add_bos=False)


def _drafted_start(tokens: list[str], drafted_chars: int) -> int:
    """Index of the first echoed token of the drafted text (the echo ends with it + 1 new).

    Counted from the end by characters: `text_offset` is unreliable (llama-cpp-python
    counts the word-marker space of a SentencePiece first token).
    """
    chars, i = 0, len(tokens) - 1  # the last token is the generated one
    while i > 0 and chars < drafted_chars:
        i -= 1
        chars += len(tokens[i])
    return i


def _remote_verdict(choice: dict[str, object], context: str, pieces: list[str]
                    ) -> tuple[int, str]:
    lp = choice.get("logprobs")
    if not isinstance(lp, dict) or not isinstance(lp.get("tokens"), list) or \
            not isinstance(lp.get("top_logprobs"), list):
        raise EndpointError("the endpoint returned no logprobs.tokens/top_logprobs with "
                            "echo=true (llama-cpp-python's server needs logits_all, the default)")
    tokens: list[str] = lp["tokens"]
    tops: list[object] = lp["top_logprobs"]
    text = str(choice.get("text", ""))
    i0 = _drafted_start(tokens, sum(len(p) for p in pieces))
    a = 0
    while a < len(pieces):
        i = i0 + a
        target_choice = _top1(tops[i]) if i < len(tops) - 1 else None
        if i >= len(tokens) - 1 or tokens[i] != pieces[a] or target_choice != pieces[a]:
            break
        a += 1
    if a == len(pieces):
        return a, text[len(context) + sum(len(p) for p in pieces):]
    i = i0 + a
    top = _top1(tops[i]) if i < len(tops) else None
    if top is None:
        raise EndpointError("the endpoint's echoed logprobs do not cover the drafted tokens")
    return a, top
