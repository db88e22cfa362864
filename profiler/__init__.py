"""The edge-side profiler: measure v_d, alpha(K), power and T_verify with llama-cpp-python.

Installed on the devices themselves (a Raspberry Pi, a Jetson), so it must
import and run with llama-cpp-python, pydantic and ruamel.yaml only: no
optimiser, no web framework.  Every module holds one job; `profiler.run`
assembles them for the `configspec profile` command.
"""

from __future__ import annotations

__all__: list[str] = []
