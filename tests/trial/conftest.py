"""Trial tests reuse the profiler's fixtures (tiny GGUFs, spec, SmolLM2, robust prompts)."""

from __future__ import annotations

from tests.profiler.conftest import (  # noqa: F401
    smollm2_path,
    tiny_dir,
    tiny_robust_prompt_file,
    tiny_robust_prompts,
    tiny_spec,
)
