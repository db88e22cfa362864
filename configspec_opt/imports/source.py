"""Reading what an importer is given: a file or an HTTP URL, as text, with its hash.

Every failure here is the user's to fix (a wrong path, a server that is down,
a file that is not what the command expects), so each is an `ImportInputError`
(exit 4, as the README's profiler problems) with a message naming the input.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from configspec_opt.errors import ConfigspecError

MAX_BYTES = 64 * 1024 * 1024


class ImportInputError(ConfigspecError):
    """An input that cannot be read or is not in the format the importer reads."""

    exit_code = 4


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


def read_input(where: str, *, timeout_s: float = 10.0) -> Input:
    """The text of a file, or of an HTTP(S) URL fetched once with a timeout."""
    if is_url(where):
        try:
            req = urllib.request.Request(where, headers={"Accept": "text/plain"})
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                body = resp.read(MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise ImportInputError(f"{where}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ImportInputError(f"cannot fetch {where}: {reason}") from None
        if len(body) > MAX_BYTES:
            raise ImportInputError(f"{where}: more than {MAX_BYTES // 2**20} MiB")
        return Input(where, body.decode("utf-8", errors="replace"))
    path = Path(where)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ImportInputError(f"{where}: more than {MAX_BYTES // 2**20} MiB")
        return Input(where, path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        raise ImportInputError(f"no such file: {where}") from None
    except IsADirectoryError:
        raise ImportInputError(f"{where} is a directory, not a file") from None
    except OSError as exc:
        raise ImportInputError(f"cannot read {where}: {exc.strerror or exc}") from None
