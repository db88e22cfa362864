"""One GGUF model in llama.cpp, driven token by token as speculative decoding drives it.

Built on llama-cpp-python's thin wrappers of the C API rather than the
high-level `Llama` class because the profiler needs what `Llama` hides:
model parameters it does not expose (`use_extra_bufts`), logits of the last
decode without copying a `n_ctx x n_vocab` score matrix, KV-cache rollback to
any position, and llama.cpp's own decode counters (`llama_perf_context`).

Weight repacking (llama.cpp "extra buffer types": AMX, AVX repack) is off by
default: on this project's CI CPUs (AVX-512 + AMX) the AMX path of
llama-cpp-python 0.3.x crashed inside `llama_decode` on SmolLM2 as soon as a
batch held more than one token, and a profiler must not segfault.  Turn it
on with `repack=True` where it works; provenance records the choice.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from profiler.errors import ModelFileError, ProfilerError

Logits = npt.NDArray[np.float32]


@dataclass(frozen=True)
class EngineSettings:
    """What llama.cpp is told; recorded verbatim in every profile's provenance."""

    n_ctx: int = 2048
    n_threads: int = 0  # 0: all cores of this machine
    n_batch: int = 512
    repack: bool = False

    def resolved_threads(self) -> int:
        """The thread count llama.cpp actually gets (0 means every core of this machine)."""
        return self.n_threads if self.n_threads > 0 else (os.cpu_count() or 1)

    def record(self) -> dict[str, Any]:
        """The settings for provenance, with the thread count resolved on this machine."""
        d = asdict(self)
        d["n_threads"] = self.resolved_threads()
        return d


@dataclass(frozen=True)
class PerfCounters:
    """llama.cpp's decode counters since the last reset (single-token decodes are `eval`)."""

    n_eval: int
    eval_s: float
    n_prompt: int
    prompt_s: float


class Engine:
    """A loaded model with one sequence in its KV cache."""

    def __init__(self, path: Path, settings: EngineSettings = EngineSettings(),
                 *, what: str = "model") -> None:
        import llama_cpp
        from llama_cpp import _internals

        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        self.path = path
        self.settings = settings
        self._llama_cpp = llama_cpp
        mp = llama_cpp.llama_model_default_params()
        mp.use_extra_bufts = settings.repack
        try:
            self._model = _internals.LlamaModel(path_model=str(path), params=mp, verbose=False)
        except ValueError as exc:
            raise ModelFileError(f"{what}: llama.cpp cannot load {path} ({exc}); is it a "
                                 "complete GGUF of a supported architecture?") from None
        cp = llama_cpp.llama_context_default_params()
        threads = settings.resolved_threads()
        cp.n_ctx = settings.n_ctx
        cp.n_batch = cp.n_ubatch = settings.n_batch
        cp.n_threads = cp.n_threads_batch = threads
        cp.no_perf = False
        try:
            self._ctx = _internals.LlamaContext(model=self._model, params=cp, verbose=False)
        except ValueError as exc:
            raise ModelFileError(f"{what}: cannot create a context for {path} "
                                 f"(n_ctx={settings.n_ctx}): {exc}") from None
        self._batch = _internals.LlamaBatch(n_tokens=settings.n_batch, embd=0, n_seq_max=1,
                                            verbose=False)
        self.n_vocab: int = self._model.n_vocab()
        self.n_ctx: int = self._ctx.n_ctx()
        self.bos: int = self._model.token_bos()
        self.eos: int = self._model.token_eos()
        self.eot: int = self._model.token_eot()
        self.add_bos: bool = bool(self._model.add_bos_token())
        self.n_past = 0
        self.metadata: dict[str, str] = self._model.metadata()

    # --- tokens -------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool | None = None,
                 special: bool = True) -> list[int]:
        """Token ids of `text`; a BOS is added when the model asks for one unless `add_bos` says.

        `special` parses special-token text (as a chat template writes it) into
        their ids.
        """
        bos = self.add_bos if add_bos is None else add_bos
        return [int(t) for t in self._model.tokenize(text.encode("utf-8"), bos, special)]

    def piece(self, token: int) -> bytes:
        """The bytes of one token exactly (special tokens rendered)."""
        buf = ctypes.create_string_buffer(256)
        n = self._llama_cpp.llama_token_to_piece(self._model.vocab, token, buf, 256, 0, True)
        return buf.raw[: max(n, 0)]

    def detokenize(self, tokens: list[int]) -> bytes:
        """The exact bytes of `tokens` (may split a UTF-8 character; decode with care)."""
        return b"".join(self.piece(t) for t in tokens)

    def is_end(self, token: int) -> bool:
        """Whether `token` ends generation (EOS, EOT or any end-of-generation token)."""
        return token in (self.eos, self.eot) or bool(
            self._llama_cpp.llama_vocab_is_eog(self._model.vocab, token))

    # --- decoding -----------------------------------------------------------

    def reset(self) -> None:
        """Empty the KV cache (a new prompt)."""
        self._ctx.kv_cache_clear()  # type: ignore[no-untyped-call]
        self.n_past = 0

    def rollback(self, n_keep: int) -> None:
        """Forget every position from `n_keep` on: the KV rollback after a rejection."""
        if n_keep < self.n_past:
            self._ctx.kv_cache_seq_rm(0, n_keep, -1)
            self.n_past = n_keep

    def feed(self, tokens: list[int]) -> Logits:
        """Decode `tokens` (batched) and return the logits after the last one (a copy)."""
        self._decode(tokens, all_logits=False)
        return self._row(-1).copy()

    def feed_all(self, tokens: list[int]) -> Logits:
        """Decode `tokens` in one batch and return logits after each of them, (n, vocab)."""
        if len(tokens) > self.settings.n_batch:
            raise ProfilerError(f"cannot verify {len(tokens)} tokens in one batch "
                                f"(n_batch={self.settings.n_batch})")
        self._decode(tokens, all_logits=True)
        ptr = self._ctx.get_logits()  # type: ignore[no-untyped-call]
        return np.ctypeslib.as_array(ptr, shape=(len(tokens) * self.n_vocab,)).reshape(
            len(tokens), self.n_vocab).copy()

    def step(self, token: int) -> Logits:
        """Decode one token, as a draft does when it drafts; logits are a view until next call."""
        self._decode([token], all_logits=False)
        return self._row(-1)

    def _row(self, i: int) -> Logits:
        return np.ctypeslib.as_array(self._ctx.get_logits_ith(i), shape=(self.n_vocab,))

    def _decode(self, tokens: list[int], *, all_logits: bool) -> None:
        if not tokens:
            raise ProfilerError("nothing to decode (empty prompt?)")
        if self.n_past + len(tokens) > self.n_ctx:
            raise ProfilerError(f"{self.path.name}: context full ({self.n_past} + {len(tokens)} "
                                f"> n_ctx {self.n_ctx}); raise --n-ctx or shorten the prompts")
        for i in range(0, len(tokens), self.settings.n_batch):
            chunk = tokens[i: i + self.settings.n_batch]
            self._batch.set_batch(chunk, self.n_past, all_logits)
            try:
                self._ctx.decode(self._batch)
            except RuntimeError as exc:
                raise ProfilerError(f"{self.path.name}: llama_decode failed: {exc}") from None
            self.n_past += len(chunk)

    # --- llama.cpp's own counters ------------------------------------------

    def perf_reset(self) -> None:
        """Zero llama.cpp's decode counters, so `perf` covers only what follows."""
        self._llama_cpp.llama_perf_context_reset(self._ctx.ctx)

    def perf(self) -> PerfCounters:
        """llama.cpp's decode counters since `perf_reset`, in seconds."""
        p = self._llama_cpp.llama_perf_context(self._ctx.ctx)
        return PerfCounters(int(p.n_eval), float(p.t_eval_ms) / 1e3,
                            int(p.n_p_eval), float(p.t_p_eval_ms) / 1e3)

    def close(self) -> None:
        """Free the batch, context and model now, rather than whenever they are collected."""
        self._batch.close()  # type: ignore[no-untyped-call]
        self._ctx.close()  # type: ignore[no-untyped-call]
        self._model.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
