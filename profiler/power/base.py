"""What every power source provides: a reading, either an energy counter or watts now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Reading:
    """One read of a source: cumulative energy (J) for counters, else instantaneous W."""

    time_s: float
    energy_j: float | None = None
    power_w: float | None = None


class PowerSource(Protocol):
    """A way to read this device's power draw."""

    name: str

    def read(self) -> Reading:
        """Read now; raise PowerSourceError when the hardware cannot be read."""
        ...

    def describe(self) -> dict[str, Any]:
        """What is measured (rails, domains, units), for provenance."""
        ...


def counter_delta(before: int, after: int, max_range: int) -> int:
    """Increase of a wrapping counter (RAPL `energy_uj` wraps at `max_energy_range_uj`)."""
    return after - before if after >= before else after + max_range - before
