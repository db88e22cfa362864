"""A power figure declared by the user (a datasheet or a wall meter), recorded as declared."""

from __future__ import annotations

import time
from typing import Any

from profiler.power.base import Reading


class ConstantSource:
    name = "declared"

    def __init__(self, watts: float) -> None:
        self.watts = watts

    def read(self) -> Reading:
        return Reading(time.perf_counter(), power_w=self.watts)

    def describe(self) -> dict[str, Any]:
        return {"source": "declared", "watts": self.watts,
                "note": "declared by the user, not measured"}
