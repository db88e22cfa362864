"""Reading what an importer is given: a file or an HTTP URL, as text, with its hash.

Every failure here is the user's to fix (a wrong path, a server that is down,
a file that is not what the command expects), so each is an `ImportInputError`
(exit 4, as the README's profiler problems) with a message naming the input.
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configspec_opt.errors import ConfigspecError
from configspec_opt.limits import IMPORT_BYTES
from configspec_opt.spec_files import FileRefused, read_text_file

TOTAL_TIMEOUTS = 6  # a whole answer within this many --timeout
MAX_MESSAGE = 2_000  # characters of one error message: a 50 MB input must not be echoed


class ImportInputError(ConfigspecError):
    """An input that cannot be read or is not in the format the importer reads.

    The message is cut to MAX_MESSAGE characters, whatever part of the input it quotes."""

    exit_code = 4

    def __init__(self, message: str):
        if len(message) > MAX_MESSAGE:
            message = f"{message[:MAX_MESSAGE]}... ({len(message):,} characters)"
        super().__init__(message)


@dataclass(frozen=True)
class Input:
    """An importer's input as read: its name as given and its whole text."""

    name: str  # the path or URL as given
    text: str

    @property
    def sha256(self) -> str:
        """Hash of the text, recorded in provenance so the exact input can be recognised later."""
        return hashlib.sha256(self.text.encode()).hexdigest()


def is_url(text: str) -> bool:
    """Whether `read_input` fetches this over HTTP(S) instead of opening a file."""
    return text.startswith(("http://", "https://"))


class _TooSlow(Exception):
    pass


def _read_bounded(resp: Any, most: int, deadline: float) -> bytes:
    """At most `most` bytes of a response, _TooSlow past `deadline` (the socket's
    timeout bounds each read, not a server that sends a byte a second)."""
    chunks: list[bytes] = []
    size = 0
    while size < most:
        chunk = resp.read(min(1 << 16, most - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if time.monotonic() > deadline:
            raise _TooSlow
    return b"".join(chunks)


def read_input(where: str, *, timeout_s: float = 10.0) -> Input:
    """The text of a file (through the one reader: a regular file, your own, so within
    limits.FILE_BYTES only if set), or of an HTTP(S) URL fetched once with a timeout,
    within limits.IMPORT_BYTES.  Bytes that are not UTF-8 are replaced: these are other
    tools' logs."""
    cap = IMPORT_BYTES.value
    if is_url(where):
        try:
            req = urllib.request.Request(where, headers={"Accept": "text/plain"})
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                body = _read_bounded(resp, cap + 1, time.monotonic() + TOTAL_TIMEOUTS * timeout_s)
        except urllib.error.HTTPError as exc:
            raise ImportInputError(f"{where}: HTTP {exc.code} {exc.reason}") from None
        except _TooSlow:
            raise ImportInputError(f"cannot fetch {where}: no whole answer within "
                                   f"{TOTAL_TIMEOUTS * timeout_s:g} s") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ImportInputError(f"cannot fetch {where}: {reason}") from None
        if len(body) > cap:
            raise ImportInputError(f"{where}: larger than {cap:,} bytes ({IMPORT_BYTES.hint()})")
        return Input(where, body.decode("utf-8", errors="replace"))
    try:
        return Input(where, read_text_file(Path(where), errors="replace"))
    except FileRefused as exc:
        if str(exc) == "no such file":
            raise ImportInputError(f"no such file: {where}") from None
        raise ImportInputError(f"cannot read {where}: {exc}") from None
