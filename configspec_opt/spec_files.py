"""Reading the files a spec is made of, and nothing else.

`configspec check` runs in pre-commit hooks and CI on pull requests nobody has
reviewed yet, so a spec is hostile input and so are the paths it names:

- every file configspec reads (a spec, a lock, a `profiles_from` file, an import's
  input, a prompts file) is read by `read_text_file`, only if it is a regular file
  (`/dev/zero` would exhaust memory, a FIFO would block forever), within a limit
  counted while reading where one is set (`/proc` files claim a size of 0), through
  one descriptor so that what was checked is what is read.  The limits are
  `configspec_opt.limits` (docs/limits.md: your own files have none unless
  CONFIGSPEC_MAX_FILE_BYTES is set; a refusal names the variable that raises it);
- `profiles_from` is confined to the spec's repository: the enclosing git work
  tree, else the spec's own directory, with symlinks resolved (a link in the
  repository to ~/.aws/credentials is outside it).  CONFIGSPEC_PROFILES_ROOT, a
  list of directories separated like PATH, allows more;
- no error message shows what such a file holds (the loader redacts values).

What configspec writes goes through the one writer, `files.write_output`: replaced
atomically, through a symlink to its target, with the umask's mode or the old
file's; a file that cannot be written is an OutputError (exit 4), never a traceback.
"""

from __future__ import annotations

import os
import re
import stat
from json import JSONDecoder
from pathlib import Path

from configspec_opt.files import write_output
from configspec_opt.limits import FILE_BYTES, Limit

PROFILES_ROOT_ENV = "CONFIGSPEC_PROFILES_ROOT"
PROFILES_ROOT_HELP = (
    f"profiles_from files must lie in the spec's git work tree (or its directory); "
    f"{PROFILES_ROOT_ENV}=DIR[{os.pathsep}DIR...] allows more directories.")

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


class FileRefused(Exception):
    """A file that is not read: the message says why and never quotes its content."""


def read_text_file(path: str | Path, *, limit: Limit | int = FILE_BYTES,
                   errors: str = "strict") -> str:
    """The UTF-8 text of a regular file within `limit` (bytes), else FileRefused.

    `errors="replace"` reads text that is not UTF-8 anyway (to recognise a spec, to
    read a log)."""
    cap = limit if isinstance(limit, int) else limit.value
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileRefused("no such file") from None
    except OSError as exc:
        raise FileRefused(f"cannot read: {exc.strerror or type(exc).__name__}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a file")
            raise FileRefused(f"not a regular file ({kind})")
        chunks: list[bytes] = []
        size = 0
        while size <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise FileRefused(f"cannot read: {exc.strerror or type(exc).__name__}") from None
    except MemoryError:
        raise FileRefused(f"too large for this machine's memory ({size:,} bytes read)") from None
    finally:
        os.close(fd)
    if size > cap:
        how = "" if isinstance(limit, int) else f" ({limit.hint()})"
        raise FileRefused(f"larger than {cap:,} bytes{how}")
    try:
        return b"".join(chunks).decode("utf-8", errors)
    except UnicodeDecodeError as exc:
        raise FileRefused(f"not UTF-8 text (byte {exc.start:,} is not valid UTF-8)") from None
    except MemoryError:
        raise FileRefused(f"too large for this machine's memory ({size:,} bytes)") from None


def repository_root(spec_dir: Path) -> Path:
    """The git work tree holding `spec_dir` (a `.git` directory or file), else `spec_dir`."""
    start = Path(os.path.realpath(spec_dir))
    for d in (start, *start.parents):
        if (d / ".git").exists():
            return d
    return start


def allowed_roots(root: Path) -> list[Path]:
    """`root` and the directories of CONFIGSPEC_PROFILES_ROOT, symlinks resolved."""
    extra = os.environ.get(PROFILES_ROOT_ENV, "")
    return [Path(os.path.realpath(root)),
            *(Path(os.path.realpath(p)) for p in extra.split(os.pathsep) if p.strip())]


def confined(path: Path, roots: list[Path]) -> Path | None:
    """`path` with symlinks resolved if it lies inside one of `roots`, else None."""
    real = Path(os.path.realpath(path))
    return real if any(real == r or real.is_relative_to(r) for r in roots) else None


_WS = re.compile(r"[ \t\n\r]*")


def first_duplicate_key(text: str) -> tuple[str, int, int] | None:
    """In valid JSON, the first key repeated in its object, in document order:
    (key, offset of the repeat, offset of the first).  None when keys are unique.

    json.loads keeps the last of two equal keys silently; its hook sees no
    positions, so the error path scans the text once more to locate the repeat.
    """
    objects: list[dict[str, int] | None] = []
    decoder = JSONDecoder()
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "{[":
            objects.append({} if ch == "{" else None)
        elif ch in "}]":
            if objects:
                objects.pop()
        elif ch == '"':
            key, end = decoder.raw_decode(text, i)
            seen = objects[-1] if objects else None
            after = _WS.match(text, end)
            j = after.end() if after else end
            if seen is not None and j < n and text[j] == ":":
                if key in seen:
                    return key, i, seen[key]
                seen[key] = i
            i = end
            continue
        i += 1
    return None


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def write_through(path: Path, text: str) -> None:
    """`files.write_output`: a symlink keeps pointing where it did, its target is replaced
    (`fmt` used to turn a linked spec into a copy)."""
    write_output(path, text, shown=path)
