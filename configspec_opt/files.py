"""File writes that never leave a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from configspec_opt.errors import OutputError


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it.

    A reader (or a Ctrl-C) sees either the old content or the new, never a
    mix; the file keeps its permissions when it existed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_output(path: str | Path, text: str, shown: str | Path | None = None) -> None:
    """`atomic_write_text`, with a failure as the OutputError a user reads (exit 4).

    `shown` is the name in the message (the path as the user gave it, when `path`
    is where it resolves to).
    """
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise OutputError(f"cannot write {shown or path}: "
                          f"{exc.strerror or type(exc).__name__}") from None
