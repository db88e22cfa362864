"""llama.cpp's own C++ ``llama-server``: where the built binary lives, and running it.

The binary is built once per machine by ``python tools/build_llama_server.py`` from the
llama.cpp that llama-cpp-python vendors, at the installed llama-cpp-python's version, and
cached under ``${XDG_CACHE_HOME:-~/.cache}/configspec-opt/llama-server/<version>/``
(``CONFIGSPEC_LLAMA_SERVER_CACHE`` moves that root; ``CONFIGSPEC_LLAMA_SERVER`` names any
other ``llama-server`` binary outright).  The build tool imports this module, so the path
logic lives only here.

`LlamaServer` starts it on 127.0.0.1 on a free port, waits for ``/health``, and stops it
(terminate, wait, kill).  Stdlib only: no llama_cpp import.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import IO, Any

PACKAGE = "llama-cpp-python"
BUILD_COMMAND = "python tools/build_llama_server.py"


class LlamaServerError(RuntimeError):
    """The server binary is missing, would not start, or died."""


def cache_root() -> Path:
    """Where built binaries are cached, one directory per llama-cpp-python version."""
    explicit = os.environ.get("CONFIGSPEC_LLAMA_SERVER_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "configspec-opt" / "llama-server"


def llama_cpp_python_version() -> str | None:
    """The installed llama-cpp-python's version (None: absent); builds are cached per version."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def cached_binary(version: str) -> Path:
    """The cache path of the binary built from llama-cpp-python `version`."""
    return cache_root() / version / "llama-server"


def binary_path(version: str | None = None) -> Path | None:
    """The llama-server binary to run, or None when it has not been built here.

    ``CONFIGSPEC_LLAMA_SERVER`` wins; otherwise the cached build for `version`
    (default: the installed llama-cpp-python's).
    """
    explicit = os.environ.get("CONFIGSPEC_LLAMA_SERVER")
    if explicit:
        p = Path(explicit).expanduser()
        return p if p.is_file() and os.access(p, os.X_OK) else None
    version = version or llama_cpp_python_version()
    if version is None:
        return None
    p = cached_binary(version)
    return p if p.is_file() and os.access(p, os.X_OK) else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str, timeout: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


class LlamaServer:
    """``with LlamaServer(model, parallel=4) as srv: srv.url`` - a running llama-server.

    Flags: ``-m MODEL --parallel N -c CTX --cont-batching -t THREADS --metrics`` on
    127.0.0.1 and a free port; ``extra_args`` are appended.  The server's output goes
    to a temporary log file whose tail is quoted when it fails to start.
    """

    def __init__(self, model: str | Path, *, parallel: int = 4, ctx: int | None = None,
                 threads: int = 1, binary: str | Path | None = None, port: int | None = None,
                 metrics: bool = True, repack: bool = False,
                 extra_args: Sequence[str] = (), startup_timeout_s: float = 120.0) -> None:
        found = Path(binary) if binary is not None else binary_path()
        if found is None:
            raise LlamaServerError(
                f"llama-server is not built here: run `{BUILD_COMMAND}` (builds it once per "
                f"machine into {cache_root()}), or set CONFIGSPEC_LLAMA_SERVER to a binary")
        self.binary = found
        self.model = Path(model)
        self.parallel = parallel
        self.ctx = ctx if ctx is not None else 512 * parallel
        self.threads = threads
        self.port = port or free_port()
        self.metrics = metrics
        self.repack = repack
        self.extra_args = list(extra_args)
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the server (loopback only)."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The argv that starts the server; repacking is off unless asked for (see engine.py)."""
        cmd = [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1",
               "--port", str(self.port), "--parallel", str(self.parallel),
               "-c", str(self.ctx), "--cont-batching", "-t", str(self.threads),
               "-tb", str(self.threads), "--no-webui"]
        if self.metrics:
            cmd.append("--metrics")
        if not self.repack:
            # weight repacking segfaulted llama_decode on multi-token batches on this
            # project's AMX CPUs (docs/profiler.md); the profiler turns it off too
            cmd.append("--no-repack")
        return cmd + self.extra_args

    def log_tail(self, n: int = 2000) -> str:
        """The last `n` bytes of the server's output, for error messages ("" when there is none)."""
        if self._log is None:
            return ""
        try:
            self._log.flush()
            data = Path(self._log.name).read_bytes()
        except OSError:
            return ""
        return data[-n:].decode("utf-8", "replace")

    def start(self) -> LlamaServer:
        """Start the server and wait until `/health` says ok.

        Raises LlamaServerError, with the log's tail, when the model file is
        missing, the process exits, or it is not healthy within the start-up timeout.
        """
        if not self.model.is_file():
            raise LlamaServerError(f"model file not found: {self.model}")
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop())
            prefix="llama-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(self.command(), stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                tail = self.log_tail()
                self.stop()
                raise LlamaServerError(f"llama-server exited with {rc} while starting:\n{tail}")
            try:
                health = _get_json(self.url + "/health", timeout=2.0)
                if isinstance(health, dict) and health.get("status") == "ok":
                    return self
            except (urllib.error.URLError, OSError, ValueError):
                pass  # not listening yet, or 503 while the model loads
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise LlamaServerError(
            f"llama-server did not become healthy in {self.startup_timeout_s:.0f} s:\n{tail}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the server (kill after `timeout_s`) and delete its log; safe to repeat."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        if self._log is not None:
            self._log.close()
            with contextlib.suppress(OSError):
                os.unlink(self._log.name)
            self._log = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
