"""Reading a spec as it was at a git revision: `specs/fleet.yaml@HEAD~1`.

Git runs in the repository that holds the file (not the current directory),
and the spec's `profiles_from` files are read at the same revision, so an
old spec is evaluated with the profiles it was committed with.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from configspec_opt.errors import ConfigspecError, SpecError, UsageError
from configspec_opt.limits import FILE_BYTES
from configspec_opt.loader import LoadedSpec, Source, parse_data, parse_spec
from configspec_opt.spec_files import FileRefused, read_text_file


class GitError(ConfigspecError):
    """A revision or a file at a revision that git cannot give us."""

    exit_code = 2


@dataclass(frozen=True)
class Ref:
    """A file, optionally at a git revision (`rev` None: the working tree)."""

    path: Path
    rev: str | None = None

    def __str__(self) -> str:
        return f"{self.path}@{self.rev}" if self.rev is not None else str(self.path)


def parse_ref(text: str) -> Ref:
    """`path` or `path@REV`; split at the first `@` (revisions like HEAD@{1} keep theirs).

    A name that exists as a file is a path even if it contains `@`.
    """
    if "@" not in text or Path(text).exists():
        return Ref(Path(text))
    path, _, rev = text.partition("@")
    if not path:
        raise UsageError(f"'{text}': no file before '@' (e.g. specs/fleet.yaml@HEAD~1)")
    if not rev:
        raise UsageError(f"'{text}': no revision after '@' (e.g. {path}@HEAD~1)")
    if rev.startswith("-"):
        raise UsageError(f"'{text}': a revision cannot start with '-'")
    return Ref(Path(path), rev)


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(["git", "--no-pager", *args], cwd=cwd, capture_output=True,
                              env=env, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed (needed for path@REV)") from None


def _existing_dir(path: Path) -> Path:
    """The nearest existing directory at or above the file's directory (it may be gone now)."""
    d = Path(os.path.normpath(path.absolute())).parent
    while not d.is_dir():
        d = d.parent
    return d


@dataclass(frozen=True)
class Checkout:
    """A revision of the repository that holds some file."""

    root: Path  # top level of the working tree
    commit: str  # full hash
    rev: str  # as the user wrote it

    @property
    def short(self) -> str:
        """The commit abbreviated to 10 digits, for messages."""
        return self.commit[:10]

    def read(self, repo_path: str, shown: str) -> str:
        """The file's text at this revision, refused past limits.FILE_BYTES as on disk."""
        size = _git(self.root, "cat-file", "-s", f"{self.commit}:{repo_path}")
        if size.returncode != 0:
            raise GitError(f"{shown} does not exist at {self.rev} ({self.short})")
        cap = FILE_BYTES.value
        if int(size.stdout.decode().strip() or 0) > cap:
            raise GitError(f"{shown} at {self.rev} is larger than {cap:,} bytes "
                           f"({FILE_BYTES.hint()})")
        r = _git(self.root, "show", "--no-textconv", f"{self.commit}:{repo_path}")
        if r.returncode != 0:
            raise GitError(f"{shown} does not exist at {self.rev} ({self.short})")
        try:
            return r.stdout.decode("utf-8")
        except UnicodeDecodeError:
            raise GitError(f"{shown} at {self.rev} is not UTF-8 text") from None


def locate(ref: Ref) -> tuple[Checkout, str]:
    """The revision of `ref` and the file's path inside its repository."""
    assert ref.rev is not None
    anchor = _existing_dir(ref.path)
    top = _git(anchor, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise GitError(f"{ref.path}: {anchor} is not inside a git repository")
    root = Path(top.stdout.decode().strip())
    commit = _git(anchor, "rev-parse", "--verify", "--quiet", f"{ref.rev}^{{commit}}")
    if commit.returncode != 0:
        raise GitError(f"unknown revision '{ref.rev}' in the git repository {root}")
    prefix = _git(anchor, "rev-parse", "--show-prefix").stdout.decode().strip()
    tail = Path(os.path.normpath(ref.path.absolute())).relative_to(anchor).as_posix()
    repo_path = posixpath.normpath(posixpath.join(prefix, tail))
    return Checkout(root, commit.stdout.decode().strip(), ref.rev), repo_path


def worktree_files(directory: Path) -> list[Path] | None:
    """Files under `directory` that git tracks or would track (ignored files left out).

    None when the directory is not in a git work tree (or git is missing): the
    caller then walks the directory itself.
    """
    try:
        r = _git(directory, "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                 "--", ".")
    except GitError:
        return None
    if r.returncode != 0:
        return None
    names = sorted({n for n in r.stdout.decode("utf-8", "replace").split("\0") if n})
    return [directory / n for n in names if (directory / n).is_file()]


def read_text(ref: Ref) -> str:
    """The file's text at its revision (or in the working tree: a bounded regular file)."""
    if ref.rev is None:
        try:
            return read_text_file(ref.path)
        except FileRefused as exc:
            raise UsageError(f"cannot read {ref.path}: {exc}") from None
    checkout, repo_path = locate(ref)
    return checkout.read(repo_path, str(ref.path))


def load_spec_at(ref: Ref) -> LoadedSpec:
    """Load and validate a spec at a revision, its profile files taken from the same one
    (in memory: nothing is checked out)."""
    assert ref.rev is not None
    checkout, repo_path = locate(ref)
    name = str(ref)
    text = checkout.read(repo_path, str(ref.path))
    data = parse_data(Source(name, text))
    wanted = data.get("profiles_from") if isinstance(data, dict) else None
    spec_dir = posixpath.dirname(repo_path)
    files: dict[str, str] = {}
    if isinstance(wanted, list):
        for rel in wanted:
            if not isinstance(rel, str):
                continue  # validation will say so
            inner = posixpath.normpath(posixpath.join(spec_dir, rel))
            if inner == ".." or inner.startswith("../") or posixpath.isabs(rel):
                raise GitError(f"{name}: profiles_from '{rel}' is outside the repository")
            files[inner] = checkout.read(inner, str(ref.path.parent / rel))
    base = Path(spec_dir)
    try:
        return parse_spec(text, name=name, base_dir=base, root=base, files=files)
    except SpecError as exc:  # name a revision's files as the user knows them
        raise SpecError([replace(i, file=_shown_name(i.file, files, checkout.rev))
                         for i in exc.issues]) from None


def _shown_name(file: str | None, files: dict[str, str], rev: str) -> str | None:
    if file is None or os.path.normpath(file) not in files:
        return file
    return f"{Path(os.path.normpath(file)).as_posix()}@{rev}"
