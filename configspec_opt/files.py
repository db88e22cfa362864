"""The one writer: every file configspec writes (specs, locks, profiles, reports,
exports, plots, the schema) goes through `atomic_write_bytes`.

What it guarantees, whoever calls it:

- `validate`, when given, sees the new content before anything touches the disk;
  a refusal leaves every file as it was;
- a reader, a Ctrl-C or a SIGKILL sees the old content or the new, never a mix: the
  content goes to a temporary file beside the target (`.NAME.XXXXXXXX.tmp`), is
  fsynced, then renamed over it (a kill before the rename leaves that temporary
  file and the target untouched; the directory is not fsynced, so a power cut just
  after may bring back the old file, never a mix);
- a symlink keeps pointing where it did: its target is replaced, not the link;
- an existing file keeps its permission bits (its temporary file is created with
  them, so the new content is never readable by more people than the old); a new
  one gets 0o666 less the umask, like every Unix tool.  The kernel applies the
  umask when it creates the file, so the umask is never read (reading it means
  setting it, which races with other threads creating files: the HTTP service is
  multi-threaded).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from configspec_opt.errors import OutputError

_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
          | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


def _temporary(directory: str, name: str, mode: int) -> tuple[int, str]:
    """A new file beside the target, opened for writing, created with `mode` less the umask."""
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _FLAGS, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {os.path.join(directory, name)}")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace the file at `path` (through a symlink, to its target) with `data`.

    Returns the path written (the link's target when `path` is a symlink)."""
    real = os.path.realpath(path)
    directory, name = os.path.split(real)
    try:
        old: int | None = stat.S_IMODE(os.stat(real).st_mode)
    except FileNotFoundError:
        old = None
    fd, tmp = _temporary(directory, name, 0o666 if old is None else old & 0o777)
    try:
        try:
            if old is not None:
                os.fchmod(fd, old)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(real)


def atomic_write_text(path: str | Path, text: str, *,
                      validate: Callable[[str], None] | None = None) -> Path:
    """`atomic_write_bytes` of UTF-8 text; `validate(text)` runs first and may refuse it."""
    if validate is not None:
        validate(text)
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_output(path: str | Path, content: str | bytes, shown: str | Path | None = None, *,
                 validate: Callable[[str], None] | None = None) -> Path:
    """The writer with a failure as the OutputError a user reads (exit 4).

    `shown` is the name in the message (the path as the user gave it)."""
    try:
        if isinstance(content, bytes):
            return atomic_write_bytes(path, content)
        return atomic_write_text(path, content, validate=validate)
    except OSError as exc:
        raise OutputError(f"cannot write {shown or path}: "
                          f"{exc.strerror or type(exc).__name__}") from None
    except UnicodeEncodeError as exc:
        raise OutputError(f"cannot write {shown or path}: character {exc.start:,} of the text "
                          "is a lone surrogate, which UTF-8 cannot hold") from None

