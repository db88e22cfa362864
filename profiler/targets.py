"""The target (verifier) side: its continuation of a prompt, locally or over HTTP.

A local target is a GGUF run by llama.cpp here.  A remote target is an
OpenAI-compatible `/v1/completions` endpoint (llama-cpp-python's server,
llama.cpp's server, vLLM); the completions API speaks text, so the
continuation is re-tokenized with the shared tokenizer, and a mismatch in
token count is reported rather than hidden.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from configspec_opt.errors import UsageError
from profiler.acceptance import softmax
from profiler.engine import Engine, Logits
from profiler.errors import EndpointError, TokenizerMismatchError
from profiler.http import HttpPolicy, request_json

PROBE_TEXTS = (
    "Speculative decoding: the draft proposes, the target verifies. 1234567890",
    "  Ünïcode, émojis 🙂 and\ttabs\nnew lines; (brackets) [and] {braces} <tags>",
)


@dataclass(frozen=True)
class Sampling:
    """Greedy when temperature is 0; otherwise seeded sampling at that temperature."""

    temperature: float = 0.0
    seed: int = 0

    @property
    def greedy(self) -> bool:
        """Whether decoding is greedy (temperature 0 or below), so agreement replaces overlap."""
        return self.temperature <= 0.0


@dataclass
class TargetSequence:
    """One prompt and the target's continuation, in the shared tokenizer's ids."""

    prompt_text: str
    prompt_tokens: list[int]
    tokens: list[int]
    probs: list[npt.NDArray[np.float16]] | None = None  # sampled runs: target p at each position
    notes: list[str] = field(default_factory=list)


class Target(Protocol):
    """A verifier the profiler measures a draft against: local GGUF or remote endpoint."""

    name: str
    kind: str

    def describe(self) -> dict[str, Any]:
        """What the target is, for provenance."""

    def check_tokenizer(self, draft: Engine) -> dict[str, Any]:
        """Check the draft shares this target's tokenizer; TokenizerMismatchError otherwise.

        Acceptance between models with different vocabularies is meaningless, so
        this runs before anything is measured; returns what was checked.
        """

    def continuation(self, draft: Engine, prompt_text: str, n: int,
                     sampling: Sampling) -> TargetSequence:
        """The target's own continuation of `prompt_text`, up to `n` tokens, in the draft's ids."""


def choose(logits: Logits, sampling: Sampling, rng: np.random.Generator
           ) -> tuple[int, npt.NDArray[np.float64] | None]:
    """The next token (argmax, or a sample) and, when sampling, the distribution used."""
    if sampling.greedy:
        return int(np.argmax(logits)), None
    p = softmax(logits, sampling.temperature)
    return int(rng.choice(len(p), p=p)), p


class LocalTarget:
    """A target GGUF run here by llama.cpp, decoding token by token like plain serving."""

    kind = "local"

    def __init__(self, name: str, engine: Engine, sha256: str) -> None:
        self.name = name
        self.engine = engine
        self.sha256 = sha256

    def describe(self) -> dict[str, Any]:
        """Provenance: the GGUF's name and SHA-256."""
        return {"kind": "local", "gguf": self.engine.path.name, "sha256": self.sha256}

    def check_tokenizer(self, draft: Engine) -> dict[str, Any]:
        """Compare every token piece and the probe texts' tokenization; see `Target`."""
        t = self.engine
        if draft.n_vocab != t.n_vocab:
            raise TokenizerMismatchError(
                f"draft {draft.path.name} has {draft.n_vocab} tokens, target {t.path.name} has "
                f"{t.n_vocab}: they do not share a tokenizer, so acceptance is meaningless")
        bad = next((i for i in range(t.n_vocab) if draft.piece(i) != t.piece(i)), None)
        if bad is not None:
            raise TokenizerMismatchError(
                f"token {bad} is {draft.piece(bad)!r} in the draft {draft.path.name} but "
                f"{t.piece(bad)!r} in the target {t.path.name}: different vocabularies")
        for text in PROBE_TEXTS:
            if draft.tokenize(text) != t.tokenize(text):
                raise TokenizerMismatchError(
                    f"draft and target tokenize {text[:30]!r}... differently (different "
                    "merges or pre-tokenizer): pick a draft of the target's family")
        return {"vocab_size": t.n_vocab, "checked": "every token piece + probe round trip"}

    def continuation(self, draft: Engine, prompt_text: str, n: int,
                     sampling: Sampling) -> TargetSequence:
        """Decode up to `n` tokens (stopping at an end token), keeping p per position when sampling.

        Sampling is seeded per prompt, so a run repeats exactly.
        """
        eng = self.engine
        prompt = eng.tokenize(prompt_text)
        rng = np.random.default_rng([sampling.seed, len(prompt), sum(prompt) % 2**31])
        eng.reset()
        if len(prompt) > 1:
            eng.feed(prompt[:-1])
        logits = eng.step(prompt[-1])
        tokens: list[int] = []
        probs: list[npt.NDArray[np.float16]] | None = None if sampling.greedy else []
        for i in range(n):
            tok, p = choose(logits, sampling, rng)
            tokens.append(tok)
            if probs is not None and p is not None:
                probs.append(p.astype(np.float16))
            if eng.is_end(tok) or i == n - 1:
                break
            logits = eng.step(tok)
        return TargetSequence(prompt_text, prompt, tokens, probs)


class RemoteTarget:
    """An OpenAI-compatible completions endpoint used as the verifier."""

    kind = "remote"

    def __init__(self, name: str, base_url: str, policy: HttpPolicy | None = None,
                 model: str | None = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.policy = policy or HttpPolicy()
        self.model = model

    @property
    def completions_url(self) -> str:
        """The OpenAI-style `/v1/completions` URL of the endpoint (`/v1` added when missing)."""
        root = self.base_url if self.base_url.endswith("/v1") else self.base_url + "/v1"
        return root + "/completions"

    def describe(self) -> dict[str, Any]:
        """Provenance: the endpoint's base URL."""
        return {"kind": "remote", "endpoint": self.base_url}

    def complete(self, prompt: str, **params: Any) -> tuple[dict[str, Any], float]:
        """One completion request (greedy, no penalties); returns its first choice and seconds."""
        body: dict[str, Any] = {"prompt": prompt, "temperature": 0.0, "top_p": 1.0,
                                "repeat_penalty": 1.0, "frequency_penalty": 0.0,
                                "presence_penalty": 0.0, "stream": False, **params}
        if self.model:
            body["model"] = self.model
        t0 = time.perf_counter()
        data = request_json("POST", self.completions_url, body, self.policy)
        elapsed = time.perf_counter() - t0
        try:
            choice = data["choices"][0]
            if not isinstance(choice.get("text"), str):
                raise TypeError
        except (KeyError, IndexError, TypeError, AttributeError):
            raise EndpointError(f"{self.completions_url} answered without choices[0].text: "
                                f"{str(data)[:200]!r}") from None
        choice["_usage"] = data.get("usage") or {}
        return choice, elapsed

    def echo_tokens(self, text: str) -> list[str]:
        """The endpoint's own tokenization of `text`, as token strings (echo + logprobs)."""
        choice, _ = self.complete(text, max_tokens=1, echo=True, logprobs=0)
        lp = choice.get("logprobs") or {}
        tokens = lp.get("tokens")
        if not isinstance(tokens, list):
            raise EndpointError(f"{self.completions_url} does not return logprobs.tokens with "
                                "echo=true: it cannot be checked or used as a verifier")
        return [str(t) for t in tokens]

    def check_tokenizer(self, draft: Engine) -> dict[str, Any]:
        """Compare the draft's tokenization of a probe with the endpoint's (echo); see `Target`."""
        for text in PROBE_TEXTS[:1]:
            ours = [draft.piece(t).decode("utf-8", "ignore")
                    for t in draft.tokenize(text) if t != draft.bos]
            theirs = self.echo_tokens(text)[: len(ours)]
            if ours != theirs:
                raise TokenizerMismatchError(
                    f"{self.base_url} tokenizes {text[:30]!r}... as {theirs[:8]}..., the draft "
                    f"{draft.path.name} as {ours[:8]}...: they do not share a tokenizer")
        return {"checked": "probe round trip through the endpoint (echo)"}

    def continuation(self, draft: Engine, prompt_text: str, n: int,
                     sampling: Sampling) -> TargetSequence:
        """The endpoint's greedy continuation, re-tokenized with the draft's tokenizer.

        `notes` says when the token count differs from the server's own.  Greedy
        only: a remote endpoint does not return the full distribution that
        sampled acceptance needs (UsageError).
        """
        if not sampling.greedy:
            raise UsageError("sampled acceptance needs the target's full distribution: use a "
                             "local target GGUF (--target with gguf:) for --temperature > 0")
        choice, _ = self.complete(prompt_text, max_tokens=n)
        text = choice["text"]
        prompt = draft.tokenize(prompt_text)
        full = draft.tokenize(prompt_text + text)
        cont = full[len(prompt):] if full[: len(prompt)] == prompt else \
            draft.tokenize(text, add_bos=False)
        notes = []
        reported = choice["_usage"].get("completion_tokens")
        if isinstance(reported, int) and reported != len(cont):
            notes.append(f"endpoint generated {reported} tokens, re-tokenized text has "
                         f"{len(cont)}")
        if choice.get("finish_reason") == "stop" and len(cont) < n:
            cont.append(draft.eos)  # the target ended its answer: that is a token too
        return TargetSequence(prompt_text, prompt, cont[:n], None, notes)
