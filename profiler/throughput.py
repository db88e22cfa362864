"""v_d from repeated passes: the median, its spread, and a warning when repeats disagree.

On a shared 2-core machine one concurrent CPU-bound process slowed
llama.cpp decoding a hundredfold, so silently averaging repeats would
write a wrong v_d into a spec.  Each repeat's rate is llama.cpp's own
counter (decode time of single-token steps), summed over all prompts.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_SPREAD = 0.15


@dataclass(frozen=True)
class Throughput:
    """Draft speed v_d (tok/s) over repeats, by llama.cpp's counters and by the wall clock."""

    per_repeat: list[float]  # tok/s by llama.cpp's counters
    wall_per_repeat: list[float]  # tok/s including Python's per-step work
    tokens_per_repeat: int
    max_spread: float = DEFAULT_MAX_SPREAD

    @property
    def median(self) -> float:
        """v_d as recorded: the median over repeats, robust to one disturbed repeat."""
        return statistics.median(self.per_repeat)

    @property
    def spread(self) -> float:
        """(max - min) / median of the repeats."""
        return (max(self.per_repeat) - min(self.per_repeat)) / self.median

    @property
    def unstable(self) -> bool:
        """Whether the repeats disagree by more than `max_spread` (never with a single repeat)."""
        return len(self.per_repeat) > 1 and self.spread > self.max_spread

    def warning(self, what: str) -> str | None:
        """The warning for an unstable v_d, naming `what` was measured; None when stable."""
        if not self.unstable:
            return None
        reps = ", ".join(f"{r:.1f}" for r in self.per_repeat)
        return (f"{what}: v_d repeats disagree by {self.spread:.0%} ({reps} tok/s): another "
                "process is probably competing for the CPU; re-run when the machine is quiet "
                "(check `uptime`) or raise --repeats")

    def record(self) -> dict[str, Any]:
        """The figures as provenance keeps them, with the timer named."""
        return {
            "median_tok_s": round(self.median, 3),
            "per_repeat_tok_s": [round(r, 3) for r in self.per_repeat],
            "spread": round(self.spread, 4),
            "wall_median_tok_s": round(statistics.median(self.wall_per_repeat), 3),
            "tokens_per_repeat": self.tokens_per_repeat,
            "timer": "llama_perf_context t_eval (single-token decodes)",
        }
