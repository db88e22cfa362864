"""Ship tests reuse the profiler's fixtures (SmolLM2 and its Q4_0 draft, robust prompts,
tiny GGUFs) to start the exported commands for real (test_export_run.py)."""

from __future__ import annotations

from tests.profiler.conftest import (  # noqa: F401
    smollm2_path,
    smollm2_q4_0,
    smollm2_robust_prompts,
    tiny_dir,
)
