"""configspec-opt: exact configuration selection for edge-cloud speculative decoding.

Importing the package imports nothing heavy: the spec, the metrics and the
CLI's validation run on an edge device without Pyomo, HiGHS or FastAPI.  The
Python API (`from configspec_opt import load_spec, solve`) is resolved on first
use, so `import configspec_opt` does not even load pydantic until it is asked
for (configspec_opt.python_api).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from configspec_opt.python_api import SolveResult, load_spec, solve

__all__ = ["SolveResult", "__version__", "load_spec", "solve"]


def __getattr__(name: str) -> Any:
    if name in ("SolveResult", "load_spec", "solve"):
        from configspec_opt import python_api

        return getattr(python_api, name)
    raise AttributeError(f"module 'configspec_opt' has no attribute {name!r}")
