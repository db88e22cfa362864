"""Fixtures for the version-control and plot tests: real files, real git, real HiGHS."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_helpers import PAPER_DIR, Run, git, invoke


@pytest.fixture
def cli() -> Callable[..., Run]:
    """Run `configspec ARGS...` in this process; stdout and stderr kept apart."""
    return invoke


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    """The paper's Llama-3.1-70B spec, copied where a test may change it."""
    dest = tmp_path / "fleet.yaml"
    shutil.copy(PAPER_DIR / "llama70b.yaml", dest)
    return dest


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository in a temporary folder."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    return root
