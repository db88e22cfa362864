"""Running `configspec` for the CLI tests (tests/ship, tests/vcs): in this process (fast) or
as a real process (when the environment itself is what is tested, e.g. a missing
matplotlib); a git that reads no user configuration; strict HTML checks."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from typer.testing import CliRunner

from configspec_opt.cli import app

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "ship" / "data"
EXAMPLE = ROOT / "examples" / "llama70b-edge.yaml"
PAPER_DIR = ROOT / "examples" / "paper"
PAPER = PAPER_DIR / "llama70b.yaml"


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str


def invoke(*args: str | Path) -> Run:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


def run_process(*args: str | Path, prelude: str = "", env: dict[str, str] | None = None,
                cwd: Path | None = None) -> Run:
    """`configspec ARGS` in a fresh interpreter; `prelude` runs first (e.g. hiding a module)."""
    code = (f"import sys\n{prelude}\nfrom configspec_opt.cli import main\n"
            f"sys.argv = ['configspec', *{[str(a) for a in args]!r}]\nmain()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False, cwd=cwd or ROOT,
                          env={**os.environ, **(env or {})})
    return Run(proc.returncode, proc.stdout, proc.stderr)


def git(repo: Path, *args: str) -> str:
    """`git ARGS` in `repo` as a fixed author, whatever the user's or the system's config."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout


def replace_in(path: Path, old: str, new: str) -> None:
    """Change the first `old` in a file, failing loudly when the file no longer has it."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


HIDE = """
class _NotInstalled:  # `import {name}` fails as on an install without it
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] == {name!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled)
"""

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class StrictHTML(HTMLParser):
    """Checks nesting (every element closed, in order) and collects src/href values."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href") and value is not None:
                self.links.append(value)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href") and value is not None:
                self.links.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(text: str) -> StrictHTML:
    p = StrictHTML()
    p.feed(text)
    p.close()
    assert not p.errors, p.errors[:5]
    assert not p.stack, f"unclosed: {p.stack}"
    assert text.startswith("<!DOCTYPE html>")
    return p
