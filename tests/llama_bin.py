"""The llama-server binary the tests start, or a skip that names how to build it.

CI sets CONFIGSPEC_REQUIRE_LLAMA_SERVER=1 (`.ci/run` builds the binary first): there a
missing binary fails the test instead, so a green CI run means every llama-server test
really ran (the closed loop of export, drafting client, observe and re-plan included).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from profiler.llama_server import BUILD_COMMAND, binary_path, cache_root


def llama_server_or_skip() -> Path:
    """The cached binary; skip (or fail where it is required) when it is not built."""
    found = binary_path()
    if found is not None:
        return found
    why = (f"llama-server is not built on this machine: run `{BUILD_COMMAND}` "
           f"(builds it once into {cache_root()})")
    if os.environ.get("CONFIGSPEC_REQUIRE_LLAMA_SERVER") == "1":
        pytest.fail(why + " (CONFIGSPEC_REQUIRE_LLAMA_SERVER=1)")
    pytest.skip(why)
