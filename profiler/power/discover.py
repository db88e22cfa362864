"""Pick a power source: the one asked for, or the first that works here.

`auto` tries RAPL, Jetson INA3221, the Raspberry Pi 5 PMIC and NVML in that
order and returns None (energy unavailable) when none is present; a source
that exists but cannot be read (RAPL without permission) is reported as a
warning with its fix, not silently skipped.  `constant:W` declares a figure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from configspec_opt.errors import UsageError
from profiler.errors import PowerSourceError
from profiler.power.base import PowerSource
from profiler.power.constant import ConstantSource
from profiler.power.jetson import JetsonSource
from profiler.power.nvml import NvmlSource
from profiler.power.rapl import RaplSource
from profiler.power.rpi import RpiPmicSource

SOURCE_NAMES = ("auto", "none", "rapl", "jetson", "rpi", "nvml", "constant:<watts>")


def _factories(root: Path) -> dict[str, Callable[[], PowerSource]]:
    return {
        "rapl": lambda: RaplSource(root),
        "jetson": lambda: JetsonSource(root),
        "rpi": lambda: RpiPmicSource(),
        "nvml": lambda: NvmlSource(),
    }


def make_source(name: str, root: Path = Path("/")) -> PowerSource | None:
    """The named source (errors if unusable); None for 'none'."""
    if name == "none":
        return None
    if name.startswith("constant:"):
        try:
            watts = float(name.split(":", 1)[1])
        except ValueError:
            watts = -1.0
        if not watts > 0:
            raise UsageError(f"--power {name}: write constant:<watts>, e.g. constant:8.5")
        return ConstantSource(watts)
    factories = _factories(root)
    if name not in factories:
        raise UsageError(f"unknown power source '{name}' (one of: {', '.join(SOURCE_NAMES)})")
    source = factories[name]()
    source.read()  # fail now, with the fix, rather than mid-run
    return source


def discover(root: Path = Path("/")) -> tuple[PowerSource | None, list[str]]:
    """First working source, and what was tried (messages for the user)."""
    tried: list[str] = []
    for name, factory in _factories(root).items():
        try:
            source = factory()
            source.read()
            return source, tried
        except PowerSourceError as exc:
            tried.append(f"{name}: {exc}")
    return None, tried
