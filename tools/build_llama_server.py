#!/usr/bin/env python3
"""Build llama.cpp's own C++ ``llama-server`` from the llama-cpp-python sdist, once per machine.

    python tools/build_llama_server.py            # prints the binary's path
    python tools/build_llama_server.py --print    # only print where it goes (builds nothing)

The source is the llama.cpp that llama-cpp-python vendors (``vendor/llama.cpp`` in its sdist),
at the version installed in this environment (or ``--version``), downloaded with pip from the
package registry: nothing else is fetched. The binary goes to

    ${CONFIGSPEC_LLAMA_SERVER_CACHE:-${XDG_CACHE_HOME:-~/.cache}/configspec-opt/llama-server}/<version>/llama-server

and when it is already there this script does nothing (CI builds it once per machine). The path
logic is the same as ``profiler.llama_server.binary_path()``. Stdlib only.

Environment: ``CMAKE_BUILD_PARALLEL_LEVEL`` (build jobs, default 2), ``CMAKE_ARGS`` (extra
configure arguments, appended last), ``LLAMA_SERVER_PORTABLE=1`` (no ``-march=native``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

# The path logic lives in profiler/llama_server.py (stdlib only); importable from a checkout
# without installing the project.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from profiler.llama_server import (
    PACKAGE,
    cache_root,
    cached_binary,
    llama_cpp_python_version,
)


def installed_version() -> str:
    """The installed llama-cpp-python version: the llama.cpp sources built must match it."""
    version = llama_cpp_python_version()
    if version is None:
        sys.exit(
            f"{PACKAGE} is not installed in this Python ({sys.executable}); "
            "pass --version X.Y.Z or run this with the project's venv"
        )
    return version


def _log(msg: str) -> None:
    print(f"[build_llama_server] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    _log("$ " + " ".join(shlex.quote(c) for c in cmd))
    subprocess.run(cmd, cwd=cwd, check=True)


def download_sdist(version: str, dest: Path) -> Path:
    """The sdist from the registry through pip (kept in the cache: later builds reuse it)."""
    dest.mkdir(parents=True, exist_ok=True)
    name = f"llama_cpp_python-{version}.tar.gz"
    target = dest / name
    if target.is_file():
        return target
    _run(
        [
            sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
            f"{PACKAGE}=={version}", "-d", str(dest),
        ]
    )
    if not target.is_file():
        found = sorted(dest.glob(f"llama_cpp_python-{version}.*"))
        if not found:
            sys.exit(f"pip download did not produce {name} in {dest}")
        target = found[0]
    return target


def extract_llama_cpp(sdist: Path, dest: Path) -> Path:
    """Extract only ``<root>/vendor/llama.cpp/`` from the sdist; returns that directory."""
    with tarfile.open(sdist) as tar:
        members = []
        root = None
        for m in tar.getmembers():
            parts = m.name.split("/")
            if len(parts) >= 3 and parts[1] == "vendor" and parts[2] == "llama.cpp":
                root = parts[0]
                members.append(m)
        if root is None:
            sys.exit(f"{sdist} has no vendor/llama.cpp")
        if sys.version_info >= (3, 12):
            tar.extractall(dest, members=members, filter="data")
        else:
            for m in members:
                if m.issym() or m.islnk() or m.name.startswith("/") or ".." in m.name.split("/"):
                    continue
                tar.extract(m, dest)
    return dest / root / "vendor" / "llama.cpp"


def cmake_command() -> str:
    """cmake from PATH, or the one `pip install cmake` put next to this interpreter."""
    exe = shutil.which("cmake")
    if exe is None:
        # `pip install cmake` puts it next to this interpreter
        cand = Path(sys.executable).parent / "cmake"
        if cand.is_file():
            exe = str(cand)
    if exe is None:
        sys.exit("cmake not found: `pip install cmake` (or apt-get install cmake)")
    return exe


def configure_args(src: Path, build: Path, version: str) -> list[str]:
    """CMake arguments for llama-server alone, a static release build, nothing downloaded."""
    args = [
        "-S", str(src), "-B", str(build),
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=OFF",          # one self-contained binary (system libs aside)
        "-DLLAMA_BUILD_SERVER=ON",
        "-DLLAMA_BUILD_TOOLS=ON",           # the server lives under tools/
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_APP=OFF",
        "-DLLAMA_CURL=OFF",                 # deprecated in recent llama.cpp, harmless
        "-DLLAMA_OPENSSL=OFF",              # no HTTPS: nothing is downloaded by the server
        "-DLLAMA_BUILD_UI=OFF",             # no npm build of the web UI ...
        "-DLLAMA_USE_PREBUILT_UI=OFF",      # ... and no download of it at build time
        # no git checkout here: say where the source came from in /props' build_info
        f"-DLLAMA_BUILD_COMMIT={PACKAGE}-{version}",
    ]
    if os.environ.get("LLAMA_SERVER_PORTABLE") == "1":
        args.append("-DGGML_NATIVE=OFF")
    # else: GGML_NATIVE stays at its default (ON), like llama-cpp-python's own build: the binary
    # is cached per machine and measures this machine's verifier latency.
    if shutil.which("ninja"):
        args[0:0] = ["-G", "Ninja"]
    args += shlex.split(os.environ.get("CMAKE_ARGS", ""))
    return args


def build(version: str, dest_bin: Path, keep: bool) -> None:
    """Download the sdist (cached), build llama-server, install it atomically at `dest_bin`."""
    root = cache_root()
    sdist = download_sdist(version, root / "sdist")
    cmake = cmake_command()
    jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or "2"
    work = Path(tempfile.mkdtemp(prefix=f"llama-server-{version}-", dir=root))
    try:
        _log(f"extracting vendor/llama.cpp from {sdist.name}")
        src = extract_llama_cpp(sdist, work / "src")
        bdir = work / "build"
        _run([cmake, *configure_args(src, bdir, version)])
        _run([cmake, "--build", str(bdir), "--target", "llama-server", "-j", jobs])
        built = bdir / "bin" / "llama-server"
        if not built.is_file():
            sys.exit(f"the build did not produce {built}")
        dest_bin.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest_bin.with_name(dest_bin.name + ".tmp")
        shutil.copy2(built, tmp)
        tmp.chmod(0o755)
        os.replace(tmp, dest_bin)  # atomic: a half-copied binary is never at the final path
    finally:
        if keep:
            _log(f"kept build tree {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """The command line: build once per machine and version; later runs find the cache."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--version", help="llama-cpp-python version (default: the installed one)")
    ap.add_argument("--print", action="store_true", help="only print the binary's path")
    ap.add_argument("--force", action="store_true", help="rebuild even when the binary exists")
    ap.add_argument("--keep", action="store_true", help="keep the build tree (debugging)")
    ns = ap.parse_args(argv)
    version = ns.version or installed_version()
    dest = cached_binary(version)
    if ns.print:
        print(dest)
        return 0
    if dest.is_file() and os.access(dest, os.X_OK) and not ns.force:
        print(dest)
        return 0
    t0 = time.monotonic()
    build(version, dest, ns.keep)
    _log(f"built llama-server {version} in {time.monotonic() - t0:.0f} s")
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
