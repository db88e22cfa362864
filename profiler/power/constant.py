"""A power figure declared by the user (a datasheet or a wall meter), recorded as declared."""

from __future__ import annotations

import time
from typing import Any

from profiler.power.base import Reading


class ConstantSource:
    """A `PowerSource` that reports a fixed wattage; provenance says it was not measured."""

    name = "declared"

    def __init__(self, watts: float) -> None:
        self.watts = watts

    def read(self) -> Reading:
        """The declared watts, timestamped now."""
        return Reading(time.perf_counter(), power_w=self.watts)

    def describe(self) -> dict[str, Any]:
        """Provenance: the declared figure, marked as not measured."""
        return {"source": "declared", "watts": self.watts,
                "note": "declared by the user, not measured"}
