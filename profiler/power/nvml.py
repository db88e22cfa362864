"""NVIDIA GPU energy through NVML (`nvidia-ml-py`, imported only if installed).

Uses the cumulative energy counter (mJ, Volta and newer), summed over all
GPUs, so the average over a window is exact rather than sampled.
"""

from __future__ import annotations

import time
from typing import Any

from profiler.errors import PowerSourceError
from profiler.power.base import Reading


class NvmlSource:
    """A `PowerSource` over NVML's energy counters, summed over every GPU of the machine.

    Raises PowerSourceError without nvidia-ml-py, without a driver, or without a GPU.
    """

    name = "nvml"

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError:
            raise PowerSourceError("NVML needs nvidia-ml-py (pip install nvidia-ml-py)") from None
        try:
            pynvml.nvmlInit()
            n = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]
            self.names = [str(pynvml.nvmlDeviceGetName(h)) for h in self._handles]
        except pynvml.NVMLError as exc:
            raise PowerSourceError(f"NVML unavailable: {exc}") from None
        if not self._handles:
            raise PowerSourceError("NVML sees no GPU")
        self._nvml = pynvml

    def read(self) -> Reading:
        """Cumulative energy of all GPUs in J (NVML counts mJ since the driver loaded)."""
        try:
            mj = sum(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles)
        except self._nvml.NVMLError as exc:
            raise PowerSourceError(f"NVML energy counter unreadable: {exc}") from None
        return Reading(time.perf_counter(), energy_j=mj / 1e3)

    def describe(self) -> dict[str, Any]:
        """Provenance: which GPUs were summed."""
        return {"source": "nvml", "gpus": self.names, "summed": "all GPUs' energy counters"}
