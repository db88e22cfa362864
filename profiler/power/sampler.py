"""Average power over a window, read in a background thread while the model drafts.

Counter sources (RAPL, NVML) give exact averages from the energy difference;
instantaneous sources (INA3221, PMIC) are sampled every `interval_s` and
averaged.  A read error inside the thread is kept and raised on exit, so a
failing source is never mistaken for zero watts.
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from profiler.power.base import PowerSource, Reading


@dataclass(frozen=True)
class PowerSummary:
    """Mean power (W) over a window of `seconds`, and how many readings it rests on."""

    mean_w: float
    samples: int
    seconds: float

    def record(self) -> dict[str, Any]:
        """The summary as provenance keeps it, rounded."""
        return {"mean_w": round(self.mean_w, 3), "samples": self.samples,
                "seconds": round(self.seconds, 2)}


class PowerSampler:
    """``with PowerSampler(src) as s: ...`` then `s.summary`: mean power over the block.

    `summary` stays None when the window was too short to tell (fewer than two
    readings); a read error is raised on exit unless the block itself raised.
    """

    def __init__(self, source: PowerSource, interval_s: float = 0.1) -> None:
        self.source = source
        self.interval_s = interval_s
        self._readings: list[Reading] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.summary: PowerSummary | None = None

    def _run(self) -> None:
        while True:
            try:
                self._readings.append(self.source.read())
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc
                return
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> PowerSampler:
        self._readings.clear()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="power-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._error is None:
            try:
                self._readings.append(self.source.read())
            except BaseException as exc:
                self._error = exc
        if self._error is not None and et is None:
            raise self._error
        self.summary = summarize(self._readings)


def summarize(readings: list[Reading]) -> PowerSummary | None:
    """Mean power of a window: energy difference / time for counters, else mean of the watts.

    None when there is too little to average, never a made-up zero.
    """
    if len(readings) < 2:
        return None
    first, last = readings[0], readings[-1]
    seconds = last.time_s - first.time_s
    if first.energy_j is not None and last.energy_j is not None:
        if seconds <= 0:
            return None
        return PowerSummary((last.energy_j - first.energy_j) / seconds, len(readings), seconds)
    watts = [r.power_w for r in readings if r.power_w is not None]
    if not watts:
        return None
    return PowerSummary(statistics.fmean(watts), len(watts), seconds)
