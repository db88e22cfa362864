"""The fuzz tests' count of cases per command, printed at the end of the session (the
issue's closing note states how many ran)."""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    module = sys.modules.get("tests.fuzz.test_file_inputs")
    lines = module.summary() if module is not None else []
    if lines:
        terminalreporter.section("fuzz cases per command (tests/fuzz)")
        for line in lines:
            terminalreporter.write_line(line)
