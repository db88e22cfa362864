"""`configspec serve` as a command: its refusals, before any server starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from configspec_opt.cli import app


def test_without_the_server_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)
    r = CliRunner().invoke(app, ["serve"])
    assert r.exit_code == 3
    assert 'pip install "configspec-opt[server]"' in r.stderr


def test_bad_limits_are_usage_errors(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["serve", "--db", str(tmp_path / "x.db"), "--time-limit", "90",
                                 "--max-time-limit", "60"])
    assert r.exit_code == 2
    assert "default time limit" in r.stderr
    r = CliRunner().invoke(app, ["serve", "--db", str(tmp_path / "x.db"), "--max-body", "big"])
    assert r.exit_code == 2
    assert "cannot read size 'big'" in r.stderr
    assert not (tmp_path / "x.db").exists()
