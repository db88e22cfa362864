"""Device power while drafting: pluggable sources, a background sampler, discovery.

Each source module reads one kind of hardware (RAPL, Jetson INA3221, the
Raspberry Pi 5 PMIC, NVML) or a declared constant.  Where none exists (a
VM), energy stays unavailable: the profiler never writes a made-up number.
"""

from __future__ import annotations

from profiler.power.base import PowerSource, Reading
from profiler.power.discover import SOURCE_NAMES, discover, make_source
from profiler.power.sampler import PowerSampler, PowerSummary

__all__ = ["SOURCE_NAMES", "PowerSampler", "PowerSource", "PowerSummary", "Reading",
           "discover", "make_source"]
