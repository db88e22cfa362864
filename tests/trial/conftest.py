"""Trial tests reuse the profiler's fixtures (tiny GGUFs, spec, SmolLM2)."""

from __future__ import annotations

from tests.profiler.conftest import smollm2_path, tiny_dir, tiny_spec  # noqa: F401
