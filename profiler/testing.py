"""Tiny llama-architecture GGUF files, generated deterministically, for tests and demos.

Real parts, no mocks: the tests run llama.cpp on real model files, and these
are small enough (a few hundred kB) to make in milliseconds on any machine
without a download.  Every file made here shares one SentencePiece-style
vocabulary, so any two of them form a valid draft/target pair; a draft is the
target's weights plus seeded noise (and optionally fewer layers), which gives
acceptance rates strictly between 0 and 1 that shrink as the noise grows.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from profiler.engine import Engine, EngineSettings

VOCAB_SIZE = 512
_CHARS = (string.ascii_letters + string.digits + ".,;:!?'\"()-/"
          + "".join(chr(c) for c in range(0x3B1, 0x3CA))  # Greek
          + "".join(chr(c) for c in range(0x430, 0x450)))  # Cyrillic


def vocabulary(variant: int = 0) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and types of the shared vocabulary (exactly VOCAB_SIZE entries).

    Layout follows llama.cpp's SPM tokenizer: <unk>, <s>, </s>, the 256 byte
    fallback tokens, then pieces.  Every piece is one character, alone or
    after the word marker, so any token sequence without byte tokens has
    exactly one tokenization: text sent through an HTTP API re-tokenizes to
    the same ids, which the remote-target tests rely on.  `variant` != 0 is a
    foreign tokenizer of the same size: no word-marker pieces (a space falls
    back to bytes), rotated ids, so both ids and token strings differ.
    """
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    pieces: list[str] = []
    if variant:
        pieces = [chr(c) for c in range(0x4E00, 0x4E00 + 400)]
        pieces = list(_CHARS) + pieces[variant:]
    else:
        for ch in _CHARS:
            pieces += ["\u2581" + ch, ch]
    pieces = pieces[: VOCAB_SIZE - len(tokens)]
    tokens += pieces
    types += [1] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    assert len(tokens) == VOCAB_SIZE, len(tokens)
    return tokens, scores, types


@dataclass(frozen=True)
class TinyModel:
    """Shape and seeds of one tiny model; `noise` perturbs the base weights."""

    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    seed: int = 0
    noise: float = 0.0
    noise_seed: int = 1
    logit_scale: float = 6.0
    vocab_variant: int = 0


def _weights(cfg: TinyModel) -> dict[str, np.ndarray]:
    """Base weights from `seed` (layer by layer, so fewer layers keep a prefix)."""
    rng = np.random.default_rng(cfg.seed)
    d, f, kv = cfg.n_embd, cfg.n_ff, cfg.n_embd // cfg.n_head * cfg.n_head_kv
    w: dict[str, np.ndarray] = {
        "token_embd.weight": rng.normal(0, 1.0, (VOCAB_SIZE, d)),
        "output_norm.weight": np.ones(d),
        "output.weight": rng.normal(0, cfg.logit_scale / np.sqrt(d), (VOCAB_SIZE, d)),
    }
    for i in range(max(cfg.n_layer, 8)):
        layer = {
            "attn_norm.weight": np.ones(d),
            "attn_q.weight": rng.normal(0, 1 / np.sqrt(d), (d, d)),
            "attn_k.weight": rng.normal(0, 1 / np.sqrt(d), (kv, d)),
            "attn_v.weight": rng.normal(0, 1 / np.sqrt(d), (kv, d)),
            "attn_output.weight": rng.normal(0, 0.5 / np.sqrt(d), (d, d)),
            "ffn_norm.weight": np.ones(d),
            "ffn_gate.weight": rng.normal(0, 1 / np.sqrt(d), (f, d)),
            "ffn_up.weight": rng.normal(0, 1 / np.sqrt(d), (f, d)),
            "ffn_down.weight": rng.normal(0, 0.5 / np.sqrt(f), (d, f)),
        }
        if i < cfg.n_layer:
            w.update({f"blk.{i}.{k}": v for k, v in layer.items()})
    if cfg.noise > 0:
        noise_rng = np.random.default_rng(cfg.noise_seed)
        for name in sorted(w):
            if not name.endswith("norm.weight"):
                w[name] = w[name] + noise_rng.normal(0, cfg.noise * w[name].std(), w[name].shape)
    # special and byte tokens get zero logits, so greedy text stays printable characters
    w["output.weight"][:259] = 0.0
    return w


def write_tiny_gguf(path: str | Path, cfg: TinyModel = TinyModel()) -> Path:
    """Write one tiny f32 llama GGUF; same `cfg` -> byte-identical file."""
    import gguf  # the profiler extra

    path = Path(path)
    tokens, scores, types = vocabulary(cfg.vocab_variant)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"tiny-llama-L{cfg.n_layer}-noise{cfg.noise:g}")
    writer.add_context_length(2048)
    writer.add_embedding_length(cfg.n_embd)
    writer.add_block_count(cfg.n_layer)
    writer.add_feed_forward_length(cfg.n_ff)
    writer.add_head_count(cfg.n_head)
    writer.add_head_count_kv(cfg.n_head_kv)
    writer.add_rope_dimension_count(cfg.n_embd // cfg.n_head)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    for name, value in _weights(cfg).items():
        writer.add_tensor(name, value.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


TARGET = TinyModel(n_layer=4)
"""The test target: four layers."""

DRAFT_CLOSE = replace(TARGET, noise=0.05)
"""A draft that agrees with the target most of the time."""

DRAFT_FAR = replace(TARGET, n_layer=2, noise=0.1)
"""A weaker draft: half the layers and more noise."""


def tiny_family(directory: str | Path) -> dict[str, Path]:
    """Write the standard target/draft trio into `directory`; returns name -> path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    return {
        "target": write_tiny_gguf(d / "tiny-target.gguf", TARGET),
        "draft-close": write_tiny_gguf(d / "tiny-draft-close.gguf", DRAFT_CLOSE),
        "draft-far": write_tiny_gguf(d / "tiny-draft-far.gguf", DRAFT_FAR),
    }


def test_settings() -> EngineSettings:
    """One thread: shared CI machines make OpenMP spin-waits collapse under contention."""
    from profiler.engine import EngineSettings

    return EngineSettings(n_ctx=1024, n_threads=1)


def open_engine(path: Path) -> Engine:
    """An engine on `path` with the tests' settings (one thread, small context)."""
    from profiler.engine import Engine

    return Engine(path, test_settings())


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a test server."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_server(model: Path, n_ctx: int = 1024) -> Iterator[str]:
    """`python -m llama_cpp.server` on 127.0.0.1 (a free port), as a real process; its URL."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "1",
         "--n_threads_batch", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("llama_cpp.server did not come up in 90 s") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
